"""The image encoder: PSPNet on a dilated ResNet-18, local backbone weights, per-pixel gathering."""

from __future__ import annotations

import socket

import pytest
import torch
import torchvision

from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.image_encoder import DilatedResNet18, ImageEncoder, gather_pixels

TINY = ReconstructorConfig.tiny()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A freshly initialised torchvision ResNet-18 state dict with non-default BatchNorm statistics."""
    generator = torch.Generator().manual_seed(123)
    reference = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for parameter in reference.parameters():  # not the global RNG, and unlike any fresh initialisation
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1, generator=generator)
                module.running_var.uniform_(0.5, 2, generator=generator)
    return reference.state_dict()


def _random_rgb(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_shapes_tiny_config():
    torch.manual_seed(0)
    encoder = ImageEncoder(TINY)
    out = encoder(_random_rgb(2, TINY.image_size))
    assert out.shape == (2, TINY.channels, TINY.image_size, TINY.image_size)
    assert torch.isfinite(out).all()


def test_shapes_paper_config():
    config = ReconstructorConfig()
    assert (config.image_size, config.channels) == (192, 64)
    torch.manual_seed(0)
    encoder = ImageEncoder(config).eval()
    with torch.no_grad():
        out = encoder(_random_rgb(1, config.image_size))
    assert out.shape == (1, 64, 192, 192)


@pytest.mark.parametrize("size", [(64, 64), (57, 71), (30, 30)])
def test_output_resolution_equals_input(size):
    torch.manual_seed(0)
    encoder = ImageEncoder(TINY).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, *size))
    assert out.shape == (1, TINY.channels, *size)


def test_backbone_output_stride_is_8():
    torch.manual_seed(0)
    backbone = DilatedResNet18().eval()
    with torch.no_grad():
        features = backbone(_random_rgb(1, 192))
    assert features.shape == (1, 512, 24, 24)
    with torch.no_grad():
        features = backbone(_random_rgb(1, 64))
    assert features.shape == (1, 512, 8, 8)
    # layers 3 and 4 no longer stride, and their 3×3 convs are dilated
    for layer, dilation in ((backbone.layer3, 2), (backbone.layer4, 4)):
        assert all(m.stride == (1, 1) for m in layer.modules() if isinstance(m, torch.nn.Conv2d))
        assert layer[1].conv1.dilation == layer[1].conv2.dilation == (dilation, dilation)
        assert layer[0].conv2.dilation == (dilation, dilation)
    assert backbone.layer3[0].conv1.dilation == (1, 1)
    assert backbone.layer4[0].conv1.dilation == (2, 2)


def test_dilated_backbone_matches_strided_resnet_where_it_should():
    """With the same weights, the dilated layer 3's first conv samples what the strided one does (every other pixel)."""
    torch.manual_seed(0)
    dilated = DilatedResNet18().eval()
    strided = torchvision.models.resnet18(weights=None).eval()
    strided.load_state_dict({**dilated.state_dict(), "fc.weight": strided.fc.weight, "fc.bias": strided.fc.bias})
    x = torch.randn(1, 128, 16, 16)
    with torch.no_grad():
        assert torch.allclose(dilated.layer3[0].conv1(x)[..., ::2, ::2], strided.layer3[0].conv1(x), atol=1e-5)
        assert torch.allclose(
            dilated.layer3[0].downsample(x)[..., ::2, ::2], strided.layer3[0].downsample(x), atol=1e-5
        )


def _gather_loop(features: torch.Tensor, choose: torch.Tensor) -> torch.Tensor:
    B, C, H, W = features.shape
    out = torch.empty(B, choose.shape[1], C, dtype=features.dtype)
    for b in range(B):
        for n in range(choose.shape[1]):
            row, col = divmod(int(choose[b, n]), W)
            out[b, n] = features[b, :, row, col]
    return out


@pytest.mark.parametrize("H, W", [(8, 8), (5, 7)])
def test_gather_picks_the_right_pixels(H, W):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(3, 4, H, W, generator=generator)
    choose = torch.randint(0, H * W, (3, 20), generator=generator)
    choose[0, :2] = torch.tensor([0, H * W - 1])  # both ends of the range
    expected = _gather_loop(features, choose)
    assert torch.equal(gather_pixels(features, choose), expected)
    assert torch.equal(ImageEncoder.gather(features, choose), expected)
    assert torch.equal(gather_pixels(features, choose.to(torch.int32)), expected)


def test_gather_checks_its_input():
    features = torch.zeros(2, 4, 5, 5)
    with pytest.raises(IndexError):
        gather_pixels(features, torch.tensor([[0, 25], [1, 2]]))
    with pytest.raises(IndexError):
        gather_pixels(features, torch.tensor([[0, -1], [1, 2]]))
    with pytest.raises(ValueError):
        gather_pixels(features, torch.zeros(3, 2, dtype=torch.long))  # batch mismatch
    with pytest.raises(ValueError):
        gather_pixels(features, torch.zeros(2, 2, 1, dtype=torch.long))
    with pytest.raises(ValueError):
        gather_pixels(features[0], torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError):
        gather_pixels(features, torch.zeros(2, 2))
    assert gather_pixels(features, torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, 4)


def test_forward_checks_its_input():
    encoder = ImageEncoder(TINY)
    with pytest.raises(ValueError):
        encoder(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError):
        encoder(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError):
        ImageEncoder(ReconstructorConfig.tiny(backbone="resnet50"))


def test_loads_local_backbone_weights(tmp_path, resnet18_state):
    state = resnet18_state
    path = tmp_path / "resnet18-local.pth"
    torch.save(state, path)

    torch.manual_seed(0)  # a different initialisation than the reference
    encoder = ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(path)))
    loaded = encoder.backbone.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key

    # an older file without the BatchNorm counters loads as well
    path_old = tmp_path / "old.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path_old)
    encoder = ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(path_old)))
    assert torch.equal(encoder.backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_missing_weights_file_raises(tmp_path):
    path = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(FileNotFoundError, match=str(path)):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(path)))


def test_wrong_weights_file_raises(tmp_path, resnet18_state):
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ValueError, match="missing keys.*unexpected keys"):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(other)))

    deeper = tmp_path / "resnet34-like.pth"  # resnet34 has the same names plus more blocks per layer
    torch.save({**resnet18_state, "layer3.2.conv1.weight": torch.zeros(256, 256, 3, 3)}, deeper)
    with pytest.raises(ValueError, match=r"1 unexpected keys \['layer3.2.conv1.weight'\]"):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(deeper)))

    state = dict(resnet18_state)
    state["conv1.weight"] = torch.zeros(64, 4, 7, 7)  # a 4-channel stem
    shapes = tmp_path / "rgbd.pth"
    torch.save(state, shapes)
    with pytest.raises(ValueError, match="wrong shapes.*conv1.weight"):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(shapes)))

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(garbage)))

    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(ValueError, match="state dict"):
        ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(not_a_dict)))


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    encoder = ImageEncoder(TINY).train()
    out = encoder(_random_rgb(2, TINY.image_size))
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * weights).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_training_mode_works_with_one_object():
    torch.manual_seed(0)
    out = ImageEncoder(TINY).train()(_random_rgb(1, TINY.image_size))
    assert out.shape == (1, TINY.channels, TINY.image_size, TINY.image_size)


def test_no_network_access(monkeypatch, tmp_path, resnet18_state):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # nothing cached to fall back on
    ImageEncoder(TINY)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    ImageEncoder(ReconstructorConfig.tiny(backbone_weights=str(path)))
    assert not (tmp_path / "torch_home").exists()


def test_device_and_dtype_follow_the_module():
    torch.manual_seed(0)
    encoder = ImageEncoder(TINY).to(torch.float64).eval()
    with torch.no_grad():
        out = encoder(_random_rgb(1, 32).to(torch.float64))
    assert out.dtype == torch.float64
    assert gather_pixels(out, torch.zeros(1, 3, dtype=torch.long)).dtype == torch.float64
