"""NOCS evaluation: 3D IoU and pose average precision, as the community's reference procedure computes them.

The procedure (NOCS, Wang et al. CVPR 2019; the same code in SPD and its successors), per frame and category:

1. Predictions are sorted by descending score. For each 3D IoU threshold τ, each prediction in turn takes the first
   not-yet-matched ground-truth object in order of descending IoU, and is matched to it if that IoU is > τ (greedy).
2. Pose matching uses only the pairs' members matched at IoU τ = 0.1: those predictions (still in score order) and
   those ground-truth objects. For each rotation threshold δ and translation threshold ε, each prediction takes the
   first unmatched ground-truth object, in order of ascending (degrees + centimetres), whose errors are ≤ δ and ≤ ε.
   Rotation errors treat bottle, bowl, can (and a mug with its handle hidden) as symmetric about y.
3. Over the whole dataset, per category: predictions sorted by descending score, precision and recall at each rank,
   AP = area under the precision envelope (all-point interpolation, VOC 2010+); accuracy = matched / predictions.
   The recall denominator of pose AP is the number of ground-truth objects matched at IoU 0.1.
4. The mean over the six categories.

The greedy loops run here once per prediction, vectorised over every threshold of the grid at once; sorting uses the
same numpy calls as the reference so that ties resolve the same way. Differences from the reference: a category
without ground truth gets NaN (the reference gives NaN or 0 depending on whether it has predictions) and is left out
of the mean; 3D IoU has a ``corrected`` mode besides the reference's ``legacy`` one (see
:mod:`acr_pose_core.geometry.boxes`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES, is_y_symmetric
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.geometry import IoUMode, iou_3d, pose_errors

__all__ = [
    "average_precision",
    "chamfer_by_category",
    "evaluate_frames",
    "DEFAULT_DEGREE_THRESHOLDS",
    "DEFAULT_IOU_THRESHOLDS",
    "DEFAULT_SHIFT_THRESHOLDS",
    "SUMMARY_METRICS",
    "NocsMetrics",
]

DEFAULT_IOU_THRESHOLDS = np.arange(101) / 100.0
"""3D IoU thresholds 0, 0.01, ..., 1."""
DEFAULT_DEGREE_THRESHOLDS = np.array([*range(61), 360], dtype=np.float64)
"""Rotation thresholds 0..60 degrees, plus 360 (no rotation limit, for the translation curve)."""
DEFAULT_SHIFT_THRESHOLDS = np.array([*(i / 2 for i in range(21)), 100.0])
"""Translation thresholds 0..10 cm in steps of 0.5, plus 100 (no translation limit, for the rotation curve)."""

SUMMARY_METRICS: dict[str, tuple[str, float, float]] = {
    "IoU25": ("iou", 0.25, 0.0),
    "IoU50": ("iou", 0.50, 0.0),
    "IoU75": ("iou", 0.75, 0.0),
    "5°2cm": ("pose", 5.0, 2.0),
    "5°5cm": ("pose", 5.0, 5.0),
    "10°2cm": ("pose", 10.0, 2.0),
    "10°5cm": ("pose", 10.0, 5.0),
}
"""The headline metrics of the paper's tables: name -> (kind, IoU fraction or degrees, cm)."""


@dataclass
class NocsMetrics:
    """Result of :func:`evaluate_frames`. Row ``i < 6`` of each array is category ``CATEGORIES[i]``; row 6 the mean.

    AP is in [0, 1] (tables print percent). A category without ground truth has NaN AP and accuracy and is left out
    of the mean.

    Attributes:
        iou_mode: ``"corrected"`` or ``"legacy"`` 3D IoU (see :func:`acr_pose_core.geometry.iou_3d`).
        iou_thresholds: (S,) IoU fractions.
        degree_thresholds: (D,) degrees; the last, 360, means no rotation limit.
        shift_thresholds: (T,) centimetres; the last, 100, means no translation limit.
        iou_ap, iou_acc: (7, S) AP and accuracy (matched predictions / predictions) against IoU threshold.
        pose_ap, pose_acc: (7, D, T) AP and accuracy against rotation and translation thresholds.
        num_gt, num_pred: (6,) ground-truth objects and predictions per category.
        num_frames: frames evaluated.
    """

    iou_mode: str
    iou_thresholds: np.ndarray
    degree_thresholds: np.ndarray
    shift_thresholds: np.ndarray
    iou_ap: np.ndarray
    iou_acc: np.ndarray
    pose_ap: np.ndarray
    pose_acc: np.ndarray
    num_gt: np.ndarray
    num_pred: np.ndarray
    num_frames: int

    @property
    def row_names(self) -> list[str]:
        """Names of the rows of every array: the six categories, then ``"mean"``."""
        return [*CATEGORIES, "mean"]

    def _index(self, grid: np.ndarray, value: float, what: str) -> int:
        hits = np.flatnonzero(np.isclose(grid, value))
        if len(hits) == 0:
            raise KeyError(f"{what} threshold {value} is not on the evaluated grid")
        return int(hits[0])

    def iou_at(self, threshold: float, accuracy: bool = False) -> np.ndarray:
        """(7,) AP (or accuracy) at one IoU threshold (a fraction, e.g. 0.5)."""
        s = self._index(self.iou_thresholds, threshold, "IoU")
        return (self.iou_acc if accuracy else self.iou_ap)[:, s]

    def pose_at(self, degrees: float, cm: float, accuracy: bool = False) -> np.ndarray:
        """(7,) AP (or accuracy) at one rotation (degrees) and translation (cm) threshold."""
        d = self._index(self.degree_thresholds, degrees, "rotation")
        t = self._index(self.shift_thresholds, cm, "translation")
        return (self.pose_acc if accuracy else self.pose_ap)[:, d, t]

    def summary(self, accuracy: bool = False) -> dict[str, dict[str, float]]:
        """Headline metrics: ``{metric name: {category or "mean": value in [0, 1] or NaN}}``."""
        out: dict[str, dict[str, float]] = {}
        for name, (kind, a, b) in SUMMARY_METRICS.items():
            values = self.iou_at(a, accuracy) if kind == "iou" else self.pose_at(a, b, accuracy)
            out[name] = {row: float(v) for row, v in zip(self.row_names, values, strict=True)}
        return out


def _match_iou(overlaps: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy IoU matching of score-sorted predictions, for every threshold at once.

    Args:
        overlaps: (P, G) IoU of prediction i (descending score) with ground truth j.
        thresholds: (S,) IoU thresholds.

    Returns:
        ``pred_match (S, P)``, ``gt_match (S, G)``: index of the partner, −1 where unmatched.
    """
    P, G = overlaps.shape
    S = len(thresholds)
    pred_match = -np.ones((S, P), dtype=np.int64)
    gt_match = -np.ones((S, G), dtype=np.int64)
    if P == 0 or G == 0:
        return pred_match, gt_match
    rows = np.arange(S)
    for i in range(P):
        order = np.argsort(overlaps[i])[::-1]  # the reference's call: ties resolve identically
        free = gt_match[:, order] < 0  # (S, G) in order of descending IoU
        first = order[free.argmax(1)]  # (S,) first unmatched ground truth
        hit = free.any(1) & (overlaps[i, first] > thresholds)
        pred_match[hit, i] = first[hit]
        gt_match[rows[hit], first[hit]] = i
    return pred_match, gt_match


def _match_pose(
    degrees: np.ndarray, cm: np.ndarray, degree_thresholds: np.ndarray, shift_thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy pose matching of score-sorted predictions, for every (degree, cm) threshold pair at once.

    Args:
        degrees, cm: (P, G) rotation and translation errors.

    Returns:
        ``pred_match (D, T, P)``, ``gt_match (D, T, G)``.
    """
    P, G = degrees.shape
    D, T = len(degree_thresholds), len(shift_thresholds)
    pred_match = -np.ones((D, T, P), dtype=np.int64)
    gt_match = -np.ones((D, T, G), dtype=np.int64)
    if P == 0 or G == 0:
        return pred_match, gt_match
    dd, tt = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    for i in range(P):
        order = np.argsort(degrees[i] + cm[i])  # the reference's call
        ok = (degrees[i, order] <= degree_thresholds[:, None, None]) & (cm[i, order] <= shift_thresholds[None, :, None])
        ok &= gt_match[:, :, order] < 0  # (D, T, G)
        first = order[ok.argmax(-1)]  # (D, T)
        hit = ok.any(-1)
        pred_match[hit, i] = first[hit]
        gt_match[dd[hit], tt[hit], first[hit]] = i
    return pred_match, gt_match


def average_precision(matched: np.ndarray, scores: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """All-point interpolated AP and accuracy of ranked predictions, for many thresholds at once.

    Args:
        matched: (..., P) bool, prediction p is a true positive (under each threshold).
        scores: (P,) detection scores; ranked by ``np.argsort(scores)[::-1]`` as the reference does.
        num_gt: ground-truth objects (the recall denominator).

    Returns:
        ``ap (...)`` = Σ_k (r_k − r_{k−1}) · max_{k'≥k} p_{k'} over ranks k, and ``accuracy (...)`` = true positives /
        predictions; NaN AP when ``num_gt == 0``, NaN accuracy when there is no prediction.
    """
    matched = np.asarray(matched, dtype=bool)
    lead = matched.shape[:-1]
    P = matched.shape[-1]
    if num_gt == 0:
        return np.full(lead, np.nan), _acc(matched)
    if P == 0:
        return np.zeros(lead), np.full(lead, np.nan)
    order = np.argsort(np.asarray(scores))[::-1]
    tp = matched[..., order]
    cum = np.cumsum(tp, axis=-1)
    precision = cum / np.arange(1, P + 1)
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]  # max over later ranks
    recall = (cum.astype(np.float32) / np.float32(num_gt)).astype(np.float64)  # the reference's float32 recall
    step = np.diff(recall, axis=-1, prepend=0.0)
    return (step * envelope).sum(-1), _acc(matched)


def _acc(matched: np.ndarray) -> np.ndarray:
    P = matched.shape[-1]
    return matched.sum(-1) / P if P else np.full(matched.shape[:-1], np.nan)


class _ClassAccumulator:
    """Match flags and scores of one category over all frames."""

    def __init__(self) -> None:
        self.iou_matched: list[np.ndarray] = []  # (S, P_f) per frame
        self.iou_scores: list[np.ndarray] = []
        self.pose_matched: list[np.ndarray] = []  # (D, T, P'_f)
        self.pose_scores: list[np.ndarray] = []
        self.num_gt = 0
        self.num_pose_gt = 0
        self.num_pred = 0


def evaluate_frames(
    frames: Iterable[FrameResult],
    iou_mode: IoUMode = "corrected",
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    degree_thresholds: Sequence[float] = DEFAULT_DEGREE_THRESHOLDS,
    shift_thresholds: Sequence[float] = DEFAULT_SHIFT_THRESHOLDS,
    iou_pose_threshold: float = 0.1,
    progress: bool | None = False,
) -> NocsMetrics:
    """NOCS 3D IoU and pose AP of a prediction set (see the module docstring for the procedure).

    Args:
        frames: the frames, each with its ground truth and predictions.
        iou_mode: ``"corrected"`` (default) or ``"legacy"`` (the mode of published numbers).
        iou_thresholds: IoU fractions; must contain ``iou_pose_threshold``.
        degree_thresholds: degrees. shift_thresholds: centimetres.
        iou_pose_threshold: pose AP is computed over the pairs matched at this IoU (0.1).
        progress: show a progress bar (``None``: only on a terminal).

    Returns:
        :class:`NocsMetrics`.
    """
    iou_thr = np.asarray(iou_thresholds, dtype=np.float64)
    deg_thr = np.asarray(degree_thresholds, dtype=np.float64)
    cm_thr = np.asarray(shift_thresholds, dtype=np.float64)
    pose_index = np.flatnonzero(np.isclose(iou_thr, iou_pose_threshold))
    if len(pose_index) == 0:
        raise ValueError(f"iou_thresholds must contain the pose-matching IoU {iou_pose_threshold}")
    pose_index = int(pose_index[0])
    acc = [_ClassAccumulator() for _ in range(NUM_CATEGORIES)]
    num_frames = 0
    frames = list(frames)
    for frame in tqdm(frames, desc="evaluate", unit="frame", disable=None if progress is None else not progress):
        num_frames += 1
        for c in range(1, NUM_CATEGORIES + 1):
            _evaluate_class(frame, c, acc[c - 1], iou_mode, iou_thr, deg_thr, cm_thr, pose_index)

    rows = NUM_CATEGORIES + 1
    iou_ap, iou_acc = np.full((rows, len(iou_thr)), np.nan), np.full((rows, len(iou_thr)), np.nan)
    pose_ap = np.full((rows, len(deg_thr), len(cm_thr)), np.nan)
    pose_acc = np.full_like(pose_ap, np.nan)
    for k, a in enumerate(acc):
        matched = np.concatenate([np.zeros((len(iou_thr), 0), bool), *a.iou_matched], axis=-1)
        scores = np.concatenate([np.zeros(0), *a.iou_scores])
        iou_ap[k], iou_acc[k] = average_precision(matched, scores, a.num_gt)
        matched = np.concatenate([np.zeros((len(deg_thr), len(cm_thr), 0), bool), *a.pose_matched], axis=-1)
        scores = np.concatenate([np.zeros(0), *a.pose_scores])
        pose_ap[k], pose_acc[k] = average_precision(matched, scores, a.num_pose_gt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN (no category evaluated) stays NaN
        for arr in (iou_ap, iou_acc, pose_ap, pose_acc):
            arr[-1] = np.nanmean(arr[:-1], axis=0)
    return NocsMetrics(
        iou_mode=iou_mode,
        iou_thresholds=iou_thr,
        degree_thresholds=deg_thr,
        shift_thresholds=cm_thr,
        iou_ap=iou_ap,
        iou_acc=iou_acc,
        pose_ap=pose_ap,
        pose_acc=pose_acc,
        num_gt=np.array([a.num_gt for a in acc]),
        num_pred=np.array([a.num_pred for a in acc]),
        num_frames=num_frames,
    )


def _evaluate_class(
    frame: FrameResult,
    class_id: int,
    acc: _ClassAccumulator,
    iou_mode: IoUMode,
    iou_thr: np.ndarray,
    deg_thr: np.ndarray,
    cm_thr: np.ndarray,
    pose_index: int,
) -> None:
    """Match one category of one frame and append the flags to ``acc``."""
    gt = np.flatnonzero(frame.gt_class_ids == class_id)
    pred = np.flatnonzero(frame.pred_class_ids == class_id)
    if len(gt) == 0 and len(pred) == 0:
        return
    scores = frame.pred_scores[pred]
    if len(pred):
        order = np.argsort(scores)[::-1]  # the reference's call
        pred, scores = pred[order], scores[order]
    gt_sRT, gt_size = frame.gt_sRT[gt], frame.gt_size[gt]
    pred_sRT, pred_size = frame.pred_sRT[pred], frame.pred_size[pred]
    symmetric = is_y_symmetric(np.full(len(gt), class_id), frame.gt_handle_visible[gt])  # (G,)

    overlaps = iou_3d(
        pred_sRT[:, None], pred_size[:, None], gt_sRT[None], gt_size[None], symmetric[None, :], mode=iou_mode
    )  # (P, G)
    pred_match, gt_match = _match_iou(overlaps.reshape(len(pred), len(gt)), iou_thr)
    acc.iou_matched.append(pred_match >= 0)
    acc.iou_scores.append(scores)
    acc.num_gt += len(gt)
    acc.num_pred += len(pred)

    keep_pred = pred_match[pose_index] >= 0
    keep_gt = gt_match[pose_index] >= 0
    degrees, cm = pose_errors(pred_sRT[keep_pred][:, None], gt_sRT[keep_gt][None], symmetric[keep_gt][None, :])
    shape = (int(keep_pred.sum()), int(keep_gt.sum()))
    pose_pred_match, _ = _match_pose(degrees.reshape(shape), cm.reshape(shape), deg_thr, cm_thr)
    acc.pose_matched.append(pose_pred_match >= 0)
    acc.pose_scores.append(scores[keep_pred])
    acc.num_pose_gt += shape[1]


def chamfer_by_category(
    class_ids: np.ndarray, predicted: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean chamfer distance of reconstructed canonical shapes per category (the paper's Table 6).

    Args:
        class_ids: (B,) class ids 1..6.
        predicted: B arrays (N_b, 3), reconstructed shapes in NOCS units.
        ground_truth: B arrays (M_b, 3), true canonical models in NOCS units.

    Returns:
        (7,) mean squared-distance chamfer (see :func:`acr_pose_core.geometry.chamfer_distance`) per category,
        then the mean over categories; NaN where a category has no object.
    """
    from acr_pose_core.geometry import chamfer_distance

    class_ids = np.asarray(class_ids).reshape(-1)
    if not len(class_ids) == len(predicted) == len(ground_truth):
        raise ValueError("class_ids, predicted and ground_truth must have the same length")
    values = np.array([float(chamfer_distance(p, g)) for p, g in zip(predicted, ground_truth, strict=True)])
    out = np.full(NUM_CATEGORIES + 1, np.nan)
    for c in range(1, NUM_CATEGORIES + 1):
        if (class_ids == c).any():
            out[c - 1] = values[class_ids == c].mean()
    if np.isfinite(out[:-1]).any():
        out[-1] = np.nanmean(out[:-1])
    return out
