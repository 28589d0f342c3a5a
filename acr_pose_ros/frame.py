"""One synchronised set of messages → one pose estimate: the node's work, as plain functions (no rclpy).

The node and the bag tool call :func:`frame_inputs` (messages → checked arrays), then :func:`estimate_frame`
(arrays → :class:`~acr_pose_core.pipeline.FrameEstimate`), then :mod:`acr_pose_ros.messages`. Bad input raises
:class:`~acr_pose_ros.conversions.MessageError` or :class:`~acr_pose_core.detection.InputError`; the caller skips
the frame.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from acr_pose_core.categories import CLASS_IDS
from acr_pose_core.detection import Detections, InputError
from acr_pose_core.evaluation.draw import CATEGORY_COLOURS, BoxDrawing, draw_boxes
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.pipeline import FrameEstimate, PoseEstimator, check_frame
from acr_pose_ros.conversions import (
    MessageError,
    color_from_image,
    depth_from_image,
    detections_from_labels,
    intrinsics_from_camera_info,
    labels_from_image,
)
from acr_pose_ros.messages import object_names
from acr_pose_ros.params import NodeParameters

__all__ = ["FrameInputs", "debug_image", "estimate_frame", "frame_inputs", "select_detections"]


@dataclass(frozen=True)
class FrameInputs:
    """A frame ready for the estimator.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        depth: (H, W) uint16 or float32 depth, 0 where missing or outside [min_depth, max_depth].
        depth_scale: metres per unit of ``depth``.
        intrinsics: the colour camera.
        detections: the objects from an external label image, or None (the estimator's segmenter runs).
    """

    rgb: np.ndarray
    depth: np.ndarray
    depth_scale: float
    intrinsics: CameraIntrinsics
    detections: Detections | None = None


def frame_inputs(
    color: Any,
    depth: Any,
    info: Any,
    params: NodeParameters,
    labels: Any = None,
    detections_2d: Any = None,
) -> FrameInputs:
    """Convert and check one synchronised set (sensor_msgs/Image ×2, CameraInfo, and optionally the label image
    and Detection2DArray of ``mask_source: labels``).

    Raises:
        MessageError: unsupported encodings, images of different sizes, a camera info without calibration or of
            another size, depth without a valid pixel in range, a label image that does not match.
    """
    rgb = color_from_image(color)
    raw_depth, scale = depth_from_image(depth, params.depth_scale)
    if raw_depth.shape != rgb.shape[:2]:
        raise MessageError(
            f"colour is {rgb.shape[0]}x{rgb.shape[1]} but depth is {raw_depth.shape[0]}x{raw_depth.shape[1]}: "
            "subscribe to depth aligned to colour (e.g. RealSense aligned_depth_to_color)"
        )
    camera = intrinsics_from_camera_info(info, *rgb.shape[:2])
    metres = raw_depth.astype(np.float32) * np.float32(scale)  # (H, W) metres
    out_of_range = ~np.isfinite(metres) | (metres < params.min_depth)
    if params.max_depth > 0:
        out_of_range |= metres > params.max_depth
    if out_of_range.all():
        raise MessageError(
            f"no depth pixel within [{params.min_depth}, {params.max_depth or 'inf'}] m "
            f"(depth_scale {scale} m per unit): wrong depth_scale, or the camera sees nothing in range"
        )
    clipped = raw_depth.copy()
    clipped[out_of_range] = 0
    detections = None
    if params.mask_source == "labels":
        if labels is None or detections_2d is None:
            raise MessageError("mask_source is 'labels' but the label image or its Detection2DArray is missing")
        label_image = labels_from_image(labels)
        if label_image.shape != rgb.shape[:2]:
            raise MessageError(
                f"the label image is {label_image.shape[0]}x{label_image.shape[1]}, "
                f"colour {rgb.shape[0]}x{rgb.shape[1]}"
            )
        detections = detections_from_labels(label_image, detections_2d)
    return FrameInputs(rgb, clipped, scale, camera, detections)


def select_detections(detections: Detections, params: NodeParameters) -> Detections:
    """The detections the node poses: enabled categories, score ≥ ``score_threshold``, at most ``max_objects``
    (highest scores first; ties keep detection order), in their original order."""
    wanted = np.isin(detections.class_ids, [CLASS_IDS[c] for c in params.categories])
    wanted &= detections.scores >= params.score_threshold
    index = np.flatnonzero(wanted)
    index = index[np.argsort(-detections.scores[index], kind="stable")][: params.max_objects]
    index = np.sort(index)
    if len(index) == len(detections):
        return detections
    return Detections(
        detections.masks[index], detections.class_ids[index], detections.scores[index], detections.boxes[index]
    )


def estimate_frame(estimator: PoseEstimator, inputs: FrameInputs, params: NodeParameters) -> FrameEstimate:
    """The poses of one frame: masks from ``inputs.detections`` or the estimator's segmenter, selected by
    :func:`select_detections`, then :meth:`PoseEstimator.estimate` (its ``timings_ms`` with the segmenter's)."""
    detections, segmenter_ms = inputs.detections, {}
    if detections is None:
        if estimator.mask_source is None:
            raise InputError("the model has no segmenter: set mask_source to 'labels' or use a model with one")
        start = time.perf_counter()
        frame = check_frame(inputs.rgb, inputs.depth, inputs.intrinsics, inputs.depth_scale)
        detections = estimator.mask_source(frame.rgb, frame.depth_metres, frame.intrinsics)
        segmenter_ms = {"segmenter": 1e3 * (time.perf_counter() - start)}
    selected = select_detections(detections, params)
    estimate = estimator.estimate(
        inputs.rgb, inputs.depth, inputs.intrinsics, masks=selected, depth_scale=inputs.depth_scale
    )
    return dataclasses.replace(estimate, timings_ms={**segmenter_ms, **estimate.timings_ms})


def debug_image(inputs: FrameInputs, estimate: FrameEstimate, names: Sequence[str] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the colour image with each object's box, axes and ``<name> <score>`` label (``names``:
    the objects' ids, default :func:`~acr_pose_ros.messages.object_names`)."""
    names = object_names(estimate.objects) if names is None else names
    boxes = [
        BoxDrawing(obj.sRT, obj.size_nocs, f"{name} {obj.score:.2f}", CATEGORY_COLOURS.get(obj.category, (0, 255, 0)))
        for obj, name in zip(estimate.objects, names, strict=True)
    ]
    return draw_boxes(inputs.rgb, boxes, inputs.intrinsics)
