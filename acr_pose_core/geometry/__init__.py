"""Geometry: rotations and poses, Umeyama alignment, batched RANSAC, NOCS boxes and 3D IoU, point-cloud distances.

numpy and torch, no I/O. Conventions: camera frame OpenCV (x right, y down, z forward), metres; canonical (NOCS)
frame y up, centred on the tight box, box diagonal 1; poses ``sRT`` with ``p_camera = s·R·p_nocs + t``.
"""

from acr_pose_core.geometry.boxes import IoUMode, box_corners, iou_3d, transform_points
from acr_pose_core.geometry.camera import (
    CAMERA_INTRINSICS,
    REAL_INTRINSICS,
    CameraIntrinsics,
    backproject,
    pixel_rays,
    project,
)
from acr_pose_core.geometry.pointclouds import chamfer_distance
from acr_pose_core.geometry.ransac import ObjectPoses, RansacResult, poses_from_nocs, ransac_umeyama, ransac_uniforms
from acr_pose_core.geometry.rotations import (
    compose_sRT,
    decompose_sRT,
    pose_errors,
    random_rotations,
    rotation_about_y,
    rotation_error_deg,
)
from acr_pose_core.geometry.umeyama import SimilarityTransform, umeyama

__all__ = [
    "CAMERA_INTRINSICS",
    "REAL_INTRINSICS",
    "CameraIntrinsics",
    "backproject",
    "pixel_rays",
    "project",
    "IoUMode",
    "ObjectPoses",
    "RansacResult",
    "SimilarityTransform",
    "box_corners",
    "chamfer_distance",
    "compose_sRT",
    "decompose_sRT",
    "iou_3d",
    "pose_errors",
    "poses_from_nocs",
    "random_rotations",
    "ransac_umeyama",
    "ransac_uniforms",
    "rotation_about_y",
    "rotation_error_deg",
    "transform_points",
    "umeyama",
]
