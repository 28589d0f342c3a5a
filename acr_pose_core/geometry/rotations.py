"""Rotations, 4×4 similarity poses and pose errors (numpy).

Pose convention (NOCS): a 4×4 ``sRT`` with ``sRT[:3, :3] = s·R`` and ``sRT[:3, 3] = t`` maps canonical (NOCS)
coordinates to the camera frame, ``p_camera = s·R·p_nocs + t``, metres. Camera frame: OpenCV (x right, y down,
z forward). Canonical frame: y up.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "compose_sRT",
    "decompose_sRT",
    "pose_errors",
    "random_rotations",
    "rotation_about_y",
    "rotation_error_deg",
]


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def rotation_about_y(angle: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) right-handed rotation by ``angle`` radians about +y: ``[[c, 0, s], [0, 1, 0], [−s, 0, c]]``."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2)


def compose_sRT(scale: np.ndarray | float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(..., 4, 4) pose from ``scale (...)``, ``rotation (..., 3, 3)``, ``translation (..., 3)``."""
    rotation = np.asarray(rotation, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    out = np.zeros((*rotation.shape[:-2], 4, 4))
    out[..., :3, :3] = scale[..., None, None] * rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def decompose_sRT(sRT: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(..., 4, 4)`` poses into ``scale (...)``, ``rotation (..., 3, 3)``, ``translation (..., 3)``.

    ``scale = ∛det(sRT[:3, :3])``, the convention of the NOCS evaluation; exact for a true similarity.
    """
    sRT = np.asarray(sRT, dtype=np.float64)
    scale = np.cbrt(np.linalg.det(sRT[..., :3, :3]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rotation = sRT[..., :3, :3] / scale[..., None, None]
    return scale, rotation, sRT[..., :3, 3].copy()


def rotation_error_deg(
    rotation_1: np.ndarray, rotation_2: np.ndarray, y_symmetric: np.ndarray | bool = False
) -> np.ndarray:
    """Angle in degrees between rotations, broadcast over leading dimensions.

    For general objects ``θ = arccos((tr(R₁ R₂ᵀ) − 1) / 2)``. For objects symmetric about their canonical y axis
    (bottle, bowl, can; a mug whose handle is hidden) only the axis matters: ``θ = ∠(R₁ e_y, R₂ e_y)``.
    """
    r1, r2 = np.asarray(rotation_1, np.float64), np.asarray(rotation_2, np.float64)
    cos_general = (np.einsum("...ij,...ij->...", r1, r2) - 1.0) / 2.0  # tr(R1 R2ᵀ) = Σ_ij R1_ij R2_ij
    y1, y2 = r1[..., :, 1], r2[..., :, 1]  # R e_y = second column
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_axis = (y1 * y2).sum(-1) / (np.linalg.norm(y1, axis=-1) * np.linalg.norm(y2, axis=-1))
    cos = np.where(np.asarray(y_symmetric, dtype=bool), cos_axis, cos_general)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def pose_errors(
    sRT_1: np.ndarray, sRT_2: np.ndarray, y_symmetric: np.ndarray | bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation error in degrees and translation error in centimetres between poses, broadcast.

    Scale is removed as ``∛det`` (the NOCS evaluation's convention); symmetric objects as in
    :func:`rotation_error_deg`.

    Returns:
        ``(degrees, centimetres)``, each of the broadcast leading shape.
    """
    _, r1, t1 = decompose_sRT(sRT_1)
    _, r2, t2 = decompose_sRT(sRT_2)
    return rotation_error_deg(r1, r2, y_symmetric), 100.0 * np.linalg.norm(t1 - t2, axis=-1)
