"""The per-category size calibration of a model folder, fitted on training frames: ``acr-pose calibrate-size``.

The Reconstructor's NOCS points come out pulled towards their centre (to 0.66–0.94 of the true spread, issue 21), so
Umeyama's scale ``s`` is too large by the inverse. For each category ``c`` the factor is the geometric median of the
objects' metric box-volume ratios,

    f_c = exp(median_i log r_i),   r_i = (∏ size_true,i / ∏ (s_i · size_nocs,i))^(1/3),

over the objects of that category posed with their true masks (:class:`~acr_pose_core.pipeline.PoseEstimator` with
``calibrate_size=False``); a category with fewer than ``min_objects`` posed objects keeps 1. The factors go into the
model folder (:func:`~acr_pose_core.model_folder.write_size_calibration`) and the estimator applies them,
``s' = f_c · s``. Fit on training frames only: the split that reports the scores must not choose them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES
from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import frame_objects
from acr_pose_core.detection import Detections
from acr_pose_core.model_folder import load_model_folder, write_size_calibration
from acr_pose_core.pipeline import PoseEstimator

__all__ = ["SizeCalibration", "calibrate_model_folder", "fit_size_factors"]


@dataclass(frozen=True)
class SizeCalibration:
    """``factors (6,)`` per class id − 1; ``objects (6,)`` posed objects per category; ``ratios`` their r_i."""

    factors: np.ndarray
    objects: np.ndarray
    ratios: dict[str, list[float]]


def fit_size_factors(
    estimator: PoseEstimator,
    frames: list[Path],
    min_objects: int = 5,
    progress: bool | None = None,
) -> SizeCalibration:
    """Fit ``f_c`` (module docstring) with ``estimator`` (its own calibration must be off) on NOCS-format frames."""
    if np.any(estimator.size_factors != 1):
        raise ValueError("fit with an estimator whose size calibration is off (calibrate_size=False)")
    logs: list[list[float]] = [[] for _ in range(NUM_CATEGORIES)]
    bar = tqdm(frames, desc="calibrate-size", unit="frame", disable=None if progress is None else not progress)
    for prefix in bar:
        frame = nocs_format.read_frame(prefix, with_coord=False)
        inst_ids, class_ids, masks, boxes = frame_objects(frame)
        if not len(inst_ids):
            continue
        estimate = estimator.estimate(
            frame.color, frame.depth, frame.label.intrinsics, Detections.from_masks(masks, class_ids, None, boxes)
        )
        by_id = {inst.inst_id: inst for inst in frame.label.instances}
        for obj in estimate.objects:
            inst = by_id[int(inst_ids[obj.detection])]
            true_size = inst.scale * np.asarray(inst.size, np.float64)  # (3,) metres
            ratio = np.prod(true_size) / np.prod(obj.size)
            if np.isfinite(ratio) and ratio > 0:
                logs[obj.class_id - 1].append(float(np.log(ratio) / 3))
    objects = np.array([len(values) for values in logs])
    factors = np.array([float(np.exp(np.median(values))) if len(values) >= min_objects else 1.0 for values in logs])
    ratios = {name: [float(np.exp(v)) for v in values] for name, values in zip(CATEGORIES, logs, strict=True)}
    return SizeCalibration(factors, objects, ratios)


def calibrate_model_folder(
    folder: str | os.PathLike,
    data: str | os.PathLike,
    frames: int = 60,
    min_objects: int = 5,
    seed: int = 0,
    progress: bool | None = None,
) -> SizeCalibration:
    """Fit on ``frames`` frames spread evenly over ``data`` (training frames) and record the factors in ``folder``."""
    everything = nocs_format.list_frames(Path(data))
    if not everything:
        raise FileNotFoundError(f"{data}: no NOCS-format frames")
    picked = np.unique(np.linspace(0, len(everything) - 1, min(frames, len(everything))).round().astype(int))
    chosen = [everything[i] for i in picked]
    estimator = PoseEstimator(load_model_folder(folder), "cpu", seed=seed, calibrate_size=False)
    fit = fit_size_factors(estimator, chosen, min_objects, progress)
    source = {
        "data": str(data),
        "frames": len(chosen),
        "objects": {name: int(n) for name, n in zip(CATEGORIES, fit.objects, strict=True)},
        "rule": "f_c = exp(median log (V_true / V_pred)^(1/3)), true masks, calibrate_size=False",
        "min_objects": min_objects,
        "seed": seed,
    }
    write_size_calibration(folder, fit.factors, source)
    return fit
