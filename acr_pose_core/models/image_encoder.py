"""Image encoder: a PSPNet (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017) on a dilated ResNet-18.

ACR-Pose (§3.1, §4.2, appendix 6.1) takes SPD's image encoder: a PSPNet with a ResNet-18 backbone that turns an
object's RGB crop into C per-pixel features at the crop's own resolution; the features of the pixels that the observed
points project to are then gathered for the point branch (:func:`gather_pixels`).

Our choices, in the order the data flows:

- **Backbone**: torchvision's ``resnet18`` (stem, layers 1–4; no pooling or classifier), built with ``weights=None``
  and optionally filled from a local ImageNet state-dict file (``ReconstructorConfig.backbone_weights``); nothing is
  ever downloaded.
- **Dilation** (as PSPNet): layers 3 and 4 keep stride 1 and dilate their 3×3 convolutions by 2 and 4, so the output
  stride is 8 (a 192×192 crop gives a 24×24 map of 512 channels). torchvision's ``BasicBlock`` refuses dilation, so
  :func:`_dilate_layer` rewrites the layer in place, with torchvision's own convention for ``Bottleneck``: the first
  block's first conv keeps the previous dilation and every later 3×3 conv takes the new one. Each conv then samples
  the same input pixels as in the strided network, so ImageNet weights transfer unchanged.
- **Pyramid pooling** with bins (1, 2, 3, 6): per bin an adaptive average pool and a 1×1 conv to 512 / 4 channels
  (PSPNet's 1/N reduction), upsampled bilinearly and concatenated with the backbone map (1024 channels). The pooled
  branches use a conv with bias and a ReLU but no BatchNorm: the 1×1 bin has one value per channel, which BatchNorm
  cannot normalise in training with one object in the batch.
- **Fusion**: a 3×3 conv, BatchNorm and ReLU to 4C channels (PSPNet's conv after the concatenation).
- **Decoder**: three bilinear ×2 steps back to the crop resolution (S/8 → S/4 → S/2 → S), each followed by a 3×3 conv,
  BatchNorm and ReLU (4C → 2C → C → C), then a 1×1 conv to the C output channels with no activation (the consumer adds
  its own). Widening only at the coarse levels keeps the full-resolution convs at C channels: this runs once per
  object. The steps upsample to exact sizes (``ceil(S/4)``, ``ceil(S/2)``, ``S``), so any crop size works.
- No dropout: the module stays deterministic for a given input and never draws random numbers in ``forward``.

Shapes: B objects, N observed points, C channels, H×W the crop (S×S in ACR-Pose).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from acr_pose_core.models.config import ReconstructorConfig

__all__ = ["DilatedResNet18", "ImageEncoder", "PyramidPooling", "gather_pixels"]

PSP_BINS = (1, 2, 3, 6)  # PSPNet's pyramid levels


def _dilate_layer(layer: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Turn a strided torchvision ResNet layer of ``BasicBlock``s into a dilated one of stride 1, in place.

    The parameters keep their shapes, so a state dict of the strided network loads as it is.
    """
    for index, block in enumerate(layer):
        for name in ("conv1", "conv2"):
            conv: nn.Conv2d = getattr(block, name)
            d = previous_dilation if (index == 0 and name == "conv1") else dilation
            conv.stride, conv.dilation, conv.padding = (1, 1), (d, d), (d, d)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)  # the 1×1 projection of the shortcut
        block.stride = 1


class DilatedResNet18(nn.Module):
    """ResNet-18 stem and layers 1–4 with layers 3 and 4 dilated (2 and 4) instead of strided: output stride 8.

    The submodules keep torchvision's names, so this module's state dict is torchvision's without ``fc.*``.
    """

    out_channels = 512
    output_stride = 8

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)  # never downloads
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        _dilate_layer(self.layer3, dilation=2, previous_dilation=1)
        _dilate_layer(self.layer4, dilation=4, previous_dilation=2)

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load a local torchvision ImageNet ResNet-18 state dict file (e.g. ``resnet18-f37072fd.pth``).

        The classifier (``fc.*``) is ignored; BatchNorm ``num_batches_tracked`` counters may be absent (older files).
        Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the keys for a file of other weights.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a pickled module, a corrupt file, ...
            raise ValueError(f"{path} is not a readable torch state dict ({error})") from error
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict (a dict of tensors); got {type(state).__name__}")
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        expected = self.state_dict()
        missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
        unexpected = sorted(k for k in state if k not in expected)
        wrong_shape = sorted(
            f"{k}: {tuple(state[k].shape)} instead of {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        )
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"{path} is not a torchvision ResNet-18 state dict: "
                f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, "
                f"{len(wrong_shape)} wrong shapes {wrong_shape[:5]}"
            )
        self.load_state_dict(state, strict=False)  # only num_batches_tracked counters can be left out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(rgb))))  # (B, 64, H/4, W/4)
        x = self.layer2(self.layer1(x))  # (B, 128, H/8, W/8)
        return self.layer4(self.layer3(x))  # (B, 512, H/8, W/8): dilated, no further striding


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: the input concatenated with its pooled, reduced and upsampled versions."""

    def __init__(self, in_channels: int, bins: tuple[int, ...] = PSP_BINS) -> None:
        super().__init__()
        assert in_channels % len(bins) == 0, f"{in_channels} channels do not split over {len(bins)} bins"
        reduced = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, reduced, 1), nn.ReLU(inplace=True))
            for b in bins
        )
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [_resize(stage(x), size) for stage in self.stages]  # each (B, in/bins, h, w)
        return torch.cat([x, *pooled], dim=1)  # (B, in + bins·in/bins, h, w)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def gather_pixels(features: torch.Tensor, choose: torch.Tensor, check: bool = True) -> torch.Tensor:
    """The features of chosen pixels: ``out[b, n] = features[b, :, choose[b, n] // W, choose[b, n] % W]``.

    ``features`` is ``(B, C, H, W)``; ``choose`` is ``(B, N)`` integer flat pixel indices ``row · W + col`` into each
    object's own map. Returns ``(B, N, C)``. With ``check``, indices outside ``[0, H·W)`` raise ``IndexError``
    (checked here rather than left to the device, where an out-of-range gather is an asynchronous assert on CUDA);
    the check reads the indices' range on the host, so callers whose indices are valid by construction and that
    must not wait for the device (CUDA graphs) pass ``check=False``.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W), got shape {tuple(features.shape)}")
    B, C, H, W = features.shape
    if choose.dim() != 2 or choose.shape[0] != B:
        raise ValueError(f"choose must be (B, N) = ({B}, N), got shape {tuple(choose.shape)}")
    if choose.dtype.is_floating_point or choose.dtype.is_complex or choose.dtype == torch.bool:
        raise TypeError(f"choose must hold integer pixel indices, got {choose.dtype}")
    if check and choose.numel() > 0:
        low, high = int(choose.min()), int(choose.max())
        if low < 0 or high >= H * W:
            raise IndexError(f"pixel indices must lie in [0, {H * W}) for a {H}×{W} map, got [{low}, {high}]")
    N = choose.shape[1]
    index = choose.to(torch.long).unsqueeze(1).expand(B, C, N)  # (B, C, N)
    return features.flatten(2).gather(2, index).transpose(1, 2)  # (B, C, H·W) -> (B, C, N) -> (B, N, C)


class ImageEncoder(nn.Module):
    """PSPNet on a dilated ResNet-18: an RGB crop ``(B, 3, H, W)`` to per-pixel features ``(B, C, H, W)``.

    The input is normalised as the backbone expects (ImageNet mean and standard deviation when
    ``config.backbone_weights`` holds ImageNet weights). ``config.backbone_weights``, when set, is read once here.
    """

    gather = staticmethod(gather_pixels)

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        if config.backbone != "resnet18":
            raise ValueError(f"the image encoder supports backbone 'resnet18' only, got {config.backbone!r}")
        C = config.channels
        self.backbone = DilatedResNet18()
        if config.backbone_weights is not None:
            self.backbone.load_torchvision_weights(config.backbone_weights)
        self.pyramid = PyramidPooling(DilatedResNet18.out_channels)
        self.fusion = _conv_bn_relu(self.pyramid.out_channels, 4 * C)
        self.up = nn.ModuleList([_conv_bn_relu(4 * C, 2 * C), _conv_bn_relu(2 * C, C), _conv_bn_relu(C, C)])
        self.head = nn.Conv2d(C, C, 1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be (B, 3, H, W), got shape {tuple(rgb.shape)}")
        H, W = rgb.shape[-2:]
        x = self.backbone(rgb)  # (B, 512, H/8, W/8)
        x = self.fusion(self.pyramid(x))  # (B, 1024, H/8, W/8) -> (B, 4C, H/8, W/8)
        sizes = [(-(-H // 4), -(-W // 4)), (-(-H // 2), -(-W // 2)), (H, W)]  # ceil divisions, then exactly H×W
        for size, block in zip(sizes, self.up, strict=True):
            x = block(_resize(x, size))  # (B, 2C | C | C, *size)
        return self.head(x)  # (B, C, H, W)
