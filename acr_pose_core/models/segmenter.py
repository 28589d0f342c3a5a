"""The instance segmenter: torchvision's Mask R-CNN, as the paper detects objects (§4.2: Mask R-CNN masks, as SPD).

Built with ``weights=None`` throughout (nothing is downloaded here; ``acr-pose train-detector`` trains it on the
synthetic frames, optionally from ImageNet backbone weights, :mod:`acr_pose_core.training.pretrained`). Backbones:

- ``resnet50``: the paper's ResNet-50-FPN (FPN strides 4–32 plus a pooled level);
- ``mobilenet_v3_large``: a light backbone (FPN on three late blocks, plus a pooled level), no ImageNet weights here;
- ``mobilenet_v2``: a light backbone with offline ImageNet weights (FPN on the ends of the stride-8, 16 and 32
  stages, blocks 6, 13 and 18 of ``torchvision.models.mobilenet_v2().features``, plus a pooled level).

Ordinary BatchNorm (not torchvision's frozen one, which only suits pretrained weights), and narrower heads than
torchvision's where ``SegmenterConfig`` says so (FPN and mask-head channels, box-head width): the fp16 weights of the
light configuration are about 15 MB. Classes: 0 background, 1..6 the categories (class ids of the NOCS format).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from acr_pose_core.categories import NUM_CATEGORIES
from acr_pose_core.evaluation.instance_ap import FrameInstances

__all__ = ["BACKBONES", "SegmenterConfig", "build_segmenter", "predict_instances"]

BACKBONES = ("mobilenet_v3_large", "mobilenet_v2", "resnet50")
MOBILENET_V2_STAGE_ENDS = (6, 13, 18)
"""The blocks of ``mobilenet_v2().features`` whose outputs feed the FPN: the last of strides 8, 16 and 32."""


@dataclass(frozen=True)
class SegmenterConfig:
    """Sizes of the Mask R-CNN and its inference thresholds."""

    backbone: str = "mobilenet_v3_large"  # "mobilenet_v2" or "resnet50" (the paper's)
    fpn_channels: int = 128  # torchvision: 256
    box_head_width: int = 512  # the two-layer box head (torchvision: 1024)
    mask_channels: int = 128  # the four mask-head convolutions (torchvision: 256)
    min_size: int = 480  # images are resized so that the shorter side is min_size (at most max_size the longer)
    max_size: int = 640
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256)  # pixels, one per FPN level (mobilenet: 3 levels + pool)
    score_threshold: float = 0.5  # detections below are not returned
    mask_threshold: float = 0.5  # mask probability that counts as the object
    max_detections: int = 20
    # Region proposals kept at inference, before and after the RPN's NMS (torchvision: 1,000; training keeps its
    # 2,000). Measured on 100 CAMERA-like val frames with the shipped default (CPU, benchmarks/NOTES.md): 1,000 →
    # 100 took the frame from 0.31 to 0.20 s, the box and mask heads being most of the segmenter's time, with mAP
    # unchanged or better (fewer duplicate detections); a scene needs far fewer than 100 for its ≤ 20 objects.
    test_proposals: int = 100

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r}: expected one of {BACKBONES}")
        levels = 5 if self.backbone == "resnet50" else 4
        if len(self.anchor_sizes) != levels:
            raise ValueError(f"{self.backbone} has {levels} FPN levels: give {levels} anchor_sizes")
        sizes = (self.fpn_channels, self.box_head_width, self.mask_channels, self.min_size, self.max_detections)
        if min(*sizes, self.test_proposals) < 1:
            raise ValueError("sizes, max_detections and test_proposals must be positive")
        if self.test_proposals < self.max_detections:
            raise ValueError(f"test_proposals ({self.test_proposals}) must be at least max_detections")
        if not (0 <= self.score_threshold <= 1 and 0 < self.mask_threshold < 1):
            raise ValueError("score_threshold must be in [0, 1] and mask_threshold in (0, 1)")


def _backbone(config: SegmenterConfig) -> BackboneWithFPN:
    if config.backbone == "resnet50":
        body = torchvision.models.resnet50(weights=None, norm_layer=nn.BatchNorm2d)
        return_layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
        in_channels = [256, 512, 1024, 2048]
    elif config.backbone == "mobilenet_v2":
        body = torchvision.models.mobilenet_v2(weights=None).features
        return_layers = {str(index): str(level) for level, index in enumerate(MOBILENET_V2_STAGE_ENDS)}
        in_channels = [_out_channels(body[index]) for index in MOBILENET_V2_STAGE_ENDS]
    else:
        body = torchvision.models.mobilenet_v3_large(weights=None).features
        # stages end where the next block downsamples (torchvision marks those blocks with _is_cn)
        stages = [0] + [i for i, block in enumerate(body) if getattr(block, "_is_cn", False)] + [len(body) - 1]
        picked = stages[-3:]  # strides 8, 16, 32
        return_layers = {str(index): str(level) for level, index in enumerate(picked)}
        in_channels = [body[index].out_channels for index in picked]
    return BackboneWithFPN(body, return_layers, in_channels, config.fpn_channels, extra_blocks=LastLevelMaxPool())


def _out_channels(block: nn.Module) -> int:
    """Output channels of a torchvision MobileNet block (the last convolution's)."""
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def build_segmenter(config: SegmenterConfig | None = None) -> MaskRCNN:
    """A Mask R-CNN for the six categories (7 classes with background), randomly initialised."""
    config = config or SegmenterConfig()
    backbone = _backbone(config)
    C = config.fpn_channels
    levels = [str(i) for i in range(len(config.anchor_sizes) - 1)]  # the pooled level feeds the RPN only
    anchors = AnchorGenerator(tuple((s,) for s in config.anchor_sizes), ((0.5, 1.0, 2.0),) * len(config.anchor_sizes))
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=config.min_size,
        max_size=config.max_size,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(C, anchors.num_anchors_per_location()[0]),
        rpn_pre_nms_top_n_test=config.test_proposals,
        rpn_post_nms_top_n_test=config.test_proposals,
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(C * 7 * 7, config.box_head_width),
        box_predictor=FastRCNNPredictor(config.box_head_width, NUM_CATEGORIES + 1),
        box_score_thresh=config.score_threshold,
        box_detections_per_img=config.max_detections,
        mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(C, (config.mask_channels,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(config.mask_channels, config.mask_channels, NUM_CATEGORIES + 1),
    )


def predict_instances(
    model: torch.nn.Module, image: torch.Tensor, config: SegmenterConfig, min_score: float | None = None
) -> FrameInstances:
    """One image (3, H, W) in [0, 1] on the model's device → the detections as arrays (score ≥ ``min_score``,
    default the configuration's threshold; the model's own box threshold must not be higher)."""
    out = model([image])[0]
    keep = out["scores"] >= (config.score_threshold if min_score is None else min_score)
    masks = (out["masks"][keep, 0] >= config.mask_threshold).cpu().numpy()
    boxes = out["boxes"][keep].cpu().numpy()[:, [1, 0, 3, 2]]  # y1, x1, y2, x2
    return FrameInstances(out["labels"][keep].cpu().numpy(), out["scores"][keep].cpu().numpy(), boxes, masks)
