"""Instance segmentation and detection AP (box AP and mask AP), for validating the segmenter.

The rule (COCO's, per class): predictions of a class are taken in order of descending score; each is a true
positive when its IoU (box or mask) with some still-unmatched ground-truth object of its class is at least the
threshold, and then takes the one with the highest IoU. AP is the all-point interpolated area under the
precision/recall curve (:func:`~acr_pose_core.evaluation.metrics.average_precision`, the same as the pose metrics);
mAP averages over the classes that have ground truth. ``AP50`` is at IoU 0.5, ``AP`` the mean over 0.50:0.05:0.95.

Per frame, objects are arrays: ``class_ids (K,)`` 1..6, ``scores (K,)``, ``boxes (K, 4)`` ``y1, x1, y2, x2`` (ends
exclusive), ``masks (K, H, W)`` bool.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES
from acr_pose_core.evaluation.metrics import average_precision

__all__ = ["IOU_THRESHOLDS", "FrameInstances", "box_iou", "instance_ap", "mask_iou", "recall_precision"]

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)


@dataclass(frozen=True)
class FrameInstances:
    """Objects of one frame (see the module docstring); ``scores`` are ignored for ground truth."""

    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, G) IoU of boxes ``y1, x1, y2, x2`` (ends exclusive, so a box covers (y2 − y1)·(x2 − x1) pixels)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    top = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom - top, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, G) IoU of masks (P, H, W) and (G, H, W)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    pixels = int(np.prod(a.shape[1:] if a.ndim == 3 else b.shape[1:]))  # H·W, also when one side is empty
    a = a.reshape(len(a), pixels).astype(np.float64)  # (P, H·W)
    b = b.reshape(len(b), pixels).astype(np.float64)  # (G, H·W)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(iou: np.ndarray, order: np.ndarray, threshold: float) -> np.ndarray:
    """(P,) bool true positives: predictions in ``order`` take the best unmatched ground truth with IoU ≥ threshold."""
    P, G = iou.shape
    taken = np.zeros(G, bool)
    tp = np.zeros(P, bool)
    for p in order:
        candidates = np.where(~taken & (iou[p] >= threshold), iou[p], -1.0)
        if G and candidates.max() >= threshold:
            g = int(candidates.argmax())
            taken[g] = True
            tp[p] = True
    return tp


def instance_ap(
    predictions: Sequence[FrameInstances],
    truths: Sequence[FrameInstances],
    kind: str = "mask",
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> dict[str, float]:
    """Box or mask AP over frames: ``{"AP50", "AP75", "AP", "<category>/AP50", ...}`` (NaN for a class without
    ground truth; the means skip those).

    Raises:
        ValueError: ``kind`` not ``"mask"`` or ``"box"``, or different numbers of prediction and truth frames.
    """
    if kind not in ("mask", "box"):
        raise ValueError(f"kind must be 'mask' or 'box', got {kind!r}")
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction frames but {len(truths)} ground-truth frames")
    thresholds = np.asarray(thresholds, np.float64)
    matched: list[list[np.ndarray]] = [[] for _ in range(NUM_CATEGORIES)]  # per class: (T, P_f) per frame
    scores: list[list[np.ndarray]] = [[] for _ in range(NUM_CATEGORIES)]
    num_gt = np.zeros(NUM_CATEGORIES, np.int64)
    for pred, gt in zip(predictions, truths, strict=True):
        for c in range(1, NUM_CATEGORIES + 1):
            p, g = np.flatnonzero(pred.class_ids == c), np.flatnonzero(gt.class_ids == c)
            num_gt[c - 1] += len(g)
            if not len(p):
                continue
            if kind == "mask":
                iou = mask_iou(pred.masks[p], gt.masks[g])
            else:
                iou = box_iou(pred.boxes[p], gt.boxes[g])
            s = np.asarray(pred.scores, np.float64)[p]
            order = np.argsort(-s, kind="stable")
            matched[c - 1].append(np.stack([_match(iou, order, t) for t in thresholds]))
            scores[c - 1].append(s)
    out: dict[str, float] = {}
    per_class = np.full((NUM_CATEGORIES, len(thresholds)), np.nan)
    for c in range(NUM_CATEGORIES):
        m = np.concatenate(matched[c], 1) if matched[c] else np.zeros((len(thresholds), 0), bool)
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        per_class[c] = average_precision(m, s, int(num_gt[c]))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": no class has ground truth
        mean = np.nanmean(per_class, 0)  # (T,) over the classes with ground truth
    at = {float(t): i for i, t in enumerate(np.round(thresholds, 2))}
    if 0.5 in at:
        out["AP50"] = float(mean[at[0.5]])
    if 0.75 in at:
        out["AP75"] = float(mean[at[0.75]])
    out["AP"] = float(np.mean(mean))
    for c, name in enumerate(CATEGORIES):
        if 0.5 in at:
            out[f"{name}/AP50"] = float(per_class[c, at[0.5]])
    return out


def recall_precision(
    predictions: Sequence[FrameInstances],
    truths: Sequence[FrameInstances],
    min_score: float,
    iou_threshold: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Recall and precision of the detections with score ≥ ``min_score`` (an operating point, where AP ranks all).

    A detection is right when its mask IoU with a still-unmatched object *of its category* is ≥ ``iou_threshold``
    (each class matched as :func:`instance_ap` does, highest score first). Per category ``c`` and over all
    (``"all"``): ``recall = right_c / objects_c``, ``precision = right_c / detections_c`` (NaN when the denominator
    is 0), with the counts ``objects``, ``detections`` and ``right``.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction frames but {len(truths)} ground-truth frames")
    counts = np.zeros((NUM_CATEGORIES, 3), np.int64)  # objects, detections, right
    for pred, gt in zip(predictions, truths, strict=True):
        kept = np.asarray(pred.scores, np.float64) >= min_score
        for c in range(1, NUM_CATEGORIES + 1):
            p = np.flatnonzero(kept & (pred.class_ids == c))
            g = np.flatnonzero(gt.class_ids == c)
            counts[c - 1, :2] += len(g), len(p)
            if len(p) and len(g):
                order = np.argsort(-np.asarray(pred.scores, np.float64)[p], kind="stable")
                counts[c - 1, 2] += int(_match(mask_iou(pred.masks[p], gt.masks[g]), order, iou_threshold).sum())

    def rates(objects: int, detections: int, right: int) -> dict[str, float]:
        return {
            "recall": right / objects if objects else float("nan"),
            "precision": right / detections if detections else float("nan"),
            "objects": int(objects),
            "detections": int(detections),
            "right": int(right),
        }

    out = {name: rates(*counts[c]) for c, name in enumerate(CATEGORIES)}
    out["all"] = rates(*counts.sum(0))
    return out
