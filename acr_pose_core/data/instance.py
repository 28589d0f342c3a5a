"""One object of an RGB-D frame → the Reconstructor's inputs, as SPD prepares them: the one place this is done.

The training :class:`~acr_pose_core.data.dataset.PoseDataset` calls :func:`instance_inputs` on a NOCS-format frame,
and the per-frame estimator and the ROS node call it on a camera's frame, so that a model sees at run time exactly
what it was trained on.

Steps (SPD's ``PoseDataset``, github.com/mentian/object-deformnet, ``data/pose_dataset.py``): the square crop window
around the object's box (:func:`crop_window`); the window's pixels of the object with a depth measurement, N of them
drawn without replacement in pixel order when there are more, repeated cyclically when fewer; their back-projection
(:func:`acr_pose_core.geometry.camera.pixel_points`); the window's colour resized to S×S (:func:`resize_bilinear`)
and each point's pixel remapped into it (``choose``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acr_pose_core.geometry.camera import CameraIntrinsics, pixel_points

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_WINDOW",
    "WINDOW_STEP",
    "InstanceInputs",
    "crop_window",
    "instance_inputs",
    "normalise_crop",
    "resize_bilinear",
]

WINDOW_STEP = 40
MAX_WINDOW = 440
"""Crop windows are multiples of ``WINDOW_STEP`` pixels, at most ``MAX_WINDOW`` (SPD's ``get_bbox``)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB statistics the crops are normalised with (torchvision's ImageNet values, as SPD)."""


def crop_window(bbox: Sequence[int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """SPD's square crop window around an instance box.

    ``window = (max(y2 − y1, x2 − x1) // 40 + 1) · 40`` capped at 440 (and at the image's smaller side), centred on
    ``((y1 + y2) // 2, (x1 + x2) // 2)`` with ``rmin = cy − window // 2``, ``rmax = cy + window // 2`` (columns
    alike), then shifted back inside the image. For 640×480 this is SPD's ``get_bbox`` number for number.

    Args:
        bbox: ``y1, x1, y2, x2`` in pixels, ends exclusive.
        image_size: ``(H, W)``.

    Returns:
        ``rmin, rmax, cmin, cmax`` (ends exclusive) with ``rmax − rmin == cmax − cmin``.
    """
    y1, x1, y2, x2 = (int(v) for v in bbox)
    h, w = (int(v) for v in image_size)
    window = min((max(y2 - y1, x2 - x1) // WINDOW_STEP + 1) * WINDOW_STEP, MAX_WINDOW, h, w)
    half = window // 2
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    rmin, rmax, cmin, cmax = cy - half, cy + half, cx - half, cx + half
    if rmin < 0:
        rmin, rmax = 0, rmax - rmin
    if cmin < 0:
        cmin, cmax = 0, cmax - cmin
    if rmax > h:
        rmin, rmax = rmin - (rmax - h), h
    if cmax > w:
        cmin, cmax = cmin - (cmax - w), w
    return rmin, rmax, cmin, cmax


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``i0, i1`` and weights ``w`` of ``out[j] = (1 − w)·in[i0] + w·in[i1]`` (half-pixel centres)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an (h, w, C) uint8 image to (size, size, C) uint8 with OpenCV's ``INTER_LINEAR`` rule (SPD's resize).

    Half-pixel centres, two taps per axis, clamped at the borders, no antialiasing (Pillow's ``BILINEAR`` widens its
    filter when shrinking, which would blur the 440-pixel windows differently from the reference). Equals
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)`` rounded to uint8.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"resize_bilinear: expected (h, w, C) uint8, got {image.shape} {image.dtype}")
    r0, r1, wr = _linear_taps(image.shape[0], size)
    c0, c1, wc = _linear_taps(image.shape[1], size)
    img = image.astype(np.float32)
    rows = img[r0] * (1 - wr)[:, None, None] + img[r1] * wr[:, None, None]  # (S, w, C)
    out = rows[:, c0] * (1 - wc)[None, :, None] + rows[:, c1] * wc[None, :, None]  # (S, S, C)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class InstanceInputs:
    """The Reconstructor's inputs for one object (N points, S×S crop), before normalisation and batching."""

    points: np.ndarray  # (N, 3) float64, camera frame (OpenCV), metres; all zero when num_valid == 0
    rgb: np.ndarray  # (S, S, 3) uint8, the crop window resized
    choose: np.ndarray  # (N,) int64, flat index row·S + col of each point's pixel in the resized crop (0 if none)
    rows: np.ndarray  # (N,) int64, image row v of each point
    cols: np.ndarray  # (N,) int64, image column u of each point
    num_valid: int  # distinct object pixels with depth in the window, before sampling or padding
    window: tuple[int, int, int, int]  # rmin, rmax, cmin, cmax in the image (ends exclusive)


def instance_inputs(
    color: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    bbox: Sequence[int],
    intrinsics: CameraIntrinsics,
    num_points: int,
    image_size: int,
    rng: np.random.Generator,
    depth_units_per_metre: float = 1000.0,
) -> InstanceInputs:
    """The inputs of the object ``mask`` selects (see the module docstring for the steps).

    Args:
        color: (H, W, 3) uint8 colour image (the channel order the model was trained with: RGB).
        depth: (H, W) depth aligned to ``color``; 0 (and NaN or infinity, for float depth) means no measurement.
        mask: (H, W) bool, the object's pixels.
        bbox: the object's box ``y1, x1, y2, x2`` in pixels, ends exclusive (e.g. of its mask).
        intrinsics: the camera of ``depth``.
        num_points: N.
        image_size: S.
        rng: draws the N points when there are more (the only randomness).
        depth_units_per_metre: 1000 for millimetres (NOCS files, ``16UC1``), 1 for metres (``32FC1``).

    Raises:
        ValueError: images of different sizes, or a camera of another size.
    """
    H, W = depth.shape[:2]
    if depth.ndim != 2 or color.shape[:2] != (H, W) or mask.shape != (H, W):
        raise ValueError(f"color {color.shape}, depth {depth.shape} and mask {mask.shape} must be the same H×W")
    if (intrinsics.height, intrinsics.width) != (H, W):
        raise ValueError(f"the camera is {intrinsics.height}x{intrinsics.width}, the images {H}x{W}")
    N, S = num_points, image_size
    rmin, rmax, cmin, cmax = crop_window(bbox, (H, W))
    window = rmax - rmin
    crop_depth = depth[rmin:rmax, cmin:cmax]
    valid = mask[rmin:rmax, cmin:cmax] & (crop_depth > 0)
    if crop_depth.dtype.kind == "f":
        valid &= np.isfinite(crop_depth)
    choose = np.flatnonzero(valid)  # (V,) flat indices row·window + col in the crop
    num_valid = len(choose)
    if num_valid > N:
        choose = choose[np.sort(rng.choice(num_valid, N, replace=False))]
    elif num_valid > 0:
        choose = np.pad(choose, (0, N - num_valid), "wrap")
    else:
        choose = np.zeros(N, dtype=np.int64)
    rows, cols = np.divmod(choose, window)  # (N,), (N,) in the crop
    v, u = rows + rmin, cols + cmin
    z = depth[v, u].astype(np.float64) / depth_units_per_metre
    points = pixel_points(u, v, z, intrinsics)  # (N, 3) metres
    rgb = resize_bilinear(color[rmin:rmax, cmin:cmax], S)  # (S, S, 3) uint8
    ratio = S / window
    choose = (np.floor(rows * ratio) * S + np.floor(cols * ratio)).astype(np.int64)  # in the resized crop
    if num_valid == 0:
        points[:] = 0.0
        choose[:] = 0
    return InstanceInputs(points, rgb, choose, v, u, num_valid, (rmin, rmax, cmin, cmax))


def normalise_crop(rgb: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB crop → (3, S, S) float32 network input ``(rgb / 255 − mean) / std`` (ImageNet's)."""
    image = (rgb.astype(np.float32) / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)  # (S, S, 3)
    return np.ascontiguousarray(image.transpose(2, 0, 1))
