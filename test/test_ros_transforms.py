"""Poses in a target frame (acr_pose_ros.transforms): a TF tree built from known transforms is answered along its
chains, interpolated between stamps and never extrapolated; poses, boxes and covariances move with the transform."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.geometry.rotations import random_rotations
from acr_pose_core.pipeline import FrameEstimate, ObjectPose
from acr_pose_ros.transforms import TransformBuffer, matrix_from_transform, transform_estimate

S = 1_000_000_000  # ns


def rigid(rotvec, translation) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rotation.from_rotvec(rotvec).as_matrix(), translation
    return T


def test_matrix_from_a_tf_message_quaternion():
    q = Rotation.from_rotvec([0.1, -0.4, 0.3]).as_quat()  # x, y, z, w
    T = matrix_from_transform([1.0, 2.0, 3.0], q)
    np.testing.assert_allclose(T[:3, :3], Rotation.from_rotvec([0.1, -0.4, 0.3]).as_matrix(), atol=1e-15)
    np.testing.assert_array_equal(T[:3, 3], [1.0, 2.0, 3.0])


def test_chains_interpolation_and_refusals():
    buffer = TransformBuffer(cache_s=10.0)
    T_world_base = rigid([0, 0, 0.5], [1.0, 0.0, 0.0])
    T_base_cam0, T_base_cam2 = rigid([0, 0.2, 0], [0.1, 0.0, 0.5]), rigid([0, 0.6, 0], [0.3, 0.0, 0.5])
    T_world_table = rigid([0.1, 0, 0], [0.0, 2.0, 0.0])
    buffer.add("world", "base_link", 0, T_world_base, static=True)
    buffer.add("/base_link", "camera", 0, T_base_cam0)  # a leading slash names the same frame
    buffer.add("base_link", "camera", 2 * S, T_base_cam2)
    buffer.add("world", "table", 5 * S, T_world_table, static=True)
    np.testing.assert_allclose(buffer.lookup("base_link", "camera", 0), T_base_cam0, atol=1e-15)
    # halfway: translation and angle halfway (rotations about one axis: the slerp is the mean angle)
    np.testing.assert_allclose(buffer.lookup("base_link", "camera", S), rigid([0, 0.4, 0], [0.2, 0, 0.5]), atol=1e-12)
    # up two edges and down another branch; statics at any stamp
    expected = np.linalg.inv(T_world_table) @ T_world_base @ rigid([0, 0.4, 0], [0.2, 0, 0.5])
    np.testing.assert_allclose(buffer.lookup("table", "camera", S), expected, atol=1e-12)
    np.testing.assert_allclose(buffer.lookup("camera", "table", S), np.linalg.inv(expected), atol=1e-12)
    np.testing.assert_array_equal(buffer.lookup("camera", "camera", 123), np.eye(4))
    with pytest.raises(LookupError, match="no extrapolation"):
        buffer.lookup("base_link", "camera", 3 * S)
    with pytest.raises(LookupError, match="not connected"):
        buffer.lookup("base_link", "nowhere", S)
    single = TransformBuffer()
    single.add("a", "b", 5 * S, T_base_cam0)
    np.testing.assert_array_equal(single.lookup("a", "b", 5 * S), T_base_cam0)  # its own stamp only
    with pytest.raises(LookupError):
        single.lookup("a", "b", 5 * S + 1)
    with pytest.raises(ValueError, match="itself"):
        single.add("a", "a", 0, np.eye(4))


def test_the_cache_keeps_the_last_seconds_and_orders_late_transforms():
    buffer = TransformBuffer(cache_s=2.0)
    for k in range(6):
        buffer.add("base", "cam", k * S, rigid([0, 0, 0], [float(k), 0, 0]))
    with pytest.raises(LookupError, match="known from 3.000"):
        buffer.lookup("base", "cam", 2 * S)
    buffer.add("base", "cam", 4 * S + S // 2, rigid([0, 0, 0], [7.0, 0, 0]))  # late, between two others
    np.testing.assert_allclose(buffer.lookup("base", "cam", 4 * S + S // 4)[:3, 3], [5.5, 0, 0], atol=1e-12)
    with pytest.raises(ValueError, match="cache_s"):
        TransformBuffer(cache_s=0)


def test_poses_boxes_and_covariances_move_with_the_transform():
    rng = np.random.default_rng(0)
    R = random_rotations(1, rng)[0]
    size = np.array([0.5, 0.7, 0.4])
    sRT = np.eye(4)
    sRT[:3, :3], sRT[:3, 3] = 0.2 * R, [0.1, -0.05, 0.8]
    A = rng.normal(0, 0.01, (6, 6))
    obj = ObjectPose(
        detection=0, class_id=6, category="mug", score=0.9, sRT=sRT, rotation=R, translation=sRT[:3, 3].copy(),
        scale=0.2, size_nocs=size, size=0.2 * size, corners=transform_points(sRT, box_corners(size)),
        mask=np.zeros((2, 2), bool), box=np.zeros(4, int), nocs=np.zeros((0, 3), np.float32),
        points=np.zeros((0, 3), np.float32), covariance=A @ A.T,
    )  # fmt: skip
    T = rigid([0.3, -1.0, 2.0], [0.5, 0.2, 1.0])
    [moved] = transform_estimate(FrameEstimate([obj], [], (2, 2)), T).objects
    np.testing.assert_allclose(moved.sRT, T @ sRT, atol=1e-15)
    np.testing.assert_allclose(moved.rotation, T[:3, :3] @ R, atol=1e-15)
    np.testing.assert_allclose(moved.translation, T[:3, :3] @ sRT[:3, 3] + T[:3, 3], atol=1e-15)
    np.testing.assert_allclose(moved.corners, transform_points(T, obj.corners), atol=1e-15)
    assert moved.scale == obj.scale and np.array_equal(moved.size, obj.size)
    # a perturbation (δt, δθ) of the camera-frame pose is the perturbation J (δt, δθ) of the moved one: Σ' = J Σ Jᵀ
    delta = rng.normal(0, 0.01, 6)
    perturbed = np.eye(4)
    perturbed[:3, :3] = Rotation.from_rotvec(delta[3:]).as_matrix() @ R
    perturbed[:3, 3] = sRT[:3, 3] + delta[:3]
    moved_perturbed = T @ perturbed
    d_t = moved_perturbed[:3, 3] - moved.translation
    d_theta = Rotation.from_matrix(moved_perturbed[:3, :3] @ moved.rotation.T).as_rotvec()
    J = np.zeros((6, 6))
    J[:3, :3] = J[3:, 3:] = T[:3, :3]
    np.testing.assert_allclose(np.concatenate([d_t, d_theta]), J @ delta, atol=1e-12)
    np.testing.assert_allclose(moved.covariance, J @ obj.covariance @ J.T, atol=1e-15)
