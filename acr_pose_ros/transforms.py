"""Poses in another frame (the node's ``target_frame``), and a small TF buffer for where tf2_ros is missing.

Plain Python (no ROS). Convention: ``T_a_b`` (4, 4) maps points of frame ``b`` into frame ``a``,
``p_a = T_a_b · p_b``; a TF message's transform with ``header.frame_id = a`` and ``child_frame_id = b`` is ``T_a_b``.

:class:`TransformBuffer` keeps the transforms heard on ``/tf`` (the last ``cache_s`` seconds of each edge) and
``/tf_static`` (timeless) and answers ``T_target_source`` at a stamp as tf2 does: along the chain of edges between
the two frames, each edge interpolated between the two transforms around the stamp (translation linearly, rotation
by slerp), an edge's only transform used as it is only at its own stamp, and no extrapolation (a stamp outside an
edge's data is an :class:`LookupError`, as is a missing chain). The node uses ``tf2_ros.Buffer`` where importable;
this buffer serves the same rules otherwise (the wheels-only test environment).

:func:`transform_estimate` moves a frame's poses by ``T_target_camera``: ``sRT' = T · sRT`` (so rotation
``R' = R_T R``, translation ``t' = R_T t + t_T``, scale and size unchanged), box corners likewise, and the pose
covariance rotated, ``Σ' = J Σ Jᵀ`` with ``J = diag(R_T, R_T)`` (the rotation of a rigid motion maps both the
translation's and the rotation vector's perturbations).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import deque

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from acr_pose_core.geometry.boxes import transform_points
from acr_pose_core.pipeline import FrameEstimate

__all__ = ["TransformBuffer", "matrix_from_transform", "transform_estimate"]


def matrix_from_transform(translation, rotation_xyzw) -> np.ndarray:
    """(4, 4) float64 of a translation (3,) and a unit quaternion ``x, y, z, w``."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(rotation_xyzw, dtype=np.float64)).as_matrix()
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def _inverse(T: np.ndarray) -> np.ndarray:
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


class TransformBuffer:
    """Transforms by edge, answered along chains at a stamp (module docstring). Not thread-safe by itself: the
    node guards it with a lock (the executor adds, the worker looks up)."""

    def __init__(self, cache_s: float = 10.0) -> None:
        if not cache_s > 0:
            raise ValueError(f"cache_s must be positive, got {cache_s}")
        self.cache_ns = int(cache_s * 1e9)
        self._static: dict[tuple[str, str], np.ndarray] = {}  # (parent, child) -> T_parent_child
        self._dynamic: dict[tuple[str, str], deque[tuple[int, np.ndarray]]] = {}  # time-sorted
        self._parent: dict[str, str] = {}  # child -> parent (a TF tree: one parent per frame)

    def add(self, parent: str, child: str, stamp_ns: int, T_parent_child: np.ndarray, static: bool = False) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if parent == child:
            raise ValueError(f"a transform from {parent!r} to itself")
        self._parent[child] = parent
        if static:
            self._static[(parent, child)] = np.asarray(T_parent_child, dtype=np.float64)
            return
        history = self._dynamic.setdefault((parent, child), deque())
        if history and stamp_ns < history[-1][0]:  # out of order: insert in place (rare)
            items = list(history)
            bisect.insort(items, (stamp_ns, np.asarray(T_parent_child, dtype=np.float64)), key=lambda x: x[0])
            history.clear()
            history.extend(items)
        else:
            history.append((stamp_ns, np.asarray(T_parent_child, dtype=np.float64)))
        while history and history[-1][0] - history[0][0] > self.cache_ns:
            history.popleft()

    def _edge(self, parent: str, child: str, stamp_ns: int) -> np.ndarray:
        if (parent, child) in self._static:
            return self._static[(parent, child)]
        history = self._dynamic.get((parent, child))
        if not history:
            raise LookupError(f"no transform {parent} -> {child}")
        stamps = [s for s, _ in history]
        if stamp_ns < stamps[0] or stamp_ns > stamps[-1]:
            raise LookupError(
                f"{parent} -> {child} is known from {stamps[0] * 1e-9:.3f} to {stamps[-1] * 1e-9:.3f} s, not at "
                f"{stamp_ns * 1e-9:.3f} s (no extrapolation)"
            )
        k = bisect.bisect_left(stamps, stamp_ns)
        if stamps[k] == stamp_ns:
            return history[k][1]
        (s0, T0), (s1, T1) = history[k - 1], history[k]
        u = (stamp_ns - s0) / (s1 - s0)
        T = np.eye(4)
        T[:3, 3] = (1 - u) * T0[:3, 3] + u * T1[:3, 3]
        T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]])))(u).as_matrix()
        return T

    def _to_root(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 1000:
                raise LookupError(f"a loop in the TF tree above {frame!r}")
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """(4, 4) ``T_target_source`` at ``stamp_ns`` (module docstring); LookupError when it cannot be known."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        up_source, up_target = self._to_root(source), self._to_root(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise LookupError(f"{target!r} and {source!r} are not connected (no TF chain between them)")
        T_common_source = np.eye(4)
        for child in up_source[: up_source.index(common)]:  # source up to the common frame
            T_common_source = self._edge(self._parent[child], child, stamp_ns) @ T_common_source
        T_common_target = np.eye(4)
        for child in up_target[: up_target.index(common)]:
            T_common_target = self._edge(self._parent[child], child, stamp_ns) @ T_common_target
        return _inverse(T_common_target) @ T_common_source


def transform_estimate(estimate: FrameEstimate, T_target_camera: np.ndarray) -> FrameEstimate:
    """``estimate``'s poses, boxes and covariances in the target frame (module docstring); masks, points and
    scores unchanged."""
    T = np.asarray(T_target_camera, dtype=np.float64)
    R = T[:3, :3]
    J = np.zeros((6, 6))
    J[:3, :3] = J[3:, 3:] = R
    objects = []
    for obj in estimate.objects:
        sRT = T @ obj.sRT
        objects.append(
            dataclasses.replace(
                obj,
                sRT=sRT,
                rotation=R @ obj.rotation,
                translation=sRT[:3, 3].copy(),
                corners=transform_points(T, obj.corners),
                covariance=J @ obj.covariance @ J.T,
            )
        )
    return dataclasses.replace(estimate, objects=objects)
