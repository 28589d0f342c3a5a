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
from acr_pose_core.models.segmenter import SegmenterConfig, predict_instances

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
        found = predict_instances(self.model, image, self.config)  # the same thresholds as the validation's
        present = found.masks.reshape(len(found.masks), H * W).any(1)  # (K,)
        if not present.any():
            return Detections.empty(H, W)
        scores = np.clip(found.scores[present].astype(np.float64), 0.0, 1.0)
        return Detections.from_masks(found.masks[present], found.class_ids[present], scores)
