"""The NOCS on-disk layout: one writer, one reader, for our synthetic frames and the real NOCS datasets alike.

Contents, top to bottom: errors and constants; the records (:class:`InstanceMeta`, :class:`InstanceLabel`,
:class:`FrameLabel`, :class:`Frame`, :class:`ObjectInstance`); the pixel encodings (:func:`encode_coord`,
:func:`decode_coord`, :func:`encode_depth_camera3`, :func:`decode_depth`); the frame reader and writer
(:func:`write_frame`, :func:`read_frame`, :func:`frame_complete`, :func:`list_frames`); the reference pipeline's
per-instance rules (:func:`frame_instances`); the instance point clouds (:func:`write_models`, :func:`read_models`).

Layout
------
NOCS-CAMERA ``CAMERA/{train,val}/<scene:05d>/<frame:04d>_*``, NOCS-REAL ``Real/{train,test}/scene_<n>/<frame:04d>_*``,
ours ``<out>/<split>/<scene:05d>/<frame:04d>_*``. The files of one frame ``<prefix> = <scene dir>/<frame id>``:

``<prefix>_color.png``
    8-bit RGB (RGBA is read with the alpha dropped).
``<prefix>_depth.png``
    Depth in millimetres, 0 = no depth. Either a 16-bit single-channel PNG (NOCS-REAL and ours), or NOCS-CAMERA's
    3-channel 8-bit PNG: read with OpenCV (BGR order) the depth is ``channel1 · 256 + channel2``, i.e. in the RGB order
    Pillow reads ``G · 256 + R``, and 32001 means no depth. SPD's "composed" CAMERA depth is a 16-bit file
    ``<composed root>/<split>/<scene>/<frame>_composed.png`` in a parallel tree that replaces the rendered depth.
``<prefix>_mask.png``
    Instance id per pixel, 255 = background. The reference readers take channel 2 of OpenCV's BGR read (= R) of a
    3-channel file; a single-channel file reads the same. We write single-channel.
``<prefix>_coord.png``
    NOCS map, 8-bit RGB storing ``round((x + 0.5, y + 0.5, 0.5 − z) · 255)`` (the reference readers divide by 255,
    flip z with ``1 − c_z`` and subtract 0.5); 0 on the background.
``<prefix>_meta.txt``
    One line per instance: ``inst_id class_id model_id`` (REAL) or ``inst_id class_id synset_id model_id`` (CAMERA);
    class 0 is a distractor.
``<prefix>_label.json`` (ours)
    Per-frame ground truth, written last so that a frame is complete iff it exists::

        {"version": 1, "image_size": [H, W], "intrinsics": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
         "instances": [{"inst_id": 1, "class_id": 6, "model_id": "mug_0001",
                        "sRT": [[...], [...], [...], [0, 0, 0, 1]], "scale": 0.21, "size": [0.72, 0.55, 0.42],
                        "handle_visible": true, "bbox": [y1, x1, y2, x2]}],
         "info": {}}

``<prefix>_label.pkl`` (SPD)
    SPD's equivalent (keys ``instance_ids, class_ids, bboxes, scales, rotations, translations, model_list`` and, in
    its test labels, ``size, handle_visibility``), read with the restricted unpickler when there is no JSON label.

Instance point clouds: ours ``<out>/obj_models/<split>.npz``, SPD's ``obj_models/{camera_train,camera_val,
real_train,real_test}.pkl``; both map a model id to an ``(N, 3)`` array of NOCS points.

Frames: camera OpenCV (x right, y down, z forward, metres); canonical NOCS (y up, centred, box diagonal 1). Pose
``sRT`` (4, 4): ``[:3, :3] = s·R``, ``[:3, 3] = t`` in metres, ``p_camera = s·R·p_nocs + t``. Boxes ``y1, x1, y2, x2``
in pixels, ``y2``/``x2`` exclusive. Every problem with a file raises :class:`NocsFormatError` naming the file.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from acr_pose_core.categories import NUM_CATEGORIES
from acr_pose_core.evaluation.results_io import load_pickle
from acr_pose_core.fileio import write_atomically
from acr_pose_core.geometry.camera import CAMERA_INTRINSICS, REAL_INTRINSICS

__all__ = [
    "read_meta",
    "BACKGROUND_ID",
    "CAMERA_NO_DEPTH",
    "LABEL_VERSION",
    "MAX_BOX_HEIGHT",
    "MAX_BOX_WIDTH",
    "NOCS_CAMERA_INTRINSICS",
    "NOCS_REAL_INTRINSICS",
    "SPD_EXCLUDED_MODELS",
    "Frame",
    "FrameLabel",
    "FrameRejected",
    "InstanceLabel",
    "InstanceMeta",
    "NocsFormatError",
    "ObjectInstance",
    "composed_depth_path",
    "decode_coord",
    "decode_depth",
    "encode_coord",
    "encode_depth_camera3",
    "frame_complete",
    "frame_instances",
    "list_frames",
    "mask_bbox",
    "read_coord_at",
    "read_frame",
    "read_models",
    "write_frame",
    "write_models",
]


class NocsFormatError(ValueError):
    """A NOCS-layout file is missing, unreadable or inconsistent with its frame. The message names the file."""


class FrameRejected(NocsFormatError):  # noqa: N818 (the name the callers use: a rejection, not a fault)
    """A frame the reference pipeline skips as a whole (a broken CAMERA render); callers should skip it."""


BACKGROUND_ID = 255
"""Mask value of pixels that belong to no instance."""
CAMERA_NO_DEPTH = 32001
"""Millimetre value that NOCS-CAMERA's 3-channel depth stores where there is no depth."""
MAX_BOX_WIDTH = 600
MAX_BOX_HEIGHT = 440
"""An instance box wider or taller than this (pixels) marks a broken CAMERA render (the reference rule)."""
SPD_EXCLUDED_MODELS: frozenset[str] = frozenset({"b9be7cfe653740eb7633a2dd89cec754"})
"""Models SPD's preprocessing drops: one CAMERA-train mug "due to improper model". Pass to :func:`frame_instances`."""

NOCS_CAMERA_INTRINSICS = CAMERA_INTRINSICS.K
NOCS_REAL_INTRINSICS = REAL_INTRINSICS.K
"""(3, 3) pinhole intrinsics of the two datasets (640×480); used for SPD labels, which do not store them."""

LABEL_VERSION = 1
_SUFFIXES = {
    "color": "_color.png",
    "depth": "_depth.png",
    "mask": "_mask.png",
    "coord": "_coord.png",
    "meta": "_meta.txt",
    "label": "_label.json",
    "label_pkl": "_label.pkl",
}
_COMPOSED_SUFFIX = "_composed.png"
_MAX_INST_ID = 254  # ids live in a uint8 mask whose 255 is the background
_SCALE_RTOL = 1e-3  # |cbrt(det(sRT[:3, :3])) − scale| allowed, relative to scale
_LAST_ROW = np.array([0.0, 0.0, 0.0, 1.0])


def _file(prefix: Path, key: str) -> Path:
    return prefix.parent / f"{prefix.name}{_SUFFIXES[key]}"


# ---------------------------------------------------------------------------------------------------------------------
# Records


@dataclass
class InstanceMeta:
    """One line of ``_meta.txt``: instance id in the mask, class id (0 = distractor, 1..6), model id; the ShapeNet
    synset (a string with its leading zeros, e.g. ``"03797390"``) only for NOCS-CAMERA's 4-field lines."""

    inst_id: int
    class_id: int
    model_id: str
    synset: str | None = None


@dataclass(eq=False)
class InstanceLabel:
    """Ground truth of one foreground instance.

    Attributes:
        inst_id: its id in the mask (0..254).
        class_id: 1..6 (:mod:`acr_pose_core.categories`).
        model_id: key into the split's model point clouds.
        sRT: (4, 4) float64 pose, ``p_camera = s·R·p_nocs + t``; ``[:3, :3] = s·R``, ``[:3, 3] = t`` in metres.
        scale: ``s`` (metres per NOCS unit), ``= cbrt(det(sRT[:3, :3]))``.
        size: (3,) float64 NOCS-unit box extents x, y, z (metric size = ``scale · size``); NaN where unknown (SPD's
            train labels do not store it).
        handle_visible: mug handle visible (true for every non-mug).
        bbox: (4,) int64 image box ``y1, x1, y2, x2`` in pixels, ``y2``/``x2`` exclusive.

    Arrays are converted to the dtypes above; wrong shapes raise ``ValueError``.
    """

    inst_id: int
    class_id: int
    model_id: str
    sRT: np.ndarray
    scale: float
    size: np.ndarray
    handle_visible: bool
    bbox: np.ndarray

    def __post_init__(self) -> None:
        self.inst_id = int(self.inst_id)
        self.class_id = int(self.class_id)
        self.model_id = str(self.model_id)
        self.sRT = _as_shape(self.sRT, (4, 4), np.float64, "sRT")
        self.scale = float(self.scale)
        self.size = _as_shape(self.size, (3,), np.float64, "size")
        self.handle_visible = bool(self.handle_visible)
        self.bbox = _as_shape(self.bbox, (4,), np.int64, "bbox")


@dataclass(eq=False)
class FrameLabel:
    """Ground truth of one frame.

    Attributes:
        instances: the foreground instances (class 1..6), in file order.
        intrinsics: (3, 3) float64 pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
        image_size: ``(H, W)`` in pixels.
        info: free-form JSON-serialisable details (renderer settings, seeds, ...); for a label read from SPD's
            ``_label.pkl``: ``{"source": "spd_label_pkl", "intrinsics": "nocs_camera" | "nocs_real"}``.
    """

    instances: list[InstanceLabel]
    intrinsics: np.ndarray
    image_size: tuple[int, int]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.instances = list(self.instances)
        self.intrinsics = _as_shape(self.intrinsics, (3, 3), np.float64, "intrinsics")
        size = tuple(int(v) for v in self.image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be (H, W), got {self.image_size!r}")
        self.image_size = size  # type: ignore[assignment]


@dataclass(eq=False)
class Frame:
    """One frame: images, meta lines and (if any) ground truth.

    Attributes:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) uint16 depth in millimetres (z along the optical axis), 0 = no depth.
        mask: (H, W) uint8 instance id per pixel, 255 = background.
        coord: (H, W, 3) float32 NOCS coordinates, 0 where ``mask == 255``; ``None`` when read without it. A pixel's
            coordinate is meaningful where ``mask`` holds an instance id, not where it is non-zero.
        meta: the ``_meta.txt`` lines, in file order.
        label: ground truth from ``_label.json`` (or SPD's ``_label.pkl``); ``None`` when there is none.
        prefix: ``<scene dir>/<frame id>`` the frame was read from; ``None`` for a frame built in memory.
    """

    color: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coord: np.ndarray | None
    meta: list[InstanceMeta]
    label: FrameLabel | None = None
    prefix: Path | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.color.shape[0]), int(self.color.shape[1])


@dataclass(eq=False)
class ObjectInstance:
    """One instance kept by :func:`frame_instances`.

    Attributes:
        inst_id, class_id, model_id: from the meta line (class 1..6).
        mask: (H, W) bool pixels of the instance.
        bbox: (4,) int64 ``y1, x1, y2, x2`` of ``mask`` in pixels, ``y2``/``x2`` exclusive.
        num_valid_depth: pixels where ``mask`` and ``depth > 0``.
        label: the frame label's record with the same ``inst_id``, or ``None``.
    """

    inst_id: int
    class_id: int
    model_id: str
    mask: np.ndarray
    bbox: np.ndarray
    num_valid_depth: int
    label: InstanceLabel | None


def _as_shape(value: Any, shape: tuple[int, ...], dtype: type, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if np.dtype(dtype).kind == "i" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{name} holds non-integer values {arr.tolist()}")
    elif arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {arr.dtype}, expected numbers")
    return arr.astype(dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Pixel encodings


def encode_coord(nocs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Encode a NOCS map as the stored ``_coord.png`` pixels.

    Args:
        nocs: (H, W, 3) float NOCS coordinates x, y, z in [−0.5, 0.5] (values outside are clipped).
        valid: (H, W) bool pixels that belong to an instance; the others are stored as 0.

    Returns:
        (H, W, 3) uint8 RGB ``round((x + 0.5, y + 0.5, 0.5 − z) · 255)``; decoding is exact to within 0.5/255.
    """
    nocs = np.asarray(nocs, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if nocs.ndim != 3 or nocs.shape[2] != 3 or valid.shape != nocs.shape[:2]:
        raise ValueError(f"encode_coord: nocs {nocs.shape} must be (H, W, 3) and valid {valid.shape} (H, W)")
    if not np.all(np.isfinite(nocs[valid])):
        raise ValueError("encode_coord: non-finite NOCS coordinate at a valid pixel")
    stored = np.stack([nocs[..., 0] + 0.5, nocs[..., 1] + 0.5, 0.5 - nocs[..., 2]], axis=-1)  # (H, W, 3) in [0, 1]
    rgb = np.clip(np.round(np.nan_to_num(stored) * 255.0), 0, 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def decode_coord(rgb: np.ndarray) -> np.ndarray:
    """Decode stored ``_coord.png`` pixels to NOCS coordinates, bit for bit as the reference readers do.

    Args:
        rgb: (H, W, 3) uint8 in RGB order (extra channels, e.g. alpha, are ignored).

    Returns:
        (H, W, 3) float32 ``(R/255 − 0.5, G/255 − 0.5, (1 − B/255) − 0.5)`` at every pixel, the background
        included (stored 0 decodes to (−0.5, −0.5, 0.5)); mask it with the instance mask.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise ValueError(f"decode_coord: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    coord = rgb[..., :3].astype(np.float32) / 255  # the reference's float32 operations, in its order
    coord[..., 2] = 1 - coord[..., 2]
    return coord - np.float32(0.5)


def encode_depth_camera3(depth_mm: np.ndarray) -> np.ndarray:
    """Encode depth as NOCS-CAMERA's 3-channel 8-bit ``_depth.png``.

    Args:
        depth_mm: (H, W) integer depth in millimetres, 0..65535, 0 = no depth (32001 itself cannot be stored).

    Returns:
        (H, W, 3) uint8 RGB with ``G = high byte``, ``R = low byte``, ``B = 0`` and no-depth stored as 32001, so that
        OpenCV's BGR read gives ``channel1 · 256 + channel2`` millimetres.
    """
    depth = np.asarray(depth_mm)
    if depth.ndim != 2 or depth.dtype.kind not in "iu":
        raise ValueError(f"encode_depth_camera3: expected (H, W) integer millimetres, got {depth.shape} {depth.dtype}")
    if depth.size and (depth.min() < 0 or depth.max() > 65535):
        raise ValueError("encode_depth_camera3: depth outside 0..65535 mm")
    if np.any(depth == CAMERA_NO_DEPTH):
        raise ValueError(f"encode_depth_camera3: {CAMERA_NO_DEPTH} mm is the format's no-depth value")
    depth = np.where(depth == 0, CAMERA_NO_DEPTH, depth).astype(np.uint16)
    rgb = np.zeros((*depth.shape, 3), dtype=np.uint8)
    rgb[..., 0] = depth & 0xFF  # R = OpenCV channel 2: low byte
    rgb[..., 1] = depth >> 8  # G = OpenCV channel 1: high byte
    return rgb


def decode_depth(array: np.ndarray) -> np.ndarray:
    """Decode a ``_depth.png`` (or ``_composed.png``) as read in RGB order into millimetres, as the reference does.

    Args:
        array: (H, W) uint16 millimetres (NOCS-REAL, ours, composed), or (H, W, 3 or 4) uint8 RGB(A) NOCS-CAMERA
            depth: ``G · 256 + R`` millimetres with 32001 meaning no depth.

    Returns:
        (H, W) uint16 millimetres, 0 = no depth.
    """
    array = np.asarray(array)
    if array.ndim == 2 and array.dtype == np.uint16:
        return array.copy()
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        depth = array[..., 1].astype(np.uint16) * 256 + array[..., 0]
        depth[depth == CAMERA_NO_DEPTH] = 0
        return depth
    raise ValueError(
        f"depth must be (H, W) uint16 millimetres or (H, W, 3) uint8 NOCS-CAMERA encoding, got {array.shape} "
        f"{array.dtype}"
    )


def mask_bbox(inst_mask: np.ndarray) -> np.ndarray:
    """(4,) int64 ``y1, x1, y2, x2`` box of the true pixels of an (H, W) mask, exclusive ends; zeros if empty."""
    rows = np.flatnonzero(np.any(inst_mask, axis=1))
    cols = np.flatnonzero(np.any(inst_mask, axis=0))
    if len(rows) == 0:
        return np.zeros(4, dtype=np.int64)
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], dtype=np.int64)


# ---------------------------------------------------------------------------------------------------------------------
# PNG and atomic file I/O

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}


def _read_png(path: Path, role: str) -> tuple[np.ndarray, int, int]:
    """Read a PNG as stored: ``(array, bit_depth, color_type)`` with the array in RGB(A) order.

    The bit depth and colour type come from the IHDR header itself, because Pillow silently reduces 16-bit colour
    images to 8 bits. Arrays: grey 8-bit (H, W) uint8, grey 16-bit (H, W) uint16, RGB (H, W, 3) uint8, RGBA
    (H, W, 4) uint8, grey+alpha (H, W, 2) uint8, palette expanded to (H, W, 3) uint8 as OpenCV does.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NocsFormatError(f"{path}: missing ({role})") from None
    except OSError as e:
        raise NocsFormatError(f"{path}: cannot read {role} ({e})") from e
    if len(data) < 29 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise NocsFormatError(f"{path}: {role} is not a PNG file")
    bit_depth, color_type = data[24], data[25]
    try:
        with Image.open(io.BytesIO(data)) as im:
            if color_type == 3:
                im = im.convert("RGB")
            array = np.asarray(im)
    except Exception as e:  # Pillow raises many types for corrupt data
        raise NocsFormatError(f"{path}: {role} is not a readable PNG ({type(e).__name__}: {e})") from e
    if bit_depth == 16 and color_type == 0 and array.dtype != np.uint16:  # mode "I" (int32) on some Pillow versions
        array = array.astype(np.uint16)
    return array, bit_depth, color_type


def _png_kind(bit_depth: int, color_type: int) -> str:
    return f"{bit_depth}-bit {_COLOR_TYPES.get(color_type, f'colour type {color_type}')}"


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # zlib level 1: a rendered frame's four PNGs encode in ~50 ms instead of ~230 ms at the default 6, ~20 % larger
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------------
# Meta and label files


def _parse_int(text: str, what: str, path: Path, line_no: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise NocsFormatError(f"{path}: line {line_no}: {what} {text!r} is not an integer") from None


def read_meta(path: Path) -> list[InstanceMeta]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NocsFormatError(f"{path}: missing (meta)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NocsFormatError(f"{path}: cannot read meta ({e})") from e
    meta: list[InstanceMeta] = []
    seen: set[int] = set()
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (3, 4):
            raise NocsFormatError(
                f"{path}: line {line_no}: {len(fields)} fields, expected 'inst_id class_id model_id' (REAL) or "
                "'inst_id class_id synset_id model_id' (CAMERA)"
            )
        inst_id = _parse_int(fields[0], "instance id", path, line_no)
        class_id = _parse_int(fields[1], "class id", path, line_no)
        if not 0 <= inst_id <= _MAX_INST_ID:
            raise NocsFormatError(f"{path}: line {line_no}: instance id {inst_id} outside 0..{_MAX_INST_ID}")
        if not 0 <= class_id <= NUM_CATEGORIES:
            raise NocsFormatError(
                f"{path}: line {line_no}: class id {class_id} unknown (0 distractor, 1..{NUM_CATEGORIES} categories)"
            )
        if inst_id in seen:
            raise NocsFormatError(f"{path}: line {line_no}: duplicate instance id {inst_id}")
        seen.add(inst_id)
        synset = fields[2] if len(fields) == 4 else None
        meta.append(InstanceMeta(inst_id, class_id, fields[-1], synset))
    return meta


def _format_meta(meta: list[InstanceMeta]) -> str:
    lines = []
    for m in meta:
        fields = [str(int(m.inst_id)), str(int(m.class_id)), *([] if m.synset is None else [m.synset]), m.model_id]
        if any(not f or len(f.split()) != 1 for f in fields):
            raise ValueError(f"meta line {fields!r}: every field must be one non-empty word")
        lines.append(" ".join(fields) + "\n")
    return "".join(lines)


def _check_meta(meta: list[InstanceMeta]) -> None:
    """The rules :func:`read_meta` applies, for writing."""
    ids = [int(m.inst_id) for m in meta]
    if len(set(ids)) != len(ids):
        raise ValueError(f"meta: duplicate instance ids in {ids}")
    for m in meta:
        if not 0 <= int(m.inst_id) <= _MAX_INST_ID or not 0 <= int(m.class_id) <= NUM_CATEGORIES:
            raise ValueError(f"meta: {m} has an instance id outside 0..{_MAX_INST_ID} or a class id outside 0..6")


def _check_label(label: FrameLabel, meta: list[InstanceMeta], image_size: tuple[int, int]) -> None:
    """Semantic checks of a label against its frame; raises ``ValueError`` (callers add the file name)."""
    if tuple(label.image_size) != tuple(image_size):
        raise ValueError(f"image_size {list(label.image_size)} differs from the images' {list(image_size)}")
    if not np.all(np.isfinite(label.intrinsics)):
        raise ValueError("intrinsics are not finite")
    by_id = {m.inst_id: m for m in meta}
    seen: set[int] = set()
    h, w = image_size
    for i, inst in enumerate(label.instances):
        where = f"instances[{i}] (inst_id {inst.inst_id})"
        if inst.inst_id in seen:
            raise ValueError(f"{where}: duplicate instance id")
        seen.add(inst.inst_id)
        if not 1 <= inst.class_id <= NUM_CATEGORIES:
            raise ValueError(f"{where}: class id {inst.class_id} is not a category id 1..{NUM_CATEGORIES}")
        m = by_id.get(inst.inst_id)
        if m is None or m.class_id != inst.class_id:
            found = "no meta line" if m is None else f"meta class id {m.class_id}"
            raise ValueError(f"{where}: class id {inst.class_id} but {found}")
        if not np.all(np.isfinite(inst.sRT)) or np.any(np.abs(inst.sRT[3] - _LAST_ROW) > 1e-9):
            raise ValueError(f"{where}: sRT must be finite with last row [0, 0, 0, 1]")
        cbrt_det = float(np.cbrt(np.linalg.det(inst.sRT[:3, :3])))
        if not (inst.scale > 0 and math.isfinite(inst.scale)) or abs(cbrt_det - inst.scale) > _SCALE_RTOL * inst.scale:
            raise ValueError(f"{where}: scale {inst.scale} disagrees with cbrt(det(sRT[:3, :3])) = {cbrt_det}")
        y1, x1, y2, x2 = inst.bbox.tolist()
        if not (0 <= y1 <= y2 <= h and 0 <= x1 <= x2 <= w):
            raise ValueError(f"{where}: bbox {inst.bbox.tolist()} is not y1 <= y2 <= {h}, x1 <= x2 <= {w}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _label_json(label: FrameLabel) -> str:
    doc = {
        "version": LABEL_VERSION,
        "image_size": list(label.image_size),
        "intrinsics": label.intrinsics.tolist(),
        "instances": [
            {
                "inst_id": inst.inst_id,
                "class_id": inst.class_id,
                "model_id": inst.model_id,
                "sRT": inst.sRT.tolist(),
                "scale": inst.scale,
                "size": inst.size.tolist(),
                "handle_visible": inst.handle_visible,
                "bbox": inst.bbox.tolist(),
            }
            for inst in label.instances
        ],
        "info": label.info,
    }
    return json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n"


_LABEL_KEYS = {"version", "image_size", "intrinsics", "instances", "info"}
_INSTANCE_KEYS = {"inst_id", "class_id", "model_id", "sRT", "scale", "size", "handle_visible", "bbox"}


def _read_label_json(path: Path) -> FrameLabel:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NocsFormatError(f"{path}: not a readable JSON label ({e})") from e
    if not isinstance(doc, dict):
        raise NocsFormatError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if set(doc) != _LABEL_KEYS:
        raise NocsFormatError(f"{path}: keys {sorted(doc)}, expected {sorted(_LABEL_KEYS)}")
    if doc["version"] != LABEL_VERSION:
        raise NocsFormatError(f"{path}: label version {doc['version']!r}, this reader knows {LABEL_VERSION}")
    if not isinstance(doc["instances"], list) or not isinstance(doc["info"], dict):
        raise NocsFormatError(f"{path}: 'instances' must be a list and 'info' an object")
    instances = []
    for i, d in enumerate(doc["instances"]):
        if not isinstance(d, dict) or set(d) != _INSTANCE_KEYS:
            keys = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise NocsFormatError(f"{path}: instances[{i}] has keys {keys}, expected {sorted(_INSTANCE_KEYS)}")
        for key, kind in (("inst_id", int), ("class_id", int), ("model_id", str), ("handle_visible", bool)):
            if not isinstance(d[key], kind) or (kind is int and isinstance(d[key], bool)):
                raise NocsFormatError(f"{path}: instances[{i}].{key} is {d[key]!r}, expected {kind.__name__}")
        if not isinstance(d["scale"], (int, float)) or isinstance(d["scale"], bool):
            raise NocsFormatError(f"{path}: instances[{i}].scale is {d['scale']!r}, expected a number")
        try:
            instances.append(InstanceLabel(**d))
        except (TypeError, ValueError) as e:
            raise NocsFormatError(f"{path}: instances[{i}]: {e}") from e
    image_size = doc["image_size"]
    if not (isinstance(image_size, list) and len(image_size) == 2 and all(isinstance(v, int) for v in image_size)):
        raise NocsFormatError(f"{path}: image_size is {image_size!r}, expected [H, W]")
    try:
        return FrameLabel(instances, doc["intrinsics"], tuple(image_size), doc["info"])
    except (TypeError, ValueError) as e:
        raise NocsFormatError(f"{path}: {e}") from e


_SPD_REQUIRED = ("instance_ids", "class_ids", "bboxes", "scales", "rotations", "translations", "model_list")


def _spd_array(d: Mapping, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    try:
        arr = np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise NocsFormatError(f"{path}: {key} is not numeric ({e})") from e
    if arr.size == 0:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise NocsFormatError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
    return arr


def _read_label_pkl(path: Path, prefix: Path, image_size: tuple[int, int]) -> FrameLabel:
    """Convert SPD's ``_label.pkl`` to a :class:`FrameLabel` (``sRT = [s·R | t]``).

    SPD stores no intrinsics: they are those of NOCS-REAL when the scene folder is named ``scene_<n>`` (REAL's layout)
    and NOCS-CAMERA's otherwise. Missing ``size`` is NaN, missing ``handle_visibility`` is true.
    """
    try:
        d = load_pickle(path)
    except ValueError as e:  # ResultsFileError
        raise NocsFormatError(f"{path}: {e}") from e
    if not isinstance(d, Mapping) or any(k not in d for k in _SPD_REQUIRED):
        keys = sorted(map(str, d)) if isinstance(d, Mapping) else type(d).__name__
        raise NocsFormatError(f"{path}: SPD label needs keys {list(_SPD_REQUIRED)}, found {keys}")
    n = len(d["instance_ids"])
    inst_ids = _spd_array(d, "instance_ids", (n,), path)
    class_ids = _spd_array(d, "class_ids", (n,), path)
    bboxes = _spd_array(d, "bboxes", (n, 4), path)
    scales = _spd_array(d, "scales", (n,), path)
    rotations = _spd_array(d, "rotations", (n, 3, 3), path)
    translations = _spd_array(d, "translations", (n, 3), path)
    sizes = _spd_array(d, "size", (n, 3), path) if "size" in d else np.full((n, 3), np.nan)
    handles = _spd_array(d, "handle_visibility", (n,), path) if "handle_visibility" in d else np.ones(n)
    models = list(d["model_list"])
    if len(models) != n:
        raise NocsFormatError(f"{path}: model_list has {len(models)} entries, instance_ids {n}")
    instances = []
    for i in range(n):
        sRT = np.eye(4)
        sRT[:3, :3] = scales[i] * rotations[i]
        sRT[:3, 3] = translations[i]
        try:
            instances.append(
                InstanceLabel(
                    inst_ids[i], class_ids[i], models[i], sRT, scales[i], sizes[i], handles[i] != 0, bboxes[i]
                )
            )
        except (TypeError, ValueError) as e:
            raise NocsFormatError(f"{path}: instance {i}: {e}") from e
    real = prefix.parent.name.startswith("scene_")
    intrinsics = NOCS_REAL_INTRINSICS if real else NOCS_CAMERA_INTRINSICS
    info = {"source": "spd_label_pkl", "intrinsics": "nocs_real" if real else "nocs_camera"}
    return FrameLabel(instances, intrinsics.copy(), image_size, info)


# ---------------------------------------------------------------------------------------------------------------------
# Frames


def composed_depth_path(root: Path, prefix: Path) -> Path:
    """SPD's composed depth of a CAMERA frame: ``<root>/<split>/<scene>/<frame>_composed.png``, where ``prefix`` is
    ``.../<split>/<scene>/<frame>`` (e.g. ``root = camera_full_depths``)."""
    prefix = Path(prefix)
    return Path(root) / prefix.parent.parent.name / prefix.parent.name / f"{prefix.name}{_COMPOSED_SUFFIX}"


def _read_depth_file(path: Path, role: str) -> np.ndarray:
    array, bit_depth, color_type = _read_png(path, role)
    if (bit_depth, color_type) == (16, 0) or (bit_depth, color_type) in ((8, 2), (8, 6)):
        return decode_depth(array)
    raise NocsFormatError(
        f"{path}: {role} is {_png_kind(bit_depth, color_type)}; expected 16-bit single-channel millimetres or "
        "NOCS-CAMERA's 8-bit 3-channel encoding"
    )


def _read_color_file(path: Path, role: str) -> np.ndarray:
    array, bit_depth, color_type = _read_png(path, role)
    if bit_depth != 8 or color_type not in (2, 6):
        raise NocsFormatError(f"{path}: {role} is {_png_kind(bit_depth, color_type)}; expected 8-bit RGB or RGBA")
    return np.ascontiguousarray(array[..., :3])


def _read_mask_file(path: Path) -> np.ndarray:
    array, bit_depth, color_type = _read_png(path, "mask")
    if color_type == 3:  # palette: expanded to RGB like OpenCV's read; ids are in R
        return np.ascontiguousarray(array[..., 0])
    if bit_depth != 8:
        raise NocsFormatError(f"{path}: mask is {_png_kind(bit_depth, color_type)}; expected 8-bit instance ids")
    # OpenCV's 3-channel read, channel 2 = R; grey (and grey+alpha) replicate the grey value into it.
    return np.ascontiguousarray(array if array.ndim == 2 else array[..., 0])


def read_frame(prefix: Path, composed_depth: Path | None = None, with_coord: bool = True) -> Frame:
    """Read one frame of the NOCS layout (ours, NOCS-CAMERA or NOCS-REAL).

    Args:
        prefix: ``<scene dir>/<frame id>``, e.g. ``CAMERA/val/00000/0000``.
        composed_depth: SPD's composed-depth tree root (e.g. ``camera_full_depths``, see :func:`composed_depth_path`)
            or directly a ``_composed.png`` file; its depth replaces ``_depth.png``, which is then not read.
        with_coord: read ``_coord.png``; when false the file is not needed and ``Frame.coord`` is ``None``.

    Returns:
        The :class:`Frame`. ``label`` comes from ``_label.json``, else SPD's ``_label.pkl``, else is ``None``.

    Raises:
        NocsFormatError: a file is missing or unreadable, has the wrong bit depth or channels, the images differ in
            size, a meta line is malformed (field count, non-integer or duplicate id, class id outside 0..6), or the
            label is malformed or disagrees with the meta lines or the image size. The message names the file.
    """
    prefix = Path(prefix)
    color_path = _file(prefix, "color")
    color = _read_color_file(color_path, "colour image")
    if composed_depth is None:
        depth_path = _file(prefix, "depth")
    else:
        composed_depth = Path(composed_depth)
        is_file = composed_depth.name.endswith(_COMPOSED_SUFFIX) and not composed_depth.is_dir()
        depth_path = composed_depth if is_file else composed_depth_path(composed_depth, prefix)
    depth = _read_depth_file(depth_path, "depth" if composed_depth is None else "composed depth")
    mask_path = _file(prefix, "mask")
    mask = _read_mask_file(mask_path)
    image_size = color.shape[:2]
    images: list[tuple[Path, tuple[int, ...]]] = [(depth_path, depth.shape), (mask_path, mask.shape)]
    coord = None
    if with_coord:
        coord_path = _file(prefix, "coord")
        coord_rgb = _read_color_file(coord_path, "NOCS map")
        images.append((coord_path, coord_rgb.shape[:2]))
    for path, shape in images:
        if shape[:2] != image_size:
            raise NocsFormatError(
                f"{path}: image is {shape[1]}×{shape[0]} px but {color_path.name} is {image_size[1]}×{image_size[0]}"
            )
    if with_coord:
        coord = decode_coord(coord_rgb)
        coord[mask == BACKGROUND_ID] = 0.0
    meta = read_meta(_file(prefix, "meta"))

    label = None
    label_path = _file(prefix, "label")
    if label_path.exists():
        label = _read_label_json(label_path)
    elif _file(prefix, "label_pkl").exists():
        label_path = _file(prefix, "label_pkl")
        label = _read_label_pkl(label_path, prefix, image_size)
    if label is not None:
        try:
            _check_label(label, meta, image_size)
        except ValueError as e:
            raise NocsFormatError(f"{label_path}: {e}") from e
    return Frame(color=color, depth=depth, mask=mask, coord=coord, meta=meta, label=label, prefix=prefix)


def read_coord_at(prefix: Path, rows: np.ndarray, cols: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """NOCS coordinates ``(N, 3)`` float32 of the pixels ``(rows[n], cols[n])`` of a frame's ``_coord.png``.

    Bit for bit ``read_frame(prefix).coord[rows, cols]`` at foreground pixels (:func:`read_frame` also zeroes the
    background; this does not read the mask), but only the N pixels are decoded, not the whole map: the training
    dataset reads a frame with ``with_coord=False`` and then this, which saves it a third of its time.

    Raises:
        NocsFormatError: the map is missing or unreadable, or is not ``image_size`` ``(H, W)``.
    """
    return decode_coord(read_coord_rgb(prefix, image_size)[rows, cols][None])[0]  # (1, N, 3) decoded -> (N, 3)


def read_coord_rgb(prefix: Path, image_size: tuple[int, int]) -> np.ndarray:
    """A frame's ``_coord.png`` as stored, ``(H, W, 3)`` uint8 RGB, not decoded (:func:`decode_coord` decodes the
    pixels wanted); raises :class:`NocsFormatError` if it is missing, unreadable, or not ``image_size (H, W)``."""
    path = _file(Path(prefix), "coord")
    rgb = _read_color_file(path, "NOCS map")  # (H, W, 3) uint8
    if rgb.shape[:2] != tuple(image_size):
        raise NocsFormatError(
            f"{path}: image is {rgb.shape[1]}×{rgb.shape[0]} px but the frame is {image_size[1]}×{image_size[0]}"
        )
    return rgb


def _check_frame(frame: Frame) -> tuple[int, int]:
    color, depth, mask, coord = frame.color, frame.depth, frame.mask, frame.coord
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise ValueError(f"color must be (H, W, 3) uint8, got {color.shape} {color.dtype}")
    h, w = color.shape[:2]
    if depth.shape != (h, w) or depth.dtype != np.uint16:
        raise ValueError(f"depth must be ({h}, {w}) uint16 millimetres, got {depth.shape} {depth.dtype}")
    if mask.shape != (h, w) or mask.dtype != np.uint8:
        raise ValueError(f"mask must be ({h}, {w}) uint8, got {mask.shape} {mask.dtype}")
    if coord is None or coord.shape != (h, w, 3):
        raise ValueError(f"coord must be ({h}, {w}, 3) NOCS coordinates, got {None if coord is None else coord.shape}")
    _check_meta(frame.meta)
    if frame.label is not None:
        _check_label(frame.label, frame.meta, (h, w))
    return h, w


def write_frame(prefix: Path, frame: Frame, depth_encoding: Literal["uint16", "camera3"] = "uint16") -> None:
    """Write one frame in the NOCS layout; ``frame.prefix`` is ignored.

    Each file is written atomically (a temporary name in the same folder, then ``os.replace``). An existing
    ``_label.json`` is removed first and the new one written last, so :func:`frame_complete` is true only once every
    file of this frame is in place. A frame whose ``label`` is ``None`` gets no label file and is never complete.

    Args:
        prefix: ``<scene dir>/<frame id>``; missing folders are created.
        frame: color (H, W, 3) uint8, depth (H, W) uint16 mm, mask (H, W) uint8, coord (H, W, 3) NOCS (stored where
            ``mask != 255``), meta lines, optional label.
        depth_encoding: ``"uint16"`` (16-bit single channel, as NOCS-REAL) or ``"camera3"`` (NOCS-CAMERA's 3-channel
            8-bit encoding, see :func:`encode_depth_camera3`).

    Raises:
        ValueError: wrong shapes or dtypes, malformed meta, or a label that disagrees with the meta or image size.
    """
    if depth_encoding not in ("uint16", "camera3"):
        raise ValueError(f"depth_encoding must be 'uint16' or 'camera3', not {depth_encoding!r}")
    _check_frame(frame)
    depth = frame.depth if depth_encoding == "uint16" else encode_depth_camera3(frame.depth)
    coord = encode_coord(frame.coord, frame.mask != BACKGROUND_ID)
    label_text = None if frame.label is None else _label_json(frame.label)
    meta_text = _format_meta(frame.meta)

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    _file(prefix, "label").unlink(missing_ok=True)
    write_atomically(_file(prefix, "color"), _png_bytes(frame.color))
    write_atomically(_file(prefix, "depth"), _png_bytes(depth))
    write_atomically(_file(prefix, "mask"), _png_bytes(frame.mask))
    write_atomically(_file(prefix, "coord"), _png_bytes(coord))
    write_atomically(_file(prefix, "meta"), meta_text.encode("utf-8"))
    if label_text is not None:
        write_atomically(_file(prefix, "label"), label_text.encode("utf-8"))


def frame_complete(prefix: Path) -> bool:
    """Whether :func:`write_frame` finished this frame: its ``_label.json`` and every other file exist."""
    prefix = Path(prefix)
    return all(_file(prefix, key).is_file() for key in ("label", "color", "depth", "mask", "coord", "meta"))


def list_frames(root: Path) -> list[Path]:
    """Every frame prefix under ``root`` (recursive) that has a ``_color.png``, sorted.

    Raises:
        NocsFormatError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NocsFormatError(f"{root}: not a folder")
    suffix = _SUFFIXES["color"]
    return sorted(p.with_name(p.name[: -len(suffix)]) for p in root.rglob(f"*{suffix}") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------------
# Instances, by the reference pipeline's rules


def frame_instances(
    frame: Frame, min_depth_pixels: int = 64, *, exclude_models: Collection[str] = ()
) -> list[ObjectInstance]:
    """The foreground instances of a frame that the reference pipeline (NOCS / SPD preprocessing) keeps.

    Meta lines are taken in file order; a line is skipped when its class is 0 (distractor), its instance id is not in
    the mask, or its model is in ``exclude_models`` (e.g. :data:`SPD_EXCLUDED_MODELS`). Mask ids without a meta line
    are ignored. Then, as in the reference: if the box of any such instance is wider than 600 or taller than 440
    pixels the whole frame is a broken render and is rejected; an instance with fewer than ``min_depth_pixels``
    pixels where its mask has depth > 0 is skipped.

    Args:
        frame: the frame (its ``label``, if any, supplies :attr:`ObjectInstance.label` by instance id).
        min_depth_pixels: the least number of instance pixels with valid depth.
        exclude_models: model ids to skip.

    Returns:
        The kept instances in meta order (possibly none).

    Raises:
        FrameRejected: the frame is a broken render; skip it whole.
    """
    present = set(np.unique(frame.mask).tolist()) - {BACKGROUND_ID}
    labels = {} if frame.label is None else {inst.inst_id: inst for inst in frame.label.instances}
    has_depth = frame.depth > 0
    out = []
    for m in frame.meta:
        if m.class_id == 0 or m.inst_id not in present or m.model_id in exclude_models:
            continue
        inst_mask = frame.mask == m.inst_id
        bbox = mask_bbox(inst_mask)
        height, width = int(bbox[2] - bbox[0]), int(bbox[3] - bbox[1])
        if width > MAX_BOX_WIDTH or height > MAX_BOX_HEIGHT:
            where = "in-memory frame" if frame.prefix is None else str(_file(frame.prefix, "mask"))
            raise FrameRejected(
                f"{where}: instance {m.inst_id} box is {width}×{height} px (over {MAX_BOX_WIDTH}×{MAX_BOX_HEIGHT}): a "
                "broken render, skip the frame"
            )
        num_valid = int(np.count_nonzero(inst_mask & has_depth))
        if num_valid < min_depth_pixels:
            continue
        out.append(ObjectInstance(m.inst_id, m.class_id, m.model_id, inst_mask, bbox, num_valid, labels.get(m.inst_id)))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Instance point clouds

_MODEL_ID = re.compile(r"^[^\s/\\]+$")


def _check_points(model_id: Any, points: Any, source: str) -> np.ndarray:
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise NocsFormatError(f"{source}: model id {model_id!r} must be a non-empty string without spaces or slashes")
    try:
        arr = np.asarray(points)
    except (TypeError, ValueError) as e:
        raise NocsFormatError(f"{source}: model {model_id}: not an array ({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "iuf":
        raise NocsFormatError(f"{source}: model {model_id} has shape {arr.shape} {arr.dtype}, expected (N, 3) floats")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise NocsFormatError(f"{source}: model {model_id} has non-finite points")
    return arr


def write_models(path: Path, models: Mapping[str, np.ndarray]) -> None:
    """Write instance point clouds, model id → (N, 3) NOCS points, as float32 ``.npz`` (atomically).

    Raises:
        NocsFormatError: a model id is empty or holds whitespace or slashes, or points are not finite (N, 3).
    """
    path = Path(path)
    checked = {model_id: _check_points(model_id, points, str(path)) for model_id, points in models.items()}
    buffer = io.BytesIO()
    # A zip of .npy members is exactly what np.savez writes; built by hand so that any model id can be a key
    # (np.savez(**models) would clash with its own argument names).
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for model_id, points in checked.items():
            with zf.open(f"{model_id}.npy", "w") as f:
                np.lib.format.write_array(f, points, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())


def read_models(path: Path) -> dict[str, np.ndarray]:
    """Read instance point clouds: ours (``.npz``) or SPD's (``.pkl``, a dict model id → array, read with the
    restricted unpickler).

    Returns:
        model id → (N, 3) float32 NOCS points, in file order.

    Raises:
        NocsFormatError: missing or unreadable file, another suffix, or a value that is not finite (N, 3) points.
    """
    path = Path(path)
    if not path.is_file():
        raise NocsFormatError(f"{path}: missing (model point clouds)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = {key: npz[key] for key in npz.files}
        except Exception as e:  # zipfile, numpy and OS errors of several types
            raise NocsFormatError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from e
    elif suffix == ".pkl":
        try:
            raw = load_pickle(path)
        except ValueError as e:  # ResultsFileError
            raise NocsFormatError(f"{path}: {e}") from e
        if not isinstance(raw, Mapping):
            raise NocsFormatError(f"{path}: expected a dict model id → points, got {type(raw).__name__}")
    else:
        raise NocsFormatError(f"{path}: model point clouds are .npz or .pkl, not {path.suffix or 'no suffix'!r}")
    return {model_id: _check_points(model_id, points, str(path)) for model_id, points in raw.items()}
