"""The node's output messages on the wire: built, serialised to CDR and decoded with rosbags under the Humble and
Jazzy definitions, field by field against the estimate; and rclpy's own serialisation decoded the same way."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import require_ros

from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.geometry.rotations import random_rotations
from acr_pose_core.pipeline import FrameEstimate, ObjectPose
from acr_pose_ros.bag import rosbags_types, typestore
from acr_pose_ros.messages import detection_array, marker_array, object_names, ros_types, transform_message

pytest.importorskip("rosbags")
DISTROS = ("humble", "jazzy")
NAMES = {
    "vision_msgs/msg/Detection3DArray": detection_array,
    "tf2_msgs/msg/TFMessage": transform_message,
    "visualization_msgs/msg/MarkerArray": marker_array,
}


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation of a unit quaternion, written out (not scipy's), float64."""
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


@pytest.fixture(scope="module")
def estimate() -> FrameEstimate:
    rng = np.random.default_rng(3)
    rotations = random_rotations(4, rng)
    objects = []
    for k, (category, class_id) in enumerate([("mug", 6), ("bowl", 2), ("mug", 6), ("laptop", 5)]):
        scale, size = rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.8, 3)
        sRT = np.eye(4)
        sRT[:3, :3], sRT[:3, 3] = scale * rotations[k], rng.uniform(-0.3, 0.3, 3) + [0, 0, 1]
        objects.append(ObjectPose(
            detection=k, class_id=class_id, category=category, score=float(rng.uniform(0.3, 1)), sRT=sRT,
            rotation=rotations[k], translation=sRT[:3, 3].copy(), scale=scale, size_nocs=size, size=scale * size,
            corners=transform_points(sRT, box_corners(size)), mask=np.zeros((4, 4), bool), box=np.zeros(4, int),
            nocs=np.zeros((0, 3), np.float32), points=np.zeros((0, 3), np.float32),
        ))  # fmt: skip
        if k < 3:  # a built symmetric positive definite covariance; the laptop's stays undetermined (NaN)
            A = rng.normal(0, 0.01, (6, 6))
            objects[-1] = dataclasses.replace(objects[-1], covariance=A @ A.T + 1e-6 * np.eye(6))
    return FrameEstimate(objects, [], (480, 640))


def header(types):
    return types("std_msgs/msg/Header")(
        stamp=types("builtin_interfaces/msg/Time")(sec=1700000000, nanosec=123456789), frame_id="camera_optical"
    )


def check_detections(msg, estimate) -> None:
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        1700000000, 123456789, "camera_optical",
    )  # fmt: skip
    assert [d.id for d in msg.detections] == ["mug_0", "bowl_0", "mug_1", "laptop_0"]
    for det, obj in zip(msg.detections, estimate.objects, strict=True):
        assert det.header.frame_id == "camera_optical" and len(det.results) == 1
        result = det.results[0]
        assert result.hypothesis.class_id == obj.category and result.hypothesis.score == obj.score
        for pose in (result.pose.pose, det.bbox.center):
            p, q = pose.position, pose.orientation
            np.testing.assert_allclose([p.x, p.y, p.z], obj.translation, rtol=0, atol=1e-12)
            assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1) < 1e-12 and q.w >= 0
            np.testing.assert_allclose(quaternion_matrix(q.x, q.y, q.z, q.w), obj.rotation, rtol=0, atol=1e-12)
        size = det.bbox.size
        np.testing.assert_allclose([size.x, size.y, size.z], obj.scale * obj.size_nocs, rtol=0, atol=1e-12)
        expected = obj.covariance.reshape(36) if np.isfinite(obj.covariance).all() else np.zeros(36)  # 0: unknown
        assert np.array_equal(np.asarray(result.pose.covariance), expected)
    assert np.count_nonzero([np.any(d.results[0].pose.covariance) for d in msg.detections]) == 3


@pytest.mark.parametrize("distro", DISTROS)
def test_detections_tf_and_markers_survive_cdr(estimate, distro):
    store = typestore(distro)
    types = rosbags_types(store)
    decoded = {}
    for name, build in NAMES.items():
        msg = build(types, header(types), estimate)
        decoded[name] = store.deserialize_cdr(store.serialize_cdr(msg, name), name)
    check_detections(decoded["vision_msgs/msg/Detection3DArray"], estimate)
    tf = decoded["tf2_msgs/msg/TFMessage"]
    assert [t.child_frame_id for t in tf.transforms] == [f"acr_pose/{n}" for n in object_names(estimate.objects)]
    for t, obj in zip(tf.transforms, estimate.objects, strict=True):
        assert t.header.frame_id == "camera_optical" and t.header.stamp.nanosec == 123456789
        v, q = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([v.x, v.y, v.z], obj.translation, rtol=0, atol=1e-12)
        np.testing.assert_allclose(quaternion_matrix(q.x, q.y, q.z, q.w), obj.rotation, rtol=0, atol=1e-12)
    markers = decoded["visualization_msgs/msg/MarkerArray"].markers
    assert markers[0].action == 3 and len(markers) == 1 + 2 * len(estimate.objects)
    for k, obj in enumerate(estimate.objects):
        box, label = markers[1 + 2 * k], markers[2 + 2 * k]
        assert box.type == 5 and len(box.points) == 24 and label.type == 9 and obj.category in label.text
        ends = np.array([[p.x, p.y, p.z] for p in box.points])
        # every corner is the end of exactly three of the 12 edges
        for corner in obj.corners:
            assert (np.abs(ends - corner).max(axis=1) < 1e-12).sum() == 3


def fields_equal(a, b, where: str = "") -> None:
    """Decoded messages equal field by field (numpy arrays element by element)."""
    if dataclasses.is_dataclass(a):
        assert type(a).__name__ == type(b).__name__, where
        for f in dataclasses.fields(a):
            if f.name != "__msgtype__":
                fields_equal(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            fields_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("distro", DISTROS)
def test_rclpy_messages_decode_with_rosbags(estimate, distro):
    """What the node publishes (rclpy's classes and serialiser) reads back under both distros' definitions as the
    same message the rosbags builders make."""
    require_ros()
    from rclpy.serialization import serialize_message

    store = typestore(distro)
    for name, build in NAMES.items():
        from_rclpy = store.deserialize_cdr(serialize_message(build(ros_types, header(ros_types), estimate)), name)
        built = build(rosbags_types(store), header(rosbags_types(store)), estimate)
        from_rosbags = store.deserialize_cdr(store.serialize_cdr(built, name), name)  # float32 fields rounded
        fields_equal(from_rclpy, from_rosbags, name)
    check_detections(
        store.deserialize_cdr(
            serialize_message(detection_array(ros_types, header(ros_types), estimate)),
            "vision_msgs/msg/Detection3DArray",
        ),
        estimate,
    )
