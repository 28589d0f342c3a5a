"""The node's parameters: names, defaults, rules (``config/pose.yaml`` holds the same names and defaults).

:class:`NodeParameters` is plain Python so that the rules are tested without ROS; the node declares one ROS
parameter per field, reads them back into :meth:`NodeParameters.from_mapping` at start (a bad value stops the node
with a message naming the parameter) and again in its parameter callback for the ones in :data:`RUNTIME`
(changeable while it runs; the others need a restart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from acr_pose_core.categories import CATEGORIES

__all__ = [
    "INPUT_TOPICS",
    "LABEL_TOPICS",
    "NODE_NAME",
    "RUNTIME",
    "NodeParameters",
    "ParameterError",
    "load_parameter_file",
]

NODE_NAME = "acr_pose"
"""The node's default name: the key of its section in ``config/pose.yaml``."""

INPUT_TOPICS = ("color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info")
"""The node's synchronised inputs (relative names, remapped by the launch file): colour, aligned depth, camera info."""

LABEL_TOPICS = ("labels/image", "labels/detections")
"""The extra inputs of ``mask_source: labels``: instance-label image and the Detection2DArray naming its labels."""

RUNTIME = frozenset({"score_threshold", "categories", "max_objects", "min_depth", "max_depth", "target_frame"})
"""Parameters that take effect on the next frame when set while the node runs."""


class ParameterError(ValueError):
    """A parameter value outside its rules (the message names the parameter)."""


def _param(default: Any, description: str) -> Any:
    """A parameter's default and its one-line description (what ``ros2 param describe`` and the README table show)."""
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class NodeParameters:
    """Everything the node can be told (see ``config/pose.yaml`` for the same with comments).

    Attributes:
        model: a model folder (``acr-pose export``); empty: the shipped default.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        cuda_graphs: on a CUDA device, replay the pose step from CUDA graphs (``PoseEstimator(cuda_graphs=True)``:
            objects padded to a few counts, each count captured at its first frame); ignored, with a warning, when
            the model runs on the CPU.
        mask_source: ``segmenter`` (the model folder's Mask R-CNN) or ``labels`` (an external segmenter's
            instance-label image plus a Detection2DArray naming the labels, see :mod:`acr_pose_ros.conversions`).
        score_threshold: objects whose mask score is below are not posed, in [0, 1].
        categories: the categories to pose (a subset of the six).
        max_objects: at most this many objects a frame, the highest scores first.
        sync_queue_size, sync_slop: the approximate-time synchroniser's queue per input and the largest stamp
            difference (seconds) within one synchronised set.
        input_reliability: QoS reliability of the image and camera-info subscriptions: ``reliable`` (history
            depth 2; the default: best-effort 640×480 images lose fragments over Fast DDS on one machine, measured
            2–3 of 20 arriving, reliable 20 of 20; it cannot connect to a best-effort publisher, which rclpy reports
            as "offering incompatible QoS") or ``best_effort`` (the sensor-data profile, depth 5; receives both).
        frame_prefix: TF child frames are ``<frame_prefix><id>``.
        target_frame: publish poses, boxes, covariances and TF in this frame (e.g. ``base_link``), transformed at the
            image's stamp through TF; empty: the colour image's optical frame.
        transform_timeout: seconds to wait for that transform before the frame is skipped (and counted).
        tracking: stable ids (:mod:`acr_pose_ros.tracking`): ``Detection3D.id`` and the TF child name the same
            object from frame to frame; False: ``<category>_<i>`` counted within each frame.
        track_max_distance: metres; a pose farther than this from every live track of its category starts a track.
        track_timeout: seconds (of image stamps) a track lives unseen.
        pose_smoothing: ``α`` in [0, 1) of the tracks' exponential smoothing of pose and size; 0: off.
        min_posed_rate: Hz; ``/diagnostics`` says WARN while fewer sets a second are posed (0: never).
        diagnostics_window: seconds; the rates, latencies and stage times on ``/diagnostics`` are over this window.
        publish_tf: one TF frame per object on ``/tf``.
        publish_markers, publish_debug_image: RViz markers and an annotated image, built only while subscribed.
        depth_scale: metres per unit of 16-bit depth images; 0: millimetres (REP 118). 32FC1 depth is metres.
        min_depth, max_depth: depth outside [min, max] metres counts as missing (``max_depth`` 0: no upper bound).
    """

    model: str = _param("", "model folder (acr-pose export); empty: the shipped default")
    device: str = _param("auto", "auto, cpu, cuda or cuda:<index>")
    cuda_graphs: bool = _param(False, "on a CUDA device, replay the pose step from CUDA graphs (ignored on the CPU)")
    mask_source: str = _param(
        "segmenter", "segmenter (the model's Mask R-CNN) or labels (label image + Detection2DArray topics)"
    )
    score_threshold: float = _param(0.3, "objects with a lower mask score are not posed, in [0, 1]")
    categories: tuple[str, ...] = _param(CATEGORIES, "categories to pose: bottle, bowl, camera, can, laptop, mug")
    max_objects: int = _param(10, "at most this many objects a frame, highest scores first")
    sync_queue_size: int = _param(10, "approximate-time synchroniser queue per input")
    sync_slop: float = _param(0.05, "largest stamp difference within a synchronised set, seconds")
    input_reliability: str = _param(
        "reliable", "QoS reliability of the inputs: reliable (default; depth 2) or best_effort (sensor data)"
    )
    frame_prefix: str = _param("acr_pose/", "TF child frames are <frame_prefix><id>")
    target_frame: str = _param(
        "", "publish poses and TF in this frame (e.g. base_link) through TF; empty: the optical frame"
    )
    transform_timeout: float = _param(0.1, "seconds to wait for the target frame's transform before skipping the frame")
    tracking: bool = _param(True, "stable ids: the same object keeps its Detection3D id and TF frame across frames")
    track_max_distance: float = _param(
        0.1, "metres: a pose farther from every live track of its category starts a new track"
    )
    track_timeout: float = _param(1.0, "seconds (image stamps) a track lives unseen")
    pose_smoothing: float = _param(0.0, "alpha in [0, 1) of the tracks' exponential smoothing of pose and size; 0: off")
    min_posed_rate: float = _param(1.0, "Hz: /diagnostics says WARN while fewer sets a second are posed; 0: never")
    diagnostics_window: float = _param(10.0, "seconds over which /diagnostics reports rates, latency and stage times")
    publish_tf: bool = _param(True, "publish one TF frame per object")
    publish_markers: bool = _param(True, "publish RViz markers on ~/markers (only while subscribed)")
    publish_debug_image: bool = _param(True, "publish an annotated image on ~/debug_image (only while subscribed)")
    depth_scale: float = _param(0.0, "metres per unit of 16-bit depth; 0: millimetres")
    min_depth: float = _param(0.1, "depth below this many metres counts as missing")
    max_depth: float = _param(5.0, "depth above this many metres counts as missing; 0: no bound")

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ParameterError:
            return ParameterError(f"parameter '{name}' = {getattr(self, name)!r}: {rule}")

        if self.mask_source not in ("segmenter", "labels"):
            raise bad("mask_source", "must be 'segmenter' or 'labels'")
        if not self.device or not (self.device in ("auto", "cpu") or self.device.startswith(("cuda", "mps"))):
            raise bad("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'")
        if not (isinstance(self.score_threshold, float) and 0.0 <= self.score_threshold <= 1.0):
            raise bad("score_threshold", "must be a number in [0, 1]")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories:
            raise bad("categories", f"must be a non-empty list of {', '.join(CATEGORIES)}")
        if self.max_objects < 1:
            raise bad("max_objects", "must be at least 1")
        if self.sync_queue_size < 1:
            raise bad("sync_queue_size", "must be at least 1")
        if not (math.isfinite(self.sync_slop) and self.sync_slop > 0):
            raise bad("sync_slop", "must be a positive number of seconds")
        if self.input_reliability not in ("best_effort", "reliable"):
            raise bad("input_reliability", "must be 'best_effort' or 'reliable'")
        if "//" in self.frame_prefix or self.frame_prefix.startswith("/") or " " in self.frame_prefix:
            raise bad("frame_prefix", "must be a valid TF frame prefix (no leading '/', no '//', no spaces)")
        if self.target_frame.startswith("/") or " " in self.target_frame:
            raise bad("target_frame", "must be a TF frame name (no leading '/', no spaces) or empty")
        if not (math.isfinite(self.transform_timeout) and self.transform_timeout >= 0):
            raise bad("transform_timeout", "must be a non-negative number of seconds")
        if not (math.isfinite(self.track_max_distance) and self.track_max_distance > 0):
            raise bad("track_max_distance", "must be a positive number of metres")
        if not (math.isfinite(self.track_timeout) and self.track_timeout >= 0):
            raise bad("track_timeout", "must be a non-negative number of seconds")
        if not (math.isfinite(self.pose_smoothing) and 0 <= self.pose_smoothing < 1):
            raise bad("pose_smoothing", "must be in [0, 1) (0: no smoothing)")
        if not (math.isfinite(self.min_posed_rate) and self.min_posed_rate >= 0):
            raise bad("min_posed_rate", "must be a non-negative number of frames a second")
        if not (math.isfinite(self.diagnostics_window) and self.diagnostics_window > 0):
            raise bad("diagnostics_window", "must be a positive number of seconds")
        if not (math.isfinite(self.depth_scale) and self.depth_scale >= 0):
            raise bad("depth_scale", "must be 0 (millimetres) or a positive number of metres per unit")
        if not (math.isfinite(self.min_depth) and self.min_depth >= 0):
            raise bad("min_depth", "must be a non-negative number of metres")
        if not (math.isfinite(self.max_depth) and (self.max_depth == 0 or self.max_depth > self.min_depth)):
            raise bad("max_depth", f"must be 0 (no bound) or more than min_depth = {self.min_depth}")

    @classmethod
    def description(cls, name: str) -> str:
        """The one-line description of parameter ``name``."""
        return next(f.metadata["description"] for f in fields(cls) if f.name == name)

    @classmethod
    def names(cls) -> list[str]:
        """The parameter names, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: NodeParameters | None = None) -> NodeParameters:
        """Parameters from ``values`` (names as in :meth:`names`), the rest from ``base`` (default: defaults).

        Integers are accepted for float parameters, lists for ``categories``. Raises :class:`ParameterError` for
        unknown names, values of the wrong type and values outside the rules.
        """
        base = base or cls()
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ParameterError(f"unknown parameters {unknown}; known: {', '.join(cls.names())}")
        defaults = cls()
        changes: dict[str, Any] = {}
        for name, value in values.items():
            default = getattr(defaults, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            elif isinstance(default, tuple):
                ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
                value = tuple(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ParameterError(
                    f"parameter '{name}' = {value!r}: must be {type(default).__name__.replace('tuple', 'list of str')}"
                )
            changes[name] = value
        return replace(base, **changes)

    def to_mapping(self) -> dict[str, Any]:
        """``{name: value}`` with ROS parameter types (lists for ``categories``)."""
        values = asdict(self)
        values["categories"] = list(self.categories)
        return values


def load_parameter_file(path: str | Path, node_name: str = NODE_NAME) -> NodeParameters:
    """The parameters of ``node_name`` in a ROS 2 parameter file (``<node>: ros__parameters: {...}``), checked."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"no parameter file {path}")
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = document.get(node_name, document.get("/**", {}))
    if not isinstance(section, dict) or "ros__parameters" not in section:
        raise ParameterError(f"{path} has no '{node_name}: ros__parameters:' section")
    return NodeParameters.from_mapping(section["ros__parameters"] or {})
