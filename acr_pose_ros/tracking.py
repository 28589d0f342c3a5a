"""Stable object ids across frames: each pose is matched to a track of the same category, or starts one.

Plain Python (no ROS), used by the node for ``Detection3D.id`` and the TF child frames.

Rules, per frame at stamp ``t`` (nanoseconds, the image's):

1. Tracks not seen for more than ``timeout`` seconds are dropped (``t − last_seen > timeout``).
2. Poses and live tracks of the same category are matched one to one by the smallest sum of distances between the
   pose's translation and the track's (the assignment problem, solved exactly), pairs farther apart than
   ``max_distance`` metres not allowed. The positions are in the frame the poses are given in (the camera's, unless
   the node transforms them): with a moving camera and no odometry the gate must cover the motion between frames.
3. A matched pose keeps its track's id; an unmatched one starts a track with id ``<category>_<n>``, ``n`` counting
   that category's tracks from 0 and never reused (not even after :meth:`Tracker.reset`, so a stale TF frame of an
   old id never names a new object).

Smoothing (off with ``smoothing = 0``): a matched track's published pose is, with ``α = smoothing`` in [0, 1),

    t̂ ← α·t̂ + (1 − α)·t,    ŝ ← α·ŝ + (1 − α)·s,    R̂ ← R̂·exp((1 − α)·log(R̂ᵀR))

(the rotation slerped from the track's towards the new one; ``s`` the scale, so the box's size follows). A new
track starts from the pose as it is.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.pipeline import ObjectPose

__all__ = ["Track", "Tracker"]

_FAR = 1e9  # the cost of a pair beyond the gate (never chosen: such pairs are dropped after the assignment)


@dataclass
class Track:
    """A tracked object: its id, category and the pose last published for it (camera frame, metres)."""

    id: str
    category: str
    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3)
    scale: float
    last_seen: int  # stamp, nanoseconds
    hits: int = 1  # frames it was matched in, the first included


class Tracker:
    """Ids (and optionally smoothed poses) for a sequence of frames (module docstring)."""

    def __init__(self, max_distance: float = 0.1, timeout: float = 1.0, smoothing: float = 0.0) -> None:
        if not max_distance > 0 or not timeout >= 0 or not 0 <= smoothing < 1:
            raise ValueError(
                f"max_distance must be positive, timeout not negative and smoothing in [0, 1); got {max_distance}, "
                f"{timeout}, {smoothing}"
            )
        self.max_distance, self.timeout, self.smoothing = max_distance, timeout, smoothing
        self.tracks: list[Track] = []
        self._counts: Counter[str] = Counter()

    def reset(self) -> int:
        """Drop every track (ids keep counting); returns how many were dropped."""
        dropped = len(self.tracks)
        self.tracks = []
        return dropped

    def update(self, stamp_ns: int, objects: list[ObjectPose]) -> tuple[list[str], list[ObjectPose]]:
        """The id of each of ``objects`` (a frame's poses at ``stamp_ns``) and the poses to publish (the same
        objects, smoothed when ``smoothing > 0``)."""
        self.tracks = [tr for tr in self.tracks if (stamp_ns - tr.last_seen) * 1e-9 <= self.timeout]
        ids: list[str | None] = [None] * len(objects)
        published = list(objects)
        for category in sorted({o.category for o in objects}):
            mine = [k for k, o in enumerate(objects) if o.category == category]
            tracks = [tr for tr in self.tracks if tr.category == category]
            pairs: list[tuple[int, int]] = []
            if tracks:
                where = np.array([objects[k].translation for k in mine])  # (P, 3)
                known = np.array([tr.translation for tr in tracks])  # (T, 3)
                distance = np.linalg.norm(where[:, None] - known[None], axis=-1)  # (P, T) metres
                rows, cols = linear_sum_assignment(np.where(distance <= self.max_distance, distance, _FAR))
                pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if distance[r, c] <= self.max_distance]
            matched = dict(pairs)
            for p, k in enumerate(mine):
                if p in matched:
                    track = tracks[matched[p]]
                    published[k] = self._follow(track, objects[k], stamp_ns)
                else:
                    track = self._start(objects[k], stamp_ns)
                ids[k] = track.id
        return [i for i in ids if i is not None], published

    def _start(self, obj: ObjectPose, stamp_ns: int) -> Track:
        track = Track(
            id=f"{obj.category}_{self._counts[obj.category]}",
            category=obj.category,
            translation=np.array(obj.translation, dtype=np.float64),
            rotation=np.array(obj.rotation, dtype=np.float64),
            scale=float(obj.scale),
            last_seen=stamp_ns,
        )
        self._counts[obj.category] += 1
        self.tracks.append(track)
        return track

    def _follow(self, track: Track, obj: ObjectPose, stamp_ns: int) -> ObjectPose:
        """Move ``track`` to ``obj`` (smoothed) and return the pose to publish."""
        track.last_seen, track.hits = stamp_ns, track.hits + 1
        a = self.smoothing
        if a == 0:
            track.translation, track.rotation, track.scale = obj.translation, obj.rotation, obj.scale
            return obj
        track.translation = a * track.translation + (1 - a) * np.asarray(obj.translation)
        track.scale = a * track.scale + (1 - a) * obj.scale
        step = Rotation.from_matrix(track.rotation.T @ obj.rotation).as_rotvec()  # log(R̂ᵀR)
        track.rotation = track.rotation @ Rotation.from_rotvec((1 - a) * step).as_matrix()
        return smoothed_pose(obj, track.translation, track.rotation, track.scale)


def smoothed_pose(obj: ObjectPose, translation: np.ndarray, rotation: np.ndarray, scale: float) -> ObjectPose:
    """``obj`` with its pose replaced (``sRT``, box size and corners follow; masks, points and scores kept)."""
    sRT = np.eye(4)
    sRT[:3, :3], sRT[:3, 3] = scale * rotation, translation
    return dataclasses.replace(
        obj,
        sRT=sRT,
        rotation=rotation,
        translation=translation,
        scale=scale,
        size=scale * obj.size_nocs,
        corners=transform_points(sRT, box_corners(obj.size_nocs)),
    )
