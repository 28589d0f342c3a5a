"""Where the object masks of a frame come from: one small interface, four sources.

A *mask source* is any callable ``source(rgb, depth, intrinsics) -> Detections``:

- ``rgb``: (H, W, 3) uint8, RGB order;
- ``depth``: (H, W) float32 metres, 0 where there is no measurement;
- ``intrinsics``: :class:`~acr_pose_core.geometry.camera.CameraIntrinsics` of the frame.

The sources shipped here:

1. a trained instance segmenter (``acr_pose_core.detection.segmenter``, when it lands);
2. :func:`detections_from_frame`: the ground-truth masks of a NOCS-format frame (for evaluation and the demo);
3. :func:`read_mask_results`: precomputed masks in the format the community shares Mask R-CNN outputs in (NOCS's
   and SPD's ``results_*.pkl`` with ``rois, class_ids, scores, masks``), read with the restricted unpickler;
4. :func:`as_mask_source`: any callable of the user's (their own YOLO or SAM) returning :class:`Detections`, a
   ``(masks, class_ids, scores)`` tuple or a mapping with those keys; class ids may be category names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from acr_pose_core.categories import CATEGORIES, CLASS_IDS, NUM_CATEGORIES
from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import frame_objects
from acr_pose_core.evaluation.results_io import ResultsFileError, load_pickle
from acr_pose_core.geometry.camera import CameraIntrinsics

__all__ = [
    "Detections",
    "InputError",
    "MaskSource",
    "as_mask_source",
    "detections_from_frame",
    "mask_results_file",
    "read_mask_results",
]


class InputError(ValueError):
    """A frame, a camera or a set of detections that cannot be used; the message names the problem."""


class MaskSource(Protocol):
    def __call__(self, rgb: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics) -> Detections: ...


def _class_ids(values: Any) -> np.ndarray:
    """Class ids 1..6 from ids or category names."""
    values = list(np.asarray(values).reshape(-1)) if not isinstance(values, (list, tuple)) else list(values)
    out = []
    for value in values:
        if isinstance(value, (str, np.str_)):
            if str(value) not in CLASS_IDS:
                raise InputError(f"class {value!r} is not one of the categories {', '.join(CATEGORIES)}")
            out.append(CLASS_IDS[str(value)])
        elif isinstance(value, (bool, np.bool_)) or not float(value).is_integer():
            raise InputError(f"class id {value!r} is not an integer 1..{NUM_CATEGORIES} or a category name")
        else:
            out.append(int(value))
    ids = np.array(out, dtype=np.int64)
    bad = (ids < 1) | (ids > NUM_CATEGORIES)
    if bad.any():
        raise InputError(f"class id {int(ids[bad][0])} is not 1..{NUM_CATEGORIES} ({', '.join(CATEGORIES)})")
    return ids


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(K, 4) int64 boxes ``y1, x1, y2, x2`` (ends exclusive) of (K, H, W) masks; all zero for an empty mask."""
    boxes = np.zeros((len(masks), 4), dtype=np.int64)
    for k, mask in enumerate(masks):
        if mask.any():
            boxes[k] = nocs_format.mask_bbox(mask)
    return boxes


@dataclass(frozen=True)
class Detections:
    """K objects found in an H×W frame.

    Attributes:
        masks: (K, H, W) bool.
        class_ids: (K,) int64, 1..6 (:data:`~acr_pose_core.categories.CATEGORIES` order).
        scores: (K,) float64 in [0, 1].
        boxes: (K, 4) int64 ``y1, x1, y2, x2`` in pixels, ends exclusive (the crop window is built around it).
    """

    masks: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    @classmethod
    def from_masks(
        cls,
        masks: Any,
        class_ids: Any,
        scores: Any = None,
        boxes: Any = None,
    ) -> Detections:
        """Checked detections: ``masks`` (K, H, W) (bool or 0/1), ``class_ids`` ids 1..6 or category names,
        ``scores`` (default 1), ``boxes`` (default: each mask's box).

        Raises:
            InputError: shapes that disagree, class ids outside 1..6, scores outside [0, 1] or not finite.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise InputError(f"masks must be (K, H, W), got shape {masks.shape}")
        if masks.dtype != bool:
            if masks.dtype.kind not in "iuf" or not np.isin(masks, (0, 1)).all():
                raise InputError(f"masks must be bool or 0/1, got {masks.dtype} values")
            masks = masks.astype(bool)
        K = len(masks)
        ids = _class_ids(class_ids) if K else np.zeros(0, dtype=np.int64)
        if ids.shape != (K,):
            raise InputError(f"{K} masks but {ids.size} class ids")
        scores = np.ones(K) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape != (K,):
            raise InputError(f"{K} masks but {scores.size} scores")
        if not np.isfinite(scores).all() or ((scores < 0) | (scores > 1)).any():
            raise InputError(f"scores must be finite and in [0, 1], got {scores}")
        if boxes is None:
            boxes = _mask_boxes(masks)
        boxes = np.asarray(boxes)
        if boxes.shape != (K, 4) or (K and not np.isfinite(boxes).all()):
            raise InputError(f"boxes must be (K, 4) = ({K}, 4) finite y1, x1, y2, x2, got shape {boxes.shape}")
        return cls(masks, ids, scores, np.rint(boxes).astype(np.int64).reshape(K, 4))

    @classmethod
    def from_mapping(cls, detections: Mapping[str, Any]) -> Detections:
        """A plain mapping ``{"masks", "class_ids"[, "scores"][, "boxes"]}`` (a user's own segmenter output), checked
        by :meth:`from_masks`; InputError naming missing or unknown keys."""
        unknown = sorted(set(detections) - {"masks", "class_ids", "scores", "boxes"})
        missing = [key for key in ("masks", "class_ids") if key not in detections]
        if unknown or missing:
            raise InputError(
                "a detections mapping needs 'masks' and 'class_ids' (optional 'scores', 'boxes'); "
                f"missing {missing}, unknown {unknown}"
            )
        return cls.from_masks(
            detections["masks"], detections["class_ids"], detections.get("scores"), detections.get("boxes")
        )

    @classmethod
    def empty(cls, height: int, width: int) -> Detections:
        """No objects in an ``height × width`` frame."""
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4), np.int64))

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the masks."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])


def detections_from_frame(frame: nocs_format.Frame) -> Detections:
    """The ground-truth masks of a NOCS-format frame: its instances of a category (class 1..6) with mask pixels, in
    meta order, score 1 (:func:`acr_pose_core.data.detection_frames.frame_objects`, what the segmenter trains on)."""
    _, class_ids, masks, boxes = frame_objects(frame)
    if not len(class_ids):
        return Detections.empty(*frame.image_size)
    return Detections.from_masks(masks, class_ids, None, boxes)


def read_mask_results(path: str | os.PathLike) -> Detections:
    """Precomputed masks of one frame in NOCS's/SPD's Mask R-CNN result pickle (``results_*.pkl``): a dict with
    ``rois`` (K, 4) ``y1, x1, y2, x2``, ``class_ids`` (K,), ``scores`` (K,) and ``masks`` (H, W, K) (the layout of
    ``mrcnn_results/`` in SPD's release), read with the restricted unpickler (no code runs).

    Raises:
        FileNotFoundError: no such file.
        InputError: not such a dict, or its arrays disagree.
    """
    try:
        d = load_pickle(path)
    except ResultsFileError as error:
        raise InputError(str(error)) from None
    if not isinstance(d, Mapping):
        raise InputError(f"{path}: expected a dict with rois, class_ids, scores, masks; got {type(d).__name__}")
    missing = {"rois", "class_ids", "scores", "masks"} - set(d)
    if missing:
        raise InputError(
            f"{path}: missing {sorted(missing)} (a Mask R-CNN results file has rois, class_ids, scores, masks)"
        )
    masks = np.asarray(d["masks"])
    if masks.ndim != 3:
        raise InputError(f"{path}: masks must be (H, W, K), got shape {masks.shape}")
    try:
        return Detections.from_masks(np.moveaxis(masks, -1, 0), d["class_ids"], d["scores"], d["rois"])
    except InputError as error:
        raise InputError(f"{path}: {error}") from None


def mask_results_file(folder: str | os.PathLike, name: str, frame: str | os.PathLike | None = None) -> Path:
    """The Mask R-CNN results pickle of frame ``name`` (e.g. ``0000`` or ``scene_1_0000``) in ``folder``.

    A file matches when its stem is ``name`` or ends in ``_<name>`` (SPD's ``mrcnn_results`` naming is
    ``results_<split>_<scene>_<frame>.pkl``); ``results_*`` files are preferred when both kinds match. Where several
    match (``name`` ``0000`` matches every scene's frame 0000), the frame's own path ``frame`` (its colour file or
    prefix, e.g. ``real_test/scene_2/0000``) decides: the longest run of its trailing path parts, joined by ``_``,
    that one file's stem ends in. Never the first in sorted order: a frame gets its own masks or an error.

    Raises:
        FileNotFoundError: no such file.
        ValueError: more than one file matches and ``frame`` does not tell them apart.
    """
    folder = Path(folder)

    def ends_in(path: Path, key: str) -> bool:
        return path.stem == key or path.stem.endswith(f"_{key}")

    found = [p for p in sorted(folder.glob("*.pkl")) if ends_in(p, name)]
    found = [p for p in found if p.name.startswith("results_")] or found
    if not found:
        raise FileNotFoundError(f"{folder}: no Mask R-CNN results file for frame {name} (results_*_{name}.pkl)")
    if len(found) > 1 and frame is not None:
        stem = Path(frame).name  # a prefix (0000) or a colour file (a_color.png: a)
        stem = Path(stem).stem[: -len("_color")] if Path(stem).stem.endswith("_color") else stem
        parts = [*Path(frame).absolute().parent.parts[1:], stem]
        for k in range(1, len(parts) + 1):
            narrowed = [p for p in found if ends_in(p, "_".join(parts[-k:]))]
            if len(narrowed) == 1:
                return narrowed[0]
            if not narrowed:
                break
    if len(found) > 1:
        listed = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ValueError(
            f"{folder}: {len(found)} Mask R-CNN results files match frame {name} ({listed}): point --masks at the "
            "folder of this split's results, or name the files results_<split>_<scene>_<frame>.pkl"
        )
    return found[0]


def _to_detections(result: Any, image_size: tuple[int, int], where: str) -> Detections:
    if isinstance(result, Detections):
        detections = result
    elif isinstance(result, Mapping):
        missing = {"masks", "class_ids"} - set(result)
        if missing:
            raise InputError(f"{where} returned a mapping without {sorted(missing)}")
        detections = Detections.from_masks(result["masks"], result["class_ids"], result.get("scores"))
    elif isinstance(result, Sequence) and len(result) in (2, 3):
        detections = Detections.from_masks(*result)
    else:
        raise InputError(
            f"{where} returned {type(result).__name__}; expected Detections, (masks, class_ids, scores)"
            " or a mapping with those keys"
        )
    if len(detections) and detections.image_size != tuple(image_size):
        raise InputError(
            f"{where} returned {detections.image_size[0]}x{detections.image_size[1]} masks for a "
            f"{image_size[0]}x{image_size[1]} frame"
        )
    return detections


def as_mask_source(fn: Callable[..., Any]) -> MaskSource:
    """Wrap a user's callable ``fn(rgb, depth, intrinsics)`` (arguments as in the module docstring) so that what it
    returns is checked and turned into :class:`Detections`: ``Detections``; ``(masks, class_ids[, scores])`` with
    masks (K, H, W); or a mapping with keys ``masks``, ``class_ids`` and optionally ``scores``."""
    if not callable(fn):
        raise TypeError(f"a mask source must be callable, got {type(fn).__name__}")
    name = getattr(fn, "__name__", type(fn).__name__)

    def source(rgb: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics) -> Detections:
        return _to_detections(fn(rgb, depth, intrinsics), depth.shape[:2], f"mask source {name!r}")

    source.__name__ = name
    return source
