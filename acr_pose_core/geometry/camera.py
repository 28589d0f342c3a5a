"""Pinhole cameras: intrinsics, pixel rays, projection and depth back-projection (numpy).

Convention (OpenCV): camera frame x right, y down, z forward, metres. Pixel ``(u, v)`` = (column, row); integer
coordinates are pixel centres. A camera-frame point ``p = (x, y, z)`` projects to ``u = fx·x/z + cx``,
``v = fy·y/z + cy``; the depth ``z`` at pixel ``(u, v)`` back-projects to ``((u − cx)·z/fx, (v − cy)·z/fy, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CAMERA_INTRINSICS",
    "REAL_INTRINSICS",
    "CameraIntrinsics",
    "backproject",
    "pixel_points",
    "pixel_rays",
    "project",
]


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image of ``width × height`` pixels (focal lengths and principal point in pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        """(3, 3) camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> CameraIntrinsics:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"camera matrix must be 3x3, got {K.shape}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))


CAMERA_INTRINSICS = CameraIntrinsics(577.5, 577.5, 319.5, 239.5, 640, 480)
"""NOCS-CAMERA (synthetic) intrinsics."""
REAL_INTRINSICS = CameraIntrinsics(591.0125, 590.16775, 322.525, 244.11084, 640, 480)
"""NOCS-REAL (Structure sensor) intrinsics."""


def pixel_rays(intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) ray directions through the pixel centres, scaled to unit depth: ``((u − cx)/fx, (v − cy)/fy, 1)``."""
    u = (np.arange(intrinsics.width) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height) - intrinsics.cy) / intrinsics.fy
    rays = np.ones((intrinsics.height, intrinsics.width, 3))
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    return rays


def project(points: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(..., 2) pixel coordinates ``(u, v)`` of camera-frame points ``(..., 3)`` (z > 0)."""
    points = np.asarray(points, dtype=np.float64)
    z = points[..., 2]
    return np.stack(
        [intrinsics.fx * points[..., 0] / z + intrinsics.cx, intrinsics.fy * points[..., 1] / z + intrinsics.cy], -1
    )


def backproject(
    depth: np.ndarray, intrinsics: CameraIntrinsics, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points of the valid pixels of a depth map.

    Args:
        depth: (H, W) depth in metres; 0, negative or non-finite means no measurement.
        intrinsics: the camera.
        mask: optional (H, W) bool, the pixels to keep (e.g. one instance).

    Returns:
        ``points (M, 3)`` metres, and ``pixels (M,)`` their flat indices ``v·W + u`` in row-major order.
    """
    depth = np.asarray(depth)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"depth is {depth.shape}, the camera is {intrinsics.height}x{intrinsics.width}")
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        if mask.shape != depth.shape:
            raise ValueError(f"mask is {mask.shape}, depth is {depth.shape}")
        valid &= mask.astype(bool)
    pixels = np.flatnonzero(valid)
    v, u = np.divmod(pixels, intrinsics.width)
    return pixel_points(u, v, depth.reshape(-1)[pixels].astype(np.float64), intrinsics), pixels


def pixel_points(u: np.ndarray, v: np.ndarray, z: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """``(M, 3)`` camera-frame points ``((u − cx)·z/fx, (v − cy)·z/fy, z)`` of pixels ``(u, v)`` (columns, rows,
    ``(M,)`` each) at depths ``z (M,)`` in metres: the back-projection of every part of the package."""
    return np.stack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z], -1)
