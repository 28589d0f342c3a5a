"""The trained instance segmenter as a mask source (:mod:`acr_pose_core.detection.sources`).

``Segmenter(model, config)`` turns a :func:`~acr_pose_core.models.segmenter.build_segmenter` network into a callable
``(rgb, depth, intrinsics) -> Detections``: the RGB frame in [0, 1] through Mask R-CNN (eval mode, no gradients),
detections of score ≥ ``config.score_threshold``, masks where the mask probability ≥ ``config.mask_threshold``,
boxes of the masks themselves (the crop window is built around them, as for ground-truth masks); detections whose
mask is empty are left out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from acr_pose_core.detection.sources import Detections
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.models.segmenter import SegmenterConfig

__all__ = ["Segmenter"]


class Segmenter:
    """Mask R-CNN detections of one frame; ``device`` is where the network already is."""

    def __init__(self, model: nn.Module, config: SegmenterConfig, device: torch.device | str = "cpu") -> None:
        self.model = model.eval()
        self.config = config
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray, depth: np.ndarray | None = None, intrinsics: CameraIntrinsics | None = None):
        H, W = rgb.shape[:2]
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(self.device).float() / 255
        out = self.model([image])[0]
        keep = out["scores"] >= self.config.score_threshold
        masks = (out["masks"][keep, 0] >= self.config.mask_threshold).cpu().numpy()  # (K, H, W) bool
        labels = out["labels"][keep].cpu().numpy()
        scores = out["scores"][keep].double().cpu().numpy()
        present = masks.reshape(len(masks), H * W).any(1)  # (K,)
        if not present.any():
            return Detections.empty(H, W)
        return Detections.from_masks(masks[present], labels[present], np.clip(scores[present], 0.0, 1.0))
