"""Stable ids (acr_pose_ros.tracking): a built scene seen by a moving camera keeps its ids; objects that enter,
leave, come back and swap places in the detection order are named by where they are, not by their order."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.geometry.rotations import random_rotations
from acr_pose_core.pipeline import ObjectPose
from acr_pose_ros.tracking import Tracker

SECOND = 1_000_000_000  # ns


def pose(category: str, translation, rotation=None, scale: float = 0.2) -> ObjectPose:
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    size = np.array([0.5, 0.7, 0.5])
    sRT = np.eye(4)
    sRT[:3, :3], sRT[:3, 3] = scale * rotation, translation
    return ObjectPose(
        detection=0, class_id=1, category=category, score=0.9, sRT=sRT, rotation=rotation,
        translation=np.asarray(translation, dtype=np.float64), scale=scale, size_nocs=size, size=scale * size,
        corners=transform_points(sRT, box_corners(size)), mask=np.zeros((2, 2), bool), box=np.zeros(4, int),
        nocs=np.zeros((0, 3), np.float32), points=np.zeros((0, 3), np.float32),
    )  # fmt: skip


# A table scene in the world frame: two mugs 12 cm apart, a bowl, a laptop (metres)
WORLD = [("mug", [0.0, 0.0, 0.0]), ("mug", [0.12, 0.0, 0.0]), ("bowl", [-0.15, 0.02, 0.1]), ("laptop", [0.1, 0.0, 0.3])]


def seen_from(camera_x: float, objects=WORLD, order=None) -> list[ObjectPose]:
    """The scene's poses in the frame of a camera 0.8 m away, moved ``camera_x`` metres sideways, in ``order``."""
    order = range(len(objects)) if order is None else order
    return [pose(objects[k][0], np.array(objects[k][1]) - [camera_x, 0.0, -0.8]) for k in order]


def test_a_moving_camera_keeps_the_ids_whatever_the_detection_order():
    tracker = Tracker(max_distance=0.05, timeout=1.0)
    first, _ = tracker.update(0, seen_from(0.0))
    assert first == ["mug_0", "mug_1", "bowl_0", "laptop_0"]
    rng = np.random.default_rng(0)
    for step in range(1, 12):  # 2 cm a frame at 10 Hz, detections in a new order each frame
        order = rng.permutation(4)
        objects = seen_from(0.02 * step, order=order)
        ids, published = tracker.update(step * SECOND // 10, objects)
        assert ids == [first[k] for k in order], step
        assert all(p is o for p, o in zip(published, objects, strict=True))  # no smoothing: published as given
    assert len(tracker.tracks) == 4 and all(t.hits == 12 for t in tracker.tracks)


def test_entering_leaving_and_coming_back():
    tracker = Tracker(max_distance=0.05, timeout=1.0)
    tracker.update(0, seen_from(0.0)[:3])
    ids, _ = tracker.update(SECOND // 10, seen_from(0.0))  # the laptop enters: one new id, the others kept
    assert ids == ["mug_0", "mug_1", "bowl_0", "laptop_0"]
    ids, _ = tracker.update(2 * SECOND // 10, seen_from(0.0)[1:])  # mug_0 unseen (occluded)
    assert ids == ["mug_1", "bowl_0", "laptop_0"]
    ids, _ = tracker.update(SECOND, seen_from(0.0))  # back within the timeout (0.9 s unseen): its own id
    assert ids == ["mug_0", "mug_1", "bowl_0", "laptop_0"]
    tracker.update(SECOND + 5 * SECOND // 10, seen_from(0.0)[1:])
    tracker.update(2 * SECOND, seen_from(0.0)[1:])
    ids, _ = tracker.update(2 * SECOND + 3 * SECOND // 10, seen_from(0.0))  # mug_0 1.3 s unseen: gone, a new id
    assert ids == ["mug_2", "mug_1", "bowl_0", "laptop_0"]
    # a mug moved farther than the gate between two frames is a new object; ids are never reused
    moved = [("mug", [0.3, 0.0, 0.0])] + WORLD[1:]
    ids, _ = tracker.update(2 * SECOND + 4 * SECOND // 10, seen_from(0.0, moved))
    assert ids == ["mug_3", "mug_1", "bowl_0", "laptop_0"]


def test_the_category_separates_tracks_and_the_assignment_is_the_best_one():
    tracker = Tracker(max_distance=0.1, timeout=1.0)
    tracker.update(0, [pose("mug", [0.0, 0, 1]), pose("mug", [0.08, 0, 1]), pose("can", [0.04, 0, 1])])
    # each mug moved 4 cm right: greedy nearest-first would give the left mug's track to the right mug's old place
    ids, _ = tracker.update(1, [pose("mug", [0.04, 0, 1]), pose("mug", [0.12, 0, 1]), pose("can", [0.04, 0, 1])])
    assert ids == ["mug_0", "mug_1", "can_0"]


def test_reset_drops_the_tracks_and_the_ids_go_on_counting():
    tracker = Tracker()
    tracker.update(0, seen_from(0.0))
    assert tracker.reset() == 4 and tracker.tracks == []
    ids, _ = tracker.update(1, seen_from(0.0))
    assert ids == ["mug_2", "mug_3", "bowl_1", "laptop_1"]


def test_smoothing_follows_the_stated_equations():
    alpha = 0.75
    tracker = Tracker(max_distance=0.2, timeout=1.0, smoothing=alpha)
    R0 = random_rotations(1, np.random.default_rng(1))[0]
    still, _ = tracker.update(0, [pose("camera", [0.0, 0.0, 1.0], R0, 0.2)])
    _, [same] = tracker.update(1, [pose("camera", [0.0, 0.0, 1.0], R0, 0.2)])  # a constant pose stays put
    np.testing.assert_allclose(same.sRT, pose("camera", [0.0, 0.0, 1.0], R0, 0.2).sRT, atol=1e-12)
    turn = Rotation.from_rotvec([0.0, 0.4, 0.0]).as_matrix()  # 0.4 rad about y, in the object's frame
    _, [out] = tracker.update(2, [pose("camera", [0.08, 0.0, 1.0], R0 @ turn, 0.3)])
    np.testing.assert_allclose(out.translation, [0.02, 0.0, 1.0], atol=1e-12)  # (1 − α) of the step
    assert out.scale == pytest.approx(0.225)
    np.testing.assert_allclose(Rotation.from_matrix(R0.T @ out.rotation).as_rotvec(), [0, 0.1, 0], atol=1e-12)
    np.testing.assert_allclose(out.sRT[:3, :3], out.scale * out.rotation, atol=1e-12)
    np.testing.assert_allclose(out.size, 0.225 * out.size_nocs)
    np.testing.assert_allclose(out.corners, transform_points(out.sRT, box_corners(out.size_nocs)), atol=1e-12)
    assert still == ["camera_0"]


@pytest.mark.parametrize("args", [(0.0, 1.0, 0.0), (0.1, -1.0, 0.0), (0.1, 1.0, 1.0), (0.1, 1.0, -0.1)])
def test_bad_settings_are_refused(args):
    with pytest.raises(ValueError, match="max_distance"):
        Tracker(*args)
