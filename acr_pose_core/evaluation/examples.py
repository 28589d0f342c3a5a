"""Synthetic prediction sets with known ground truth, for the example evaluation, benchmarks and tests.

Each frame has 1..6 ground-truth objects of random categories on a table in front of the camera; the "detector"
misses some, predicts each found object's pose with noise (a few degrees, a few millimetres to centimetres, a few
percent of scale and size), sometimes confuses the category, adds false positives, and scores each prediction by its
quality plus noise. Nothing here is a model: it exists so that the evaluation can be exercised and looked at before
a trained model exists.
"""

from __future__ import annotations

import numpy as np

from acr_pose_core.categories import CLASS_IDS, NUM_CATEGORIES
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.geometry.rotations import compose_sRT, random_rotations, rotation_about_y

__all__ = ["TYPICAL_SIZE_M", "make_example_frames"]

TYPICAL_SIZE_M: dict[str, float] = {
    "bottle": 0.25,
    "bowl": 0.17,
    "camera": 0.16,
    "can": 0.16,
    "laptop": 0.45,
    "mug": 0.15,
}
"""Typical box diagonal (metres) per category: the scale ``s`` of an object whose NOCS box diagonal is 1."""

_ASPECT = {  # rough NOCS-unit box proportions (x, y, z) per category, normalised to diagonal 1 below
    "bottle": (0.35, 0.9, 0.35),
    "bowl": (0.8, 0.4, 0.8),
    "camera": (0.7, 0.5, 0.55),
    "can": (0.45, 0.8, 0.45),
    "laptop": (0.8, 0.55, 0.7),
    "mug": (0.75, 0.65, 0.55),
}


def _small_rotations(n: int, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations about random axes by angles up to ``max_deg`` (|N(0, max_deg/2)| clipped)."""
    axis = rng.standard_normal((n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.radians(np.clip(np.abs(rng.normal(0, max_deg / 2, n)), 0, max_deg))
    K = np.zeros((n, 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K = K - K.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * K @ K  # Rodrigues


def make_example_frames(
    num_frames: int,
    seed: int = 0,
    miss_rate: float = 0.1,
    false_positive_rate: float = 0.15,
    confusion_rate: float = 0.03,
    rotation_noise_deg: float = 12.0,
    translation_noise_m: float = 0.02,
    objects_per_frame: int | None = None,
) -> list[FrameResult]:
    """A reproducible synthetic prediction set of ``num_frames`` frames (see the module docstring).

    ``objects_per_frame``: ground-truth objects in every frame; ``None`` draws 1..6 per frame.
    """
    rng = np.random.default_rng(seed)
    names = list(CLASS_IDS)
    frames = []
    for f in range(num_frames):
        g = int(rng.integers(1, 7)) if objects_per_frame is None else objects_per_frame
        cls = rng.integers(1, NUM_CATEGORIES + 1, g)
        size = np.array([_ASPECT[names[c - 1]] for c in cls]) * rng.uniform(0.85, 1.15, (g, 3))
        size /= np.linalg.norm(size, axis=1, keepdims=True)  # NOCS box diagonal 1
        scale = np.array([TYPICAL_SIZE_M[names[c - 1]] for c in cls]) * rng.uniform(0.7, 1.3, g)
        # Upright on a table seen from above-front: yaw about y, a camera tilt of 20..50° about x.
        tilt = np.radians(rng.uniform(20, 50))
        cam_tilt = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        rot = cam_tilt @ rotation_about_y(rng.uniform(0, 2 * np.pi, g))
        rot = rot @ np.diag([1.0, -1.0, -1.0])  # canonical y up = camera −y (OpenCV y points down)
        trans = np.stack([rng.uniform(-0.3, 0.3, g), rng.uniform(-0.1, 0.15, g), rng.uniform(0.6, 1.2, g)], 1)
        handle = np.ones(g, dtype=bool)
        handle[cls == CLASS_IDS["mug"]] = rng.random((cls == CLASS_IDS["mug"]).sum()) < 0.7
        gt_sRT = compose_sRT(scale, rot, trans)

        found = rng.random(g) >= miss_rate
        k = int(found.sum())
        noise_r = _small_rotations(k, rotation_noise_deg, rng)
        noise_t = rng.normal(0, translation_noise_m / 2, (k, 3))
        p_scale = scale[found] * rng.normal(1, 0.04, k)
        p_size = size[found] * rng.normal(1, 0.04, (k, 3))
        p_rot = noise_r @ rot[found]
        p_trans = trans[found] + noise_t
        p_cls = cls[found].copy()
        confused = rng.random(k) < confusion_rate
        p_cls[confused] = rng.integers(1, NUM_CATEGORIES + 1, confused.sum())
        err = np.degrees(np.arccos(np.clip((np.trace(noise_r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        quality = 1 - 0.02 * err - 10 * np.linalg.norm(noise_t, axis=1)
        p_score = np.clip(quality + rng.normal(0, 0.15, k), 0.05, 1.0)

        n_fp = int(rng.binomial(3, false_positive_rate))
        fp_cls = rng.integers(1, NUM_CATEGORIES + 1, n_fp)
        fp_sRT = compose_sRT(
            rng.uniform(0.1, 0.4, n_fp),
            random_rotations(n_fp, rng),
            np.stack([rng.uniform(-0.4, 0.4, n_fp), rng.uniform(-0.2, 0.2, n_fp), rng.uniform(0.5, 1.4, n_fp)], 1),
        )
        fp_size = rng.uniform(0.3, 0.8, (n_fp, 3))
        fp_size /= np.linalg.norm(fp_size, axis=1, keepdims=True)

        frames.append(
            FrameResult(
                gt_class_ids=cls,
                gt_sRT=gt_sRT,
                gt_size=size,
                gt_handle_visible=handle,
                pred_class_ids=np.concatenate([p_cls, fp_cls]),
                pred_sRT=np.concatenate([compose_sRT(p_scale, p_rot, p_trans), fp_sRT]),
                pred_size=np.concatenate([p_size, fp_size]),
                pred_scores=np.concatenate([p_score, rng.uniform(0.05, 0.6, n_fp)]),
                name=f"example_{f:05d}",
            )
        )
    return frames
