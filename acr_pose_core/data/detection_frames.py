"""NOCS-format frames as Mask R-CNN training samples (torchvision's detection target format).

Objects are the frame's instances of a category (class 1..6) with at least one mask pixel, in meta order
(:func:`~acr_pose_core.data.nocs_format.frame_instances` with no depth requirement: the segmenter sees what the
camera sees); a frame the reference pipeline rejects as a broken render contributes no objects. Augmentation (seeded
by ``(seed, epoch, index)``, like :class:`~acr_pose_core.data.dataset.PoseDataset`): the same colour jitter, and a
horizontal flip with probability 1/2 (the categories are mirror-symmetric as classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from acr_pose_core.data import nocs_format
from acr_pose_core.data.dataset import jitter_colors

__all__ = ["DetectionFrames", "collate_detection", "frame_objects"]


def frame_objects(frame: nocs_format.Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``inst_ids (K,)``, ``class_ids (K,)``, ``masks (K, H, W)`` bool, ``boxes (K, 4)`` ``y1, x1, y2, x2`` of the
    frame's visible category instances (module docstring); none for a rejected frame."""
    try:
        objects = nocs_format.frame_instances(frame, min_depth_pixels=0)
    except nocs_format.FrameRejected:
        objects = []
    H, W = frame.image_size
    if not objects:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, H, W), bool), np.zeros((0, 4), np.int64)
    return (
        np.array([o.inst_id for o in objects], np.int64),
        np.array([o.class_id for o in objects], np.int64),
        np.stack([o.mask for o in objects]),
        np.stack([np.asarray(o.bbox, np.int64) for o in objects]),
    )


class DetectionFrames(Dataset):
    """The frames under ``root``: item ``i`` is ``(image (3, H, W) float32 in [0, 1], target)`` with target
    ``boxes (K, 4)`` float32 ``x1, y1, x2, y2`` (torchvision's order, ends exclusive), ``labels (K,)`` int64 1..6,
    ``masks (K, H, W)`` uint8."""

    def __init__(
        self,
        root: str | Path,
        augment: bool = False,
        seed: int = 0,
        color_jitter: Sequence[float] = (0.2, 0.2, 0.2, 0.05),
        max_frames: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.frames = nocs_format.list_frames(self.root)[:max_frames]
        self.augment, self.seed, self.color_jitter = augment, int(seed), tuple(color_jitter)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        frame = nocs_format.read_frame(self.frames[index], with_coord=False)
        _, class_ids, masks, boxes = frame_objects(frame)
        rgb = frame.color
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            rgb = jitter_colors(rgb, rng, self.color_jitter)
            if rng.random() < 0.5:
                W = rgb.shape[1]
                rgb, masks = rgb[:, ::-1], masks[:, :, ::-1]
                boxes = np.stack([boxes[:, 0], W - boxes[:, 3], boxes[:, 2], W - boxes[:, 1]], 1)  # y1, x1', y2, x2'
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255  # (3, H, W)
        target = {
            "boxes": torch.from_numpy(boxes[:, [1, 0, 3, 2]].astype(np.float32)).reshape(-1, 4),  # x1, y1, x2, y2
            "labels": torch.from_numpy(class_ids),
            "masks": torch.from_numpy(np.ascontiguousarray(masks).astype(np.uint8)),
        }
        return image, target


def collate_detection(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list, list]:
    """Lists of images and targets (torchvision's detection models take lists: images may differ in size)."""
    return [item[0] for item in batch], [item[1] for item in batch]
