"""Pose estimates → ROS messages: Detection3DArray, TF and RViz markers (one home for the node and the bag tool).

Builders take ``types``, a function from a full type name (``"vision_msgs/msg/Detection3D"``) to a constructor
that accepts any subset of the message's fields as keywords (the rest take their defaults): :func:`ros_types` for
rclpy's generated classes, :func:`acr_pose_ros.bag.rosbags_types` for rosbags. Headers are passed through unchanged
(the input colour image's stamp and optical frame).

Conventions (DESIGN.md, "ROS conventions"): the camera's optical frame is OpenCV's (x right, y down, z forward),
metres. For an object with ``p_camera = s·R·p_nocs + t``:

- ``Detection3D.results[0].hypothesis.class_id`` = category name, ``.score`` in [0, 1];
- ``.results[0].pose.pose``: position ``t``, orientation the unit quaternion of ``R`` (x, y, z, w; w ≥ 0);
- ``.results[0].pose.covariance``: :attr:`ObjectPose.covariance <acr_pose_core.pipeline.ObjectPose>` row-major
  (x, y, z, rot_x, rot_y, rot_z about the image frame's axes; m², rad²), all zero where it is undetermined; the
  y-symmetric categories (bottle, bowl, can) carry variance π²/3 about their own y axis (the free rotation);
- ``bbox.center`` = the same pose (NOCS boxes are centred on the object origin), ``bbox.size = s · size_nocs``
  metres along the object's own x, y, z;
- ``id`` = ``<category>_<i>``: the node's track id (:mod:`acr_pose_ros.tracking`: the same physical object keeps
  it from frame to frame), or without tracking ``i`` counting that category's objects in the frame in detection
  order (:func:`object_names`); the TF child frame is ``<prefix><id>`` (e.g. ``acr_pose/mug_0``), parent the
  image's frame, at the image's stamp.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from acr_pose_core.evaluation.draw import CATEGORY_COLOURS
from acr_pose_core.geometry.boxes import BOX_EDGES
from acr_pose_core.pipeline import FrameEstimate, ObjectPose

__all__ = [
    "MessageTypes",
    "detection_array",
    "marker_array",
    "object_names",
    "quaternion_xyzw",
    "ros_types",
    "transform_message",
]

MessageTypes = Callable[[str], Callable[..., Any]]


def ros_types(name: str) -> Callable[..., Any]:
    """rclpy's generated class for ``"pkg/msg/Type"`` (imports ``pkg.msg``; needs a sourced ROS environment)."""
    package, _, type_name = name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), type_name)


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """(4,) float64 unit quaternion ``x, y, z, w`` of a (3, 3) rotation, sign chosen so that ``w ≥ 0``."""
    q = Rotation.from_matrix(np.asarray(rotation, dtype=np.float64)).as_quat()  # scalar last: x, y, z, w
    return -q if q[3] < 0 else q


def object_names(objects: Sequence[ObjectPose]) -> list[str]:
    """``<category>_<i>`` for each object, ``i`` counting its category in order (``mug_0``, ``mug_1``, ``bowl_0``)."""
    seen: dict[str, int] = {}
    names = []
    for obj in objects:
        i = seen.get(obj.category, 0)
        seen[obj.category] = i + 1
        names.append(f"{obj.category}_{i}")
    return names


def _pose(types: MessageTypes, obj: ObjectPose) -> Any:
    q = quaternion_xyzw(obj.rotation)
    t = np.asarray(obj.translation, dtype=np.float64)
    return types("geometry_msgs/msg/Pose")(
        position=types("geometry_msgs/msg/Point")(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=types("geometry_msgs/msg/Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def _covariance(obj: ObjectPose) -> np.ndarray:
    """(36,) float64 row-major pose covariance; zeros (unknown) where undetermined."""
    cov = np.asarray(obj.covariance, dtype=np.float64).reshape(36)
    return cov if np.isfinite(cov).all() else np.zeros(36)


def detection_array(
    types: MessageTypes, header: Any, estimate: FrameEstimate, names: Sequence[str] | None = None
) -> Any:
    """vision_msgs/Detection3DArray of ``estimate``'s objects, stamped with ``header`` (module docstring); ``names``:
    the objects' ids (the node's tracker's), default :func:`object_names`."""
    detections = []
    for obj, name in zip(estimate.objects, object_names(estimate.objects) if names is None else names, strict=True):
        size = np.asarray(obj.size, dtype=np.float64)  # (3,) metres
        hypothesis = types("vision_msgs/msg/ObjectHypothesisWithPose")(
            hypothesis=types("vision_msgs/msg/ObjectHypothesis")(class_id=obj.category, score=float(obj.score)),
            pose=types("geometry_msgs/msg/PoseWithCovariance")(pose=_pose(types, obj), covariance=_covariance(obj)),
        )
        box = types("vision_msgs/msg/BoundingBox3D")(
            center=_pose(types, obj),
            size=types("geometry_msgs/msg/Vector3")(x=float(size[0]), y=float(size[1]), z=float(size[2])),
        )
        detections.append(types("vision_msgs/msg/Detection3D")(header=header, results=[hypothesis], bbox=box, id=name))
    return types("vision_msgs/msg/Detection3DArray")(header=header, detections=detections)


def transform_message(
    types: MessageTypes,
    header: Any,
    estimate: FrameEstimate,
    prefix: str = "acr_pose/",
    names: Sequence[str] | None = None,
) -> Any:
    """tf2_msgs/TFMessage: one transform per object, parent ``header.frame_id``, child ``<prefix><name>`` (``names``
    as for :func:`detection_array`)."""
    transforms = []
    for obj, name in zip(estimate.objects, object_names(estimate.objects) if names is None else names, strict=True):
        q = quaternion_xyzw(obj.rotation)
        t = np.asarray(obj.translation, dtype=np.float64)
        transforms.append(
            types("geometry_msgs/msg/TransformStamped")(
                header=header,
                child_frame_id=f"{prefix}{name}",
                transform=types("geometry_msgs/msg/Transform")(
                    translation=types("geometry_msgs/msg/Vector3")(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                    rotation=types("geometry_msgs/msg/Quaternion")(
                        x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
                    ),
                ),
            )
        )
    return types("tf2_msgs/msg/TFMessage")(transforms=transforms)


def marker_array(
    types: MessageTypes,
    header: Any,
    estimate: FrameEstimate,
    namespace: str = "acr_pose",
    names: Sequence[str] | None = None,
) -> Any:
    """visualization_msgs/MarkerArray for RViz: a DELETEALL (last frame's markers go), then per object its box as
    a LINE_LIST (5 mm lines) in the camera frame and a text label above it, coloured by category (``names`` as for
    :func:`detection_array`)."""
    Marker = types("visualization_msgs/msg/Marker")
    Point = types("geometry_msgs/msg/Point")
    identity = types("geometry_msgs/msg/Pose")(
        position=Point(x=0.0, y=0.0, z=0.0),
        orientation=types("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0),
    )
    Vector3 = types("geometry_msgs/msg/Vector3")

    def added(marker_id: int, kind: int, pose: Any, scale: tuple[float, float, float], **fields: Any) -> Any:
        x, y, z = scale
        return Marker(header=header, ns=namespace, id=marker_id, type=kind, action=0, pose=pose,
                      scale=Vector3(x=x, y=y, z=z), **fields)  # fmt: skip

    markers = [Marker(header=header, ns=namespace, id=0, action=3, pose=identity)]  # 3 = DELETEALL
    for k, (obj, name) in enumerate(
        zip(estimate.objects, object_names(estimate.objects) if names is None else names, strict=True)
    ):
        r, g, b = (c / 255.0 for c in CATEGORY_COLOURS.get(obj.category, (255, 255, 255)))
        colour = types("std_msgs/msg/ColorRGBA")(r=float(r), g=float(g), b=float(b), a=1.0)
        corners = np.asarray(obj.corners, dtype=np.float64)  # (8, 3) camera frame, metres
        points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for e in BOX_EDGES for p in corners[list(e)]]
        # 5 = LINE_LIST, scale.x the line width in metres
        markers.append(added(2 * k + 1, 5, identity, (0.005, 0.0, 0.0), color=colour, points=points))
        top = corners[np.argmin(corners[:, 1])]  # the corner highest in the image (optical y points down)
        label_pose = types("geometry_msgs/msg/Pose")(
            position=Point(x=float(top[0]), y=float(top[1]) - 0.02, z=float(top[2])),
            orientation=types("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0),
        )
        # 9 = TEXT_VIEW_FACING, scale.z the text height in metres
        markers.append(added(2 * k + 2, 9, label_pose, (0.0, 0.0, 0.03), color=colour, text=f"{name} {obj.score:.2f}"))
    return types("visualization_msgs/msg/MarkerArray")(markers=markers)
