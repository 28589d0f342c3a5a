"""The per-frame record that the NOCS evaluation consumes.

One :class:`FrameResult` holds the ground truth and the predictions of one RGB-D frame, in the conventions of the
community's result pickles: poses are 4×4 ``sRT`` in metres with ``[:3, :3] = s·R`` (``p_camera = s·R·p_nocs + t``),
sizes are NOCS-unit box extents (metric size = s · size), class ids 1..6 (see :mod:`acr_pose_core.categories`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FrameResult"]


@dataclass
class FrameResult:
    """Ground truth and predictions of one frame. G ground-truth objects, P predictions.

    Attributes:
        gt_class_ids: (G,) int64 class ids 1..6.
        gt_sRT: (G, 4, 4) float64 ground-truth poses.
        gt_size: (G, 3) float64 NOCS-unit box extents.
        gt_handle_visible: (G,) bool, mug handle visibility (True for every non-mug).
        pred_class_ids: (P,) int64.
        pred_sRT: (P, 4, 4) float64.
        pred_size: (P, 3) float64.
        pred_scores: (P,) float64 detection scores.
        name: where the frame came from (a file name), for messages.
        gt_boxes_2d, pred_boxes_2d: optional (G, 4) / (P, 4) image boxes ``y1, x1, y2, x2``.
    """

    gt_class_ids: np.ndarray
    gt_sRT: np.ndarray
    gt_size: np.ndarray
    gt_handle_visible: np.ndarray
    pred_class_ids: np.ndarray
    pred_sRT: np.ndarray
    pred_size: np.ndarray
    pred_scores: np.ndarray
    name: str = ""
    gt_boxes_2d: np.ndarray | None = field(default=None)
    pred_boxes_2d: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.gt_class_ids = np.asarray(self.gt_class_ids, dtype=np.int64).reshape(-1)
        self.gt_sRT = np.asarray(self.gt_sRT, dtype=np.float64).reshape(-1, 4, 4)
        self.gt_size = np.asarray(self.gt_size, dtype=np.float64).reshape(-1, 3)
        self.gt_handle_visible = np.asarray(self.gt_handle_visible).reshape(-1).astype(bool)
        self.pred_class_ids = np.asarray(self.pred_class_ids, dtype=np.int64).reshape(-1)
        self.pred_sRT = np.asarray(self.pred_sRT, dtype=np.float64).reshape(-1, 4, 4)
        self.pred_size = np.asarray(self.pred_size, dtype=np.float64).reshape(-1, 3)
        self.pred_scores = np.asarray(self.pred_scores, dtype=np.float64).reshape(-1)
        g, p = len(self.gt_class_ids), len(self.pred_class_ids)
        for attr, n in (("gt_sRT", g), ("gt_size", g), ("gt_handle_visible", g)):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{self.name or 'frame'}: {attr} has {len(getattr(self, attr))} rows, expected {g}")
        for attr, n in (("pred_sRT", p), ("pred_size", p), ("pred_scores", p)):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{self.name or 'frame'}: {attr} has {len(getattr(self, attr))} rows, expected {p}")

    @property
    def num_gt(self) -> int:
        return len(self.gt_class_ids)

    @property
    def num_pred(self) -> int:
        return len(self.pred_class_ids)
