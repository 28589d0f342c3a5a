"""sensor_msgs → numpy: images, camera info and instance-label masks, without cv_bridge and without rclpy.

Every function takes any object with the message's fields (an rclpy message, a rosbags message or a stand-in), so
the node, the bag tool and the tests share them. Bad input raises :class:`MessageError` naming what is wrong; the
node turns that into a throttled warning and skips the frame.

Images (sensor_msgs/Image): ``height × width`` pixels, rows ``step`` bytes apart (``step`` may exceed
``width · bytes per pixel``: padding is dropped), ``is_bigendian`` the byte order of 16- and 32-bit data.

- colour: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` → (H, W, 3) uint8 RGB (alpha dropped, grey repeated);
- depth: ``16UC1`` / ``mono16`` → uint16 in millimetres by default (REP 118), ``32FC1`` → float32 metres;
  non-finite and non-positive depth mean "no depth" downstream;
- labels: ``mono8``, ``16UC1`` / ``mono16`` → (H, W) int64 instance labels, 0 = background.

cv_bridge is not used: it has no ROS 2 wheel, and PyPI's ``cv-bridge`` (a ROS 1 copy) maps 16UC1 wrongly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from acr_pose_core.categories import CLASS_IDS, NUM_CATEGORIES
from acr_pose_core.detection import Detections
from acr_pose_core.geometry.camera import CameraIntrinsics

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "LABEL_ENCODINGS",
    "MessageError",
    "color_from_image",
    "depth_from_image",
    "detections_from_labels",
    "image_array",
    "image_fields",
    "intrinsics_from_camera_info",
    "labels_from_image",
]


class MessageError(ValueError):
    """A message the node cannot use (the text says which field and why)."""


@dataclass(frozen=True)
class _Encoding:
    dtype: str  # numpy dtype of one channel, little-endian form
    channels: int


_ENCODINGS = {
    "rgb8": _Encoding("u1", 3),
    "bgr8": _Encoding("u1", 3),
    "rgba8": _Encoding("u1", 4),
    "bgra8": _Encoding("u1", 4),
    "mono8": _Encoding("u1", 1),
    "8UC1": _Encoding("u1", 1),
    "mono16": _Encoding("u2", 1),
    "16UC1": _Encoding("u2", 1),
    "32FC1": _Encoding("f4", 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
LABEL_ENCODINGS = ("mono8", "8UC1", "16UC1", "mono16")


def image_array(msg: Any, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as a (H, W) or (H, W, C) array in native byte order (a copy).

    Raises:
        MessageError: an encoding outside ``allowed`` (or unknown), zero size, or ``data`` shorter than
            ``step · height`` or rows shorter than ``width`` pixels.
    """
    encoding = str(msg.encoding)
    if encoding not in _ENCODINGS or (allowed is not None and encoding not in allowed):
        supported = ", ".join(allowed if allowed is not None else _ENCODINGS)
        raise MessageError(f"unsupported image encoding {encoding!r} (supported here: {supported})")
    spec = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageError(f"the image is {height}x{width} pixels")
    itemsize = np.dtype(spec.dtype).itemsize
    row_bytes = width * spec.channels * itemsize
    if step < row_bytes:
        raise MessageError(f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes} bytes)")
    data = np.frombuffer(memoryview(_as_bytes(msg.data)), dtype=np.uint8)
    if data.size < step * (height - 1) + row_bytes:
        raise MessageError(
            f"data has {data.size} bytes, a {height}x{width} {encoding} image with step {step} needs "
            f"{step * (height - 1) + row_bytes}"
        )
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))  # padding dropped
    order = ">" if (bool(msg.is_bigendian) and itemsize > 1) else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(order + spec.dtype))  # (H, W·C)
    pixels = pixels.astype(np.dtype(spec.dtype).newbyteorder("="), copy=False)
    return pixels.reshape(height, width, spec.channels) if spec.channels > 1 else pixels.reshape(height, width)


def _as_bytes(data: Any) -> Any:
    """``data`` of an Image as a buffer: bytes, array.array (rclpy), a numpy array (rosbags) or a list."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8)
    if hasattr(data, "tobytes"):  # array.array
        return data.tobytes()
    return bytes(data)


def color_from_image(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8, bgr8, rgba8, bgra8 or mono8 image."""
    pixels = image_array(msg, COLOR_ENCODINGS)
    encoding = str(msg.encoding)
    if encoding == "mono8":
        return np.repeat(pixels[..., None], 3, axis=2)
    pixels = pixels[..., :3]  # alpha dropped
    if encoding.startswith("bgr"):
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels)


def depth_from_image(msg: Any, depth_scale: float = 0.0) -> tuple[np.ndarray, float]:
    """Depth and its unit: ``(depth (H, W), metres per unit)``.

    ``16UC1``/``mono16`` give uint16 with ``depth_scale`` metres per unit (0: millimetres, REP 118), ``32FC1``
    gives float32 metres (``depth_scale`` 0 → 1). Raises :class:`MessageError` when no pixel has valid depth.
    """
    depth = image_array(msg, DEPTH_ENCODINGS)
    if depth_scale < 0 or not np.isfinite(depth_scale):
        raise MessageError(f"depth_scale must be 0 (the encoding's default) or positive, got {depth_scale}")
    scale = depth_scale or (0.001 if depth.dtype == np.uint16 else 1.0)
    valid = depth > 0 if depth.dtype == np.uint16 else np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise MessageError(f"the {depth.shape[0]}x{depth.shape[1]} depth image has no valid pixel")
    return depth, scale


def labels_from_image(msg: Any) -> np.ndarray:
    """(H, W) int64 instance labels from a mono8 or 16UC1 label image; 0 is background."""
    return image_array(msg, LABEL_ENCODINGS).astype(np.int64)


def intrinsics_from_camera_info(msg: Any, height: int | None = None, width: int | None = None) -> CameraIntrinsics:
    """Pinhole intrinsics from sensor_msgs/CameraInfo ``k`` (row-major 3×3), checked against the image size.

    The image is assumed rectified or of negligible distortion (as aligned RealSense colour is); ``d`` is not
    applied. Raises :class:`MessageError` for a missing or all-zero ``k`` (an uncalibrated camera), non-finite
    entries, or a size that differs from the image's.
    """
    k = np.asarray(getattr(msg, "k", None) if getattr(msg, "k", None) is not None else [], dtype=np.float64)
    if k.size != 9:
        raise MessageError(f"camera info k must have 9 entries, got {k.size}")
    K = k.reshape(3, 3)
    if not np.isfinite(K).all():
        raise MessageError("camera info k has NaN or infinite entries")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError(f"camera info has no focal length (k = {k.tolist()}): is the camera calibrated?")
    info_h, info_w = int(msg.height), int(msg.width)
    if height is not None and width is not None:
        if (info_h, info_w) not in ((0, 0), (height, width)):
            raise MessageError(f"camera info is for {info_h}x{info_w} images, the image is {height}x{width}")
        info_h, info_w = height, width
    if info_h <= 0 or info_w <= 0:
        raise MessageError("camera info has no image size and no image was given")
    return CameraIntrinsics.from_matrix(K, info_w, info_h)


def _class_id(name: str) -> int:
    """A category name (``mug``) or class id (``6``) as a class id 1..6."""
    text = str(name).strip()
    if text in CLASS_IDS:
        return CLASS_IDS[text]
    if text.isdigit() and 1 <= int(text) <= NUM_CATEGORIES:
        return int(text)
    raise MessageError(f"class {name!r} is neither a category name ({', '.join(CLASS_IDS)}) nor an id 1..6")


def detections_from_labels(labels: np.ndarray, detections: Any) -> Detections:
    """Masks from an external segmenter: a label image plus the vision_msgs/Detection2DArray naming its labels.

    Rules: detection ``i`` covers the pixels labelled ``int(id)`` when its ``id`` is a decimal number, else the
    pixels labelled ``i + 1``; ``results[0].hypothesis.class_id`` is a category name or id (1..6) and ``.score`` its
    score (a detection without results, or of a class outside the six categories, is someone else's object and
    is skipped).

    Raises:
        MessageError: a non-zero label that no detection names, or a detection whose label has no pixel.
    """
    masks, class_ids, scores = [], [], []
    named = set()
    for i, det in enumerate(detections.detections):
        label = int(det.id) if str(det.id).strip().isdigit() else i + 1
        named.add(label)
        if not det.results:
            continue
        hypothesis = det.results[0].hypothesis
        try:
            class_id = _class_id(hypothesis.class_id)
        except MessageError:
            continue  # not one of our categories: someone else's object
        mask = labels == label
        if not mask.any():
            raise MessageError(f"detection {i} names label {label}, which has no pixel in the label image")
        masks.append(mask)
        class_ids.append(class_id)
        scores.append(min(max(float(hypothesis.score), 0.0), 1.0))
    unnamed = sorted(set(np.unique(labels).tolist()) - named - {0})
    if unnamed:
        raise MessageError(f"labels {unnamed[:5]} of the label image have no Detection2D naming them")
    if not masks:
        return Detections.empty(*labels.shape)
    return Detections.from_masks(np.stack(masks), class_ids, scores)


def image_fields(pixels: np.ndarray, encoding: str = "rgb8") -> dict[str, Any]:
    """The fields of a sensor_msgs/Image holding ``pixels`` (header not included): the inverse of
    :func:`image_array`. ``pixels`` must already have the encoding's dtype and channels, e.g. (H, W, 3) uint8 for
    ``rgb8``, (H, W) uint16 for ``16UC1``; ``data`` is a flat uint8 array, rows unpadded, native byte order."""
    if encoding not in _ENCODINGS:
        raise MessageError(f"unsupported image encoding {encoding!r} (supported here: {', '.join(_ENCODINGS)})")
    spec = _ENCODINGS[encoding]
    pixels = np.asarray(pixels)
    shape_ok = pixels.ndim == 2 if spec.channels == 1 else pixels.ndim == 3 and pixels.shape[2] == spec.channels
    if not shape_ok or pixels.dtype.str[1:] != spec.dtype:
        raise MessageError(
            f"{encoding} needs {spec.channels}-channel {np.dtype(spec.dtype)} pixels, got "
            f"{pixels.dtype} of shape {pixels.shape}"
        )
    pixels = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))  # native order
    height, width = pixels.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big"),
        "step": width * spec.channels * pixels.dtype.itemsize,
        "data": pixels.view(np.uint8).reshape(-1),
    }
