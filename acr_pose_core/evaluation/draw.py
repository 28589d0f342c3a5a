"""Pictures of poses: projected 3D boxes and object axes over the colour image (as the paper's Figure 4).

Each object is drawn from its pose ``sRT`` (4, 4) (``p_camera = sRT[:3, :3] p_nocs + sRT[:3, 3]``, metres) and its
NOCS-unit box ``size (3,)``: the box's 12 edges, and its x (red), y (green), z (blue) axes from the box centre to
the faces. Edges with an end behind the camera (z ≤ 1 mm) are left out rather than drawn wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.geometry.boxes import BOX_EDGES, box_corners, transform_points
from acr_pose_core.geometry.camera import CameraIntrinsics, project

__all__ = ["CATEGORY_COLOURS", "BoxDrawing", "draw_boxes"]

CATEGORY_COLOURS: dict[str, tuple[int, int, int]] = dict(
    zip(
        CATEGORIES,
        [(66, 135, 245), (245, 166, 35), (155, 89, 182), (46, 204, 113), (241, 196, 15), (231, 76, 60)],
        strict=True,
    )
)
"""RGB colour of each category's boxes."""

_MIN_Z = 1e-3


@dataclass(frozen=True)
class BoxDrawing:
    """One box to draw: pose, NOCS-unit size, a label (or ""), RGB colour and line thickness in pixels."""

    sRT: np.ndarray
    size: np.ndarray
    label: str = ""
    colour: tuple[int, int, int] = (0, 255, 0)
    thickness: int = 2
    axes: bool = True


def _segment(image: np.ndarray, a: np.ndarray, b: np.ndarray, colour, thickness: int) -> None:
    pa, pb = (np.round(np.clip(p, -1e5, 1e5)).astype(int) for p in (a, b))  # far ends: cv2 clips, int32 must hold
    cv2.line(image, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), colour, thickness, cv2.LINE_AA)


def draw_boxes(rgb: np.ndarray, boxes: Sequence[BoxDrawing], intrinsics: CameraIntrinsics) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with ``boxes`` drawn in order (later ones on top)."""
    image = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    for box in boxes:
        size = np.asarray(box.size, dtype=np.float64)
        corners = transform_points(box.sRT, box_corners(size))  # (8, 3) camera frame, metres
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = project(corners, intrinsics)  # (8, 2) u, v; used only where z > _MIN_Z
        front = corners[:, 2] > _MIN_Z
        for i, j in BOX_EDGES:
            if front[i] and front[j]:
                _segment(image, pixels[i], pixels[j], box.colour, box.thickness)
        origin_axes = np.vstack([np.zeros(3), np.diag(size / 2)])  # (4, 3): centre, +x, +y, +z face centres
        ends = transform_points(box.sRT, origin_axes)
        if box.axes and (ends[:, 2] > _MIN_Z).all():
            px = project(ends, intrinsics)
            for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
                _segment(image, px[0], px[k + 1], colour, box.thickness)
        if box.label and front.any():
            top = pixels[front]
            u, v = int(top[:, 0].min()), int(top[:, 1].min()) - 4
            v = max(v, 12)
            cv2.putText(image, box.label, (u, v), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, box.label, (u, v), cv2.FONT_HERSHEY_SIMPLEX, 0.45, box.colour, 1, cv2.LINE_AA)
    return image
