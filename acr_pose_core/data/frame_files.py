"""Reading a user's RGB-D frame from files: colour and depth images, and a camera intrinsics file.

- colour: any image OpenCV reads (PNG, JPEG, ...), 8-bit, returned as RGB ``(H, W, 3)`` uint8 (an alpha channel is
  dropped, grey is replicated);
- depth: a 16-bit single-channel PNG/TIFF (millimetres, the NOCS and ROS ``16UC1`` convention) or a 32-bit float
  TIFF/EXR or ``.npy`` (metres), returned as it is stored (uint16 or float32);
- at most :data:`MAX_IMAGE_SIDE` pixels a side (checked from the file's header before decoding where Pillow reads
  it); a JPEG without its end marker (truncated) is refused, not decoded with a grey fill;
- intrinsics: JSON with ``fx, fy, cx, cy`` (and optionally ``width, height``) or ``K`` (3×3, row-major, or a
  ``camera_info``-style ``k`` of 9 numbers), or a text file of 4 numbers (``fx fy cx cy``) or 9 (the matrix).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from acr_pose_core.geometry.camera import CameraIntrinsics

__all__ = ["MAX_IMAGE_SIDE", "check_image_size", "read_color_file", "read_depth_file", "read_intrinsics_file"]

MAX_IMAGE_SIDE = 4096
"""The largest image side (pixels) a frame may have: a 10000×10000 frame from a few MB of PNGs needs GBs once
decoded (measured: 6.8 GB at the peak); depth cameras and the model work far below this."""


def check_image_size(height: int, width: int, what: str) -> None:
    """ValueError when ``what`` (a file or an array) is larger than :data:`MAX_IMAGE_SIDE` on a side."""
    if max(height, width) > MAX_IMAGE_SIDE:
        raise ValueError(f"{what}: {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} on a side (resize it first)")


def _header_size(path: Path) -> None:
    """Refuse an oversized image from its header, before decoding it (formats Pillow does not know are checked
    after decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return
    check_image_size(height, width, str(path))


def _check_complete_jpeg(path: Path) -> None:
    """OpenCV decodes a truncated JPEG and fills the missing part grey: refuse one without its end marker."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        tail = f.read().rstrip(b"\0\r\n ")
    if not tail.endswith(b"\xff\xd9"):
        raise ValueError(f"{path}: a truncated JPEG (no end-of-image marker)")


def _exists(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def read_color_file(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB. Raises ValueError for what is not an 8-bit image."""
    import cv2

    path = _exists(Path(path))
    _header_size(path)
    _check_complete_jpeg(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    check_image_size(*image.shape[:2], str(path))
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: colour must be 8-bit, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1])  # BGR(A) -> RGB


def read_depth_file(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint16 (millimetres) or float32 (metres), as stored. Raises ValueError for anything else."""
    import cv2

    path = _exists(Path(path))
    if path.suffix.lower() == ".npy":
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape  # the header only
        if len(shape) >= 2:
            check_image_size(shape[0], shape[1], str(path))
        depth = np.load(path, allow_pickle=False)
    else:
        _header_size(path)
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if depth is None:
            raise ValueError(f"{path}: not an image OpenCV can read")
    if depth.ndim >= 2:
        check_image_size(*depth.shape[:2], str(path))
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.dtype not in (np.uint16, np.float32, np.float64):
        raise ValueError(
            f"{path}: depth must be single-channel uint16 (mm) or float (m), got {depth.dtype} {depth.shape}"
        )
    return depth.astype(np.float32) if depth.dtype == np.float64 else depth


def _pinhole(path: Path, K: list[float]) -> list[float]:
    """``fx, fy, cx, cy`` of a row-major 3×3 matrix, which must be a pinhole camera (no skew, last row 0 0 1): the
    estimator has no other model, and dropping the other entries would pose every object in a wrong frame."""
    if K[1] != 0 or K[3] != 0 or K[6:] != [0, 0, 1]:
        raise ValueError(f"{path}: K must be a pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {K}")
    return [K[0], K[4], K[2], K[5]]


def _number(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # JSON true is not a focal length
        raise ValueError(f"{path}: {key} must be a number, got {json.dumps(value)[:40]}")
    return float(value)


def read_intrinsics_file(path: str | os.PathLike, width: int, height: int) -> CameraIntrinsics:
    """The camera of ``width × height`` images from a file (module docstring). Raises ValueError when unreadable,
    when a value is not a number, when a 3×3 matrix is not a pinhole one, or when the file names another image
    size."""
    path = _exists(Path(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected JSON or 4 or 9 numbers)") from None
    size = (width, height)
    if path.suffix.lower() == ".json":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected an object with fx, fy, cx, cy or K")
        if {"fx", "fy", "cx", "cy"} <= set(d):
            values = [_number(path, k, d[k]) for k in ("fx", "fy", "cx", "cy")]
        elif "K" in d or "k" in d:
            rows = d.get("K", d.get("k"))
            flat = (
                [v for row in rows for v in row]
                if isinstance(rows, list) and all(isinstance(row, list) for row in rows)
                else rows
            )
            if not isinstance(flat, list) or len(flat) != 9:
                raise ValueError(f"{path}: K must be 9 numbers (a 3x3 matrix, nested or flat)")
            values = _pinhole(path, [_number(path, "K", v) for v in flat])
        else:
            raise ValueError(f"{path}: expected fx, fy, cx, cy or K")
        if "width" in d and "height" in d:
            for key in ("width", "height"):
                if isinstance(d[key], bool) or not isinstance(d[key], int):
                    raise ValueError(f"{path}: {key} must be an integer, got {json.dumps(d[key])[:40]}")
            size = (d["width"], d["height"])
    else:
        try:
            numbers = [float(v) for v in text.replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"{path}: expected 4 numbers (fx fy cx cy) or 9 (the 3x3 matrix)") from None
        if len(numbers) == 4:
            values = numbers
        elif len(numbers) == 9:
            values = _pinhole(path, numbers)
        else:
            raise ValueError(f"{path}: expected 4 numbers (fx fy cx cy) or 9 (the 3x3 matrix), got {len(numbers)}")
    if size != (width, height):
        raise ValueError(f"{path}: the camera is {size[0]}x{size[1]}, the images {width}x{height}")
    fx, fy, cx, cy = (float(v) for v in values)
    return CameraIntrinsics(fx, fy, cx, cy, width, height)
