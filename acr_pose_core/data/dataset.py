"""The training and evaluation dataset of the Reconstructor: one item per object instance of NOCS-layout frames.

Contents, top to bottom: constants and :class:`DatasetConfig`; the per-item steps as plain functions (the object's
model inputs come from :func:`acr_pose_core.data.instance.instance_inputs`, shared with the estimator; here
:func:`jitter_colors`, :func:`y_canonicaliser`); the label-only
reader :func:`read_label`; :class:`InstanceRef` and :class:`PoseDataset`; mixing several sources,
:class:`RatioSampler` and :func:`mixed`.

Reference: SPD's ``PoseDataset`` (M. Tian et al., "Shape Prior Deformation for Categorical 6D Object Pose and Size
Estimation", ECCV 2020, github.com/mentian/object-deformnet, ``data/pose_dataset.py``), which ACR-Pose and its
successors reuse. Its rules are followed exactly where they are specific: the square crop window (``get_bbox``), the
point sampling and padding, the crop resize and the remapping of ``choose``, the augmentation (colour jitter, point
shift added to the translation too, clipped per-point jitter), SPD's mug NOCS adjustment (``mug_meta``) and the
canonicalisation of symmetric rotations. Two deliberate differences: items are instances, not frames (SPD draws a
random instance of a frame per item), and all randomness comes from the item's own generator, never a global one.

Item (every field a tensor unless said; default ``collate`` batches it, strings becoming lists)::

    rgb             (3, S, S) float32   crop resized to S = image_size, ImageNet-normalised
    points          (N, 3) float32      observed points, camera frame (OpenCV), metres
    choose          (N,) int64          flat index ``row·S + col`` of each point's pixel in the resized crop
    nocs            (N, 3) float32      NOCS coordinates of the same pixels (canonical frame, NOCS units)
    model           (M, 3) float32      the instance's canonical model points (M = model_points)
    prior           (M', 3) float32     the category's shape prior
    sRT             (4, 4) float32      pose, ``points ≈ (sRT[:3, :3] @ nocs.T).T + sRT[:3, 3]``
    scale           () float32          s, metres per NOCS unit
    size            (3,) float32        NOCS-unit box extents (NaN where the label has none: SPD's train labels)
    class_id        () int64            1..6;  category () int64: class_id − 1
    handle_visible  () bool
    valid_points    () int64            distinct valid pixels before padding (see below)
    window          (4,) int64          crop window rmin, rmax, cmin, cmax in the image (ends exclusive)
    frame           str                 the frame prefix;  inst_id int: the instance id in the mask

Observed points are the pixels of the crop window where ``mask == inst_id`` and ``depth > 0``. With more than N of
them, N are drawn without replacement (kept in pixel order, as SPD); with fewer they are repeated cyclically
(``np.pad(..., "wrap")``). ``valid_points`` counts them before padding; an item with ``valid_points == 0`` has
all-zero ``points``, ``nocs`` and ``choose`` — callers should drop items with fewer than 3 (the index already skips
instances the label knows to have fewer than ``min_depth_pixels``, but real data can still surprise).

Determinism: item ``i`` in epoch ``e`` draws from ``np.random.default_rng([seed, e, i])``; the same seed, epoch and
index give the same item in any process. The epoch is set with :meth:`PoseDataset.set_epoch` (or
:meth:`RatioSampler.set_epoch`, which forwards it) before the DataLoader's iterator is created; workers started with
``persistent_workers=True`` keep the epoch they were started with.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import ConcatDataset, Dataset, Sampler

from acr_pose_core.categories import CLASS_IDS, NUM_CATEGORIES, Y_SYMMETRIC
from acr_pose_core.data import nocs_format
from acr_pose_core.data.instance import IMAGENET_MEAN, IMAGENET_STD, instance_inputs, normalise_crop
from acr_pose_core.data.nocs_format import FrameLabel, NocsFormatError
from acr_pose_core.evaluation.results_io import load_pickle
from acr_pose_core.geometry.camera import CameraIntrinsics

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DatasetConfig",
    "InstanceRef",
    "PoseDataset",
    "RatioSampler",
    "jitter_colors",
    "mixed",
    "read_label",
    "y_canonicaliser",
]

"""RGB normalisation of the crop (torchvision's ImageNet statistics, as SPD)."""

_MUG = CLASS_IDS["mug"]
_Y_SYMMETRIC_IDS = frozenset(CLASS_IDS[name] for name in Y_SYMMETRIC)
_DEGENERATE_NORM = 1e-6  # below this |(a, b)| the rotation has no defined angle about y: leave it as it is


@dataclass(frozen=True)
class DatasetConfig:
    """What one item holds and how it is augmented. Defaults are SPD's (and ACR-Pose's)."""

    # sampling
    num_points: int = 1024  # N observed points per item
    model_points: int = 1024  # M points of the instance model (a fixed subset per model id)
    image_size: int = 192  # S: side of the resized RGB crop
    min_depth_pixels: int = 64  # index only instances whose label counts at least this many valid depth pixels
    # augmentation (applied only when augment is true: training)
    augment: bool = False
    shift_range: float = 0.01  # metres: one uniform shift per axis, added to the points and to the translation
    point_jitter: float = 0.001  # metres: std of the per-point Gaussian noise ...
    point_jitter_clip: float = 0.005  # ... clipped to ± this
    color_jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.05)  # brightness, contrast, saturation, hue
    # symmetric rotations mapped to a canonical one about y (see y_canonicaliser)
    canonicalise_symmetric: bool = True  # bottle, bowl, can (SPD's set)
    canonicalise_mugs_without_handle: bool = False  # also mugs whose handle is hidden (SPD does not)

    def __post_init__(self) -> None:
        for name in ("num_points", "model_points", "image_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DatasetConfig.{name} must be positive, got {getattr(self, name)}")
        if self.min_depth_pixels < 0:
            raise ValueError(f"DatasetConfig.min_depth_pixels must be >= 0, got {self.min_depth_pixels}")
        if self.shift_range < 0 or self.point_jitter < 0 or self.point_jitter_clip < 0:
            raise ValueError("DatasetConfig: shift_range, point_jitter and point_jitter_clip must be >= 0")
        if len(self.color_jitter) != 4 or any(v < 0 for v in self.color_jitter) or self.color_jitter[3] > 0.5:
            raise ValueError(
                f"DatasetConfig.color_jitter must be 4 values >= 0 (hue <= 0.5), got {self.color_jitter!r}"
            )


# ---------------------------------------------------------------------------------------------------------------------
# Per-item steps


def jitter_colors(rgb: np.ndarray, rng: np.random.Generator, strengths: Sequence[float]) -> np.ndarray:
    """torchvision's ``ColorJitter(brightness, contrast, saturation, hue)`` on a PIL image, drawing from ``rng``.

    As torchvision: the four adjustments in a random order; factors uniform in ``[max(0, 1 − b), 1 + b]`` (brightness,
    contrast, saturation) and ``[−h, h]`` (hue, a fraction of the colour circle); brightness, contrast and saturation
    by Pillow's ``ImageEnhance``, hue by shifting the 8-bit H channel of Pillow's HSV modulo 256; an adjustment of
    strength 0 is skipped and draws nothing. (torchvision's own transform draws from torch's global generator, which
    this project never uses.)

    Args:
        rgb: (h, w, 3) uint8.
        rng: the item's generator.
        strengths: ``(brightness, contrast, saturation, hue)``.

    Returns:
        (h, w, 3) uint8.
    """
    b, c, s, h = (float(v) for v in strengths)
    order = rng.permutation(4)
    factors = [
        None if b == 0 else rng.uniform(max(0.0, 1 - b), 1 + b),
        None if c == 0 else rng.uniform(max(0.0, 1 - c), 1 + c),
        None if s == 0 else rng.uniform(max(0.0, 1 - s), 1 + s),
        None if h == 0 else rng.uniform(-h, h),
    ]
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    for k in order:
        if factors[k] is None:
            continue
        if k == 0:
            img = ImageEnhance.Brightness(img).enhance(factors[0])
        elif k == 1:
            img = ImageEnhance.Contrast(img).enhance(factors[1])
        elif k == 2:
            img = ImageEnhance.Color(img).enhance(factors[2])
        else:
            hue, sat, val = img.convert("HSV").split()
            shifted = (np.asarray(hue, dtype=np.int64) + int(factors[3] * 255)) % 256  # int(): toward zero, as tv
            img = Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), sat, val)).convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def y_canonicaliser(rotation: np.ndarray) -> np.ndarray:
    """The rotation ``S`` about y that maps a y-symmetric object's ambiguous rotation to the canonical one (SPD's rule).

    With ``a = R[0,0] + R[2,2]``, ``b = R[0,2] − R[2,0]``, ``r = hypot(a, b)``::

        S = [[a/r, 0, −b/r],
             [0,   1,  0  ],
             [b/r, 0,  a/r]]

    and ``R' = R @ S`` satisfies ``R'[0,2] − R'[2,0] = 0`` and ``R'[0,0] + R'[2,2] = r ≥ 0``: ``R'`` is the member of
    ``{R @ Ry(θ)}`` without rotation about the object's own y axis. Points in the canonical frame, as row vectors, go
    with it as ``nocs' = nocs @ S``, so that ``s·R'·nocs'ᵀ + t = s·R·nocsᵀ + t``: the camera points are unchanged.
    Where ``r < 1e-6`` (the y axis turned upside down with a half turn) the angle is undefined and ``S = I``.

    ``R`` is the object's rotation in the *camera* frame, so the member chosen depends on the view, not only on the
    object: a camera yaw or roll turns the canonical target about y while the observed cloud only turns rigidly (on
    tabletop views with ±20° yaw, a median 12° and a 90th percentile of 22°, issue 13). A rotation-invariant point
    encoder sees that as label noise. It is SPD's rule and the training target the community's models learn; the
    evaluation is unaffected (symmetric errors are measured about y). A rule depending only on the object and the
    viewing ray has not been tried.

    Args:
        rotation: (3, 3) rotation ``R``.

    Returns:
        (3, 3) float64 ``S``.
    """
    R = np.asarray(rotation, dtype=np.float64)
    a, b = R[0, 0] + R[2, 2], R[0, 2] - R[2, 0]
    r = math.hypot(a, b)
    if r < _DEGENERATE_NORM:
        return np.eye(3)
    return np.array([[a / r, 0.0, -b / r], [0.0, 1.0, 0.0], [b / r, 0.0, a / r]])


# ---------------------------------------------------------------------------------------------------------------------
# Labels without images


def _png_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` from a PNG's IHDR header, without decoding it."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise NocsFormatError(f"{path}: cannot read colour image ({e})") from e
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise NocsFormatError(f"{path}: colour image is not a PNG file")
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def read_label(prefix: Path) -> FrameLabel | None:
    """A frame's ground truth without decoding its images: ``_label.json``, else SPD's ``_label.pkl``, else ``None``.

    Parsed and checked against the ``_meta.txt`` lines and the colour image's size (read from its PNG header) by the
    same code as :func:`~acr_pose_core.data.nocs_format.read_frame`, so it returns what ``read_frame(prefix).label``
    would.

    Raises:
        NocsFormatError: a malformed label, meta or colour header, or a label that disagrees with them.
    """
    prefix = Path(prefix)
    json_path, pkl_path = nocs_format._file(prefix, "label"), nocs_format._file(prefix, "label_pkl")
    if not json_path.exists() and not pkl_path.exists():
        return None
    image_size = _png_size(nocs_format._file(prefix, "color"))
    if json_path.exists():
        path, label = json_path, nocs_format._read_label_json(json_path)
    else:
        path, label = pkl_path, nocs_format._read_label_pkl(pkl_path, prefix, image_size)
    meta = nocs_format.read_meta(nocs_format._file(prefix, "meta"))
    try:
        nocs_format._check_label(label, meta, image_size)
    except ValueError as e:
        raise NocsFormatError(f"{path}: {e}") from e
    return label


# ---------------------------------------------------------------------------------------------------------------------
# The dataset


@dataclass(frozen=True)
class InstanceRef:
    """One indexed instance: the frame prefix, its instance id in the mask, class id 1..6 and model id."""

    prefix: Path
    inst_id: int
    class_id: int
    model_id: str


def _subsample_model(model_id: str, points: np.ndarray, m: int) -> np.ndarray:
    """``m`` points of a model: all of them in file order when there are exactly ``m``, else the first ``m`` of a
    permutation seeded by the model id (repeated cyclically when the model has fewer)."""
    n = len(points)
    if n == m:
        return points.astype(np.float32)
    order = np.random.default_rng(zlib.crc32(model_id.encode("utf-8"))).permutation(n)
    return points[np.resize(order, m)].astype(np.float32)


def _load_mug_meta(mug_meta: Path | Mapping[str, Any]) -> dict[str, tuple[np.ndarray, float]]:
    source = str(mug_meta) if isinstance(mug_meta, (str, Path)) else "mug_meta"
    if isinstance(mug_meta, (str, Path)):
        try:
            mug_meta = load_pickle(mug_meta)
        except (OSError, ValueError) as e:
            raise NocsFormatError(f"{source}: cannot read SPD's mug meta ({e})") from e
    if not isinstance(mug_meta, Mapping):
        raise NocsFormatError(f"{source}: expected a dict model id → (T0 (3,), s0), got {type(mug_meta).__name__}")
    out = {}
    for model_id, value in mug_meta.items():
        try:
            T0, s0 = value
            T0 = np.asarray(T0, dtype=np.float64).reshape(3)
            s0 = float(s0)
        except (TypeError, ValueError) as e:
            raise NocsFormatError(f"{source}: {model_id}: expected (T0 (3,), s0), got {value!r}") from e
        out[str(model_id)] = (T0, s0)
    return out


class PoseDataset(Dataset):
    """Object instances of the NOCS-layout frames under ``root``, one item each (see the module docstring).

    The index is built from the labels alone (:func:`read_label`, no image is decoded), over
    :func:`~acr_pose_core.data.nocs_format.list_frames`. Skipped, and counted in :attr:`skipped`: frames without a
    label (``"no_label"``), frames the reference rejects as broken renders because an instance box is wider than 600
    or taller than 440 pixels (``"broken_frame"``), instances whose label's ``info["depth_pixels"]`` counts fewer than
    ``min_depth_pixels`` valid depth pixels (``"few_depth_pixels"``; labels without that count, e.g. SPD's, which its
    preprocessing already filtered, keep every instance), and instances of ``exclude_models`` (``"excluded_model"``).
    Each item reads its frame with :func:`~acr_pose_core.data.nocs_format.read_frame` (and the NOCS map with
    :func:`~acr_pose_core.data.nocs_format.read_coord_rgb`); nothing is cached on disk. The last ``frame_cache``
    frames read are kept decoded in memory (per process: each DataLoader worker has its own), so consecutive items
    of one frame decode its PNGs once: that pays when the sampler keeps a frame's items together
    (``RatioSampler(group_by_frame=True)``); in a random order it costs a few MB and saves nothing. An item's
    content does not depend on the cache (tested).

    Args:
        root: folder searched recursively for frames, e.g. ``<out>/train`` (ours), ``CAMERA/train``, ``Real/test``.
        priors: (6, M', 3) category shape priors; class id ``c`` uses row ``c − 1``.
        config: see :class:`DatasetConfig`.
        models: the split's instance point clouds: a path for
            :func:`~acr_pose_core.data.nocs_format.read_models` (ours ``obj_models/<split>.npz``, SPD's
            ``obj_models/{camera_train,camera_val,real_train,real_test}.pkl``) or a mapping model id → (P, 3) points.
            Default: ``root/../obj_models/<root name>.npz``, where :mod:`~acr_pose_core.synth.generate` writes it.
        seed: base of every item's generator.
        composed_depth: SPD's composed CAMERA depth tree, passed to ``read_frame``.
        mug_meta: SPD's ``mug_meta.pkl`` (path or mapping model id → ``(T0, s0)``). When given, mug NOCS
            coordinates become ``s0·(nocs + T0)`` as in SPD, whose mug models and labels live in that frame; every
            indexed mug must be listed.
        exclude_models: model ids to leave out (e.g. ``nocs_format.SPD_EXCLUDED_MODELS``).
        frame_cache: decoded frames kept per process (0: none; each 640×480 frame is about 2.8 MB).

    Raises:
        NocsFormatError: ``root`` is not a folder or holds no frame or no usable instance, the models file is
            missing or lacks an indexed model id, a label is malformed, a mug lacks its ``mug_meta`` entry; at item
            time, whatever ``read_frame`` finds wrong with the frame's files (the message names the file).
        ValueError: ``priors`` is not (6, M', 3) finite numbers.
    """

    def __init__(
        self,
        root: Path,
        priors: np.ndarray | torch.Tensor,
        config: DatasetConfig | None = None,
        *,
        models: Path | Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
        composed_depth: Path | None = None,
        mug_meta: Path | Mapping[str, Any] | None = None,
        exclude_models: Sequence[str] = (),
        frame_cache: int = 4,
    ) -> None:
        self.root = Path(root)
        if int(frame_cache) < 0:
            raise ValueError(f"frame_cache must be >= 0, got {frame_cache}")
        self.frame_cache = int(frame_cache)
        self._frames: OrderedDict[Path, tuple[nocs_format.Frame, np.ndarray]] = OrderedDict()  # newest last
        self.config = config if config is not None else DatasetConfig()
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self.epoch = 0
        self.composed_depth = None if composed_depth is None else Path(composed_depth)

        priors = np.asarray(priors.detach().cpu() if isinstance(priors, torch.Tensor) else priors)
        if (
            priors.ndim != 3
            or priors.shape[0] != NUM_CATEGORIES
            or priors.shape[2] != 3
            or priors.dtype.kind not in "iuf"
        ):
            raise ValueError(f"priors must be ({NUM_CATEGORIES}, M, 3) numbers, got {priors.shape} {priors.dtype}")
        if not np.all(np.isfinite(priors)):
            raise ValueError("priors hold non-finite values")
        self.priors = priors.astype(np.float32)

        frames = nocs_format.list_frames(self.root)
        if not frames:
            raise NocsFormatError(f"{self.root}: no frames (no *_color.png below it)")
        self.skipped = {"no_label": 0, "broken_frame": 0, "few_depth_pixels": 0, "excluded_model": 0}
        self.instances: list[InstanceRef] = self._index(frames, frozenset(exclude_models))
        if not self.instances:
            raise NocsFormatError(f"{self.root}: {len(frames)} frames but no usable instance (skipped: {self.skipped})")
        self.models = self._load_models(models)

        self.mug_meta = None if mug_meta is None else _load_mug_meta(mug_meta)
        if self.mug_meta is not None:
            for ref in self.instances:
                if ref.class_id == _MUG and ref.model_id not in self.mug_meta:
                    raise NocsFormatError(f"mug_meta: no entry for mug model {ref.model_id!r} ({ref.prefix})")

    def _index(self, frames: list[Path], excluded: frozenset[str]) -> list[InstanceRef]:
        """The usable instances of ``frames``, from their labels; counts what it skips in :attr:`skipped`."""
        instances = []
        for prefix in frames:
            label = read_label(prefix)
            if label is None:
                self.skipped["no_label"] += 1
                continue
            if any(
                i.bbox[2] - i.bbox[0] > nocs_format.MAX_BOX_HEIGHT or i.bbox[3] - i.bbox[1] > nocs_format.MAX_BOX_WIDTH
                for i in label.instances
            ):
                self.skipped["broken_frame"] += 1
                continue
            depth_pixels = label.info.get("depth_pixels")
            for inst in label.instances:
                if inst.model_id in excluded:
                    self.skipped["excluded_model"] += 1
                    continue
                count = depth_pixels.get(str(inst.inst_id)) if isinstance(depth_pixels, dict) else None
                if count is not None and int(count) < self.config.min_depth_pixels:
                    self.skipped["few_depth_pixels"] += 1
                    continue
                instances.append(InstanceRef(prefix, inst.inst_id, inst.class_id, inst.model_id))
        return instances

    def _load_models(self, models: Path | Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """model id → (M, 3) float32 points of every indexed model."""
        if models is None:
            models = self.root.parent / "obj_models" / f"{self.root.name}.npz"
            if not models.is_file():
                raise NocsFormatError(
                    f"{models}: missing (model point clouds); pass models= for another file, e.g. SPD's "
                    "obj_models/*.pkl"
                )
        source = str(models) if isinstance(models, (str, Path)) else "models"
        all_models = nocs_format.read_models(Path(models)) if isinstance(models, (str, Path)) else dict(models)
        out: dict[str, np.ndarray] = {}
        for ref in self.instances:
            if ref.model_id in out:
                continue
            if ref.model_id not in all_models:
                raise NocsFormatError(f"{source}: no model {ref.model_id!r} (instance {ref.inst_id} of {ref.prefix})")
            points = nocs_format._check_points(ref.model_id, all_models[ref.model_id], source)
            out[ref.model_id] = _subsample_model(ref.model_id, points, self.config.model_points)
        return out

    def __len__(self) -> int:
        return len(self.instances)

    def frame_groups(self) -> list[np.ndarray]:
        """The item indices of each frame, frame by frame (an item's frame is ``instances[i].prefix``; the index
        lists a frame's instances together)."""
        prefixes = [ref.prefix for ref in self.instances]
        starts = [i for i in range(len(prefixes)) if i == 0 or prefixes[i] != prefixes[i - 1]]
        return [np.arange(a, b) for a, b in zip(starts, [*starts[1:], len(prefixes)], strict=True)]

    def _read(self, prefix: Path) -> tuple[nocs_format.Frame, np.ndarray]:
        """The frame without its decoded NOCS map, and the map as stored (H, W, 3) uint8; from the cache if there."""
        if prefix in self._frames:
            self._frames.move_to_end(prefix)
            return self._frames[prefix]
        frame = nocs_format.read_frame(prefix, composed_depth=self.composed_depth, with_coord=False)
        entry = (frame, nocs_format.read_coord_rgb(prefix, frame.image_size))
        if self.frame_cache:
            self._frames[prefix] = entry
            while len(self._frames) > self.frame_cache:
                self._frames.popitem(last=False)
        return entry

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of the coming epoch (augmentation and point sampling)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def _canonicalise(self, class_id: int, handle_visible: bool) -> bool:
        if class_id in _Y_SYMMETRIC_IDS:
            return self.config.canonicalise_symmetric
        return class_id == _MUG and not handle_visible and self.config.canonicalise_mugs_without_handle

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self.instances):
            raise IndexError(f"index {index} outside 0..{len(self.instances) - 1}")
        cfg = self.config
        N, S = cfg.num_points, cfg.image_size
        ref = self.instances[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])

        frame, coord_rgb = self._read(ref.prefix)  # shared with the frame's other items: never modified here
        labels = [] if frame.label is None else [i for i in frame.label.instances if i.inst_id == ref.inst_id]
        inst = labels[0] if labels else None
        if inst is None or inst.class_id != ref.class_id or inst.model_id != ref.model_id:
            raise NocsFormatError(f"{ref.prefix}: the label changed since indexing: instance {ref.inst_id} differs")
        height, width = frame.image_size
        camera = CameraIntrinsics.from_matrix(frame.label.intrinsics, width, height)
        obj = instance_inputs(frame.color, frame.depth, frame.mask == ref.inst_id, inst.bbox, camera, N, S, rng)
        points, rgb, choose, num_valid = obj.points, obj.rgb, obj.choose, obj.num_valid  # (N, 3) m, (S, S, 3), (N,)
        nocs = nocs_format.decode_coord(coord_rgb[obj.rows, obj.cols][None])[0].astype(np.float64)  # (N, 3)
        if num_valid == 0:
            nocs[:] = 0.0

        model = self.models[ref.model_id].astype(np.float64)  # (M, 3)
        scale = inst.scale
        rotation = inst.sRT[:3, :3] / scale
        translation = inst.sRT[:3, 3].copy()

        if cfg.augment:
            rgb = jitter_colors(rgb, rng, cfg.color_jitter)
            shift = rng.uniform(-cfg.shift_range, cfg.shift_range, 3)
            translation = translation + shift
            jitter = np.clip(
                cfg.point_jitter * rng.standard_normal((N, 3)), -cfg.point_jitter_clip, cfg.point_jitter_clip
            )
            if num_valid > 0:
                points = points + shift + jitter

        if ref.class_id == _MUG and self.mug_meta is not None:
            T0, s0 = self.mug_meta[ref.model_id]
            nocs = s0 * (nocs + T0)
        if self._canonicalise(ref.class_id, inst.handle_visible):
            S_y = y_canonicaliser(rotation)
            rotation, nocs, model = rotation @ S_y, nocs @ S_y, model @ S_y

        sRT = np.eye(4)
        sRT[:3, :3] = scale * rotation
        sRT[:3, 3] = translation
        return {
            "rgb": torch.from_numpy(normalise_crop(rgb)),  # (3, S, S)
            "points": torch.from_numpy(points.astype(np.float32)),
            "choose": torch.from_numpy(choose),
            "nocs": torch.from_numpy(nocs.astype(np.float32)),
            "model": torch.from_numpy(model.astype(np.float32)),
            "prior": torch.from_numpy(self.priors[ref.class_id - 1].copy()),
            "sRT": torch.from_numpy(sRT.astype(np.float32)),
            "scale": torch.tensor(scale, dtype=torch.float32),
            "size": torch.from_numpy(inst.size.astype(np.float32)),
            "class_id": torch.tensor(ref.class_id, dtype=torch.int64),
            "category": torch.tensor(ref.class_id - 1, dtype=torch.int64),
            "handle_visible": torch.tensor(inst.handle_visible, dtype=torch.bool),
            "valid_points": torch.tensor(num_valid, dtype=torch.int64),
            "window": torch.tensor(obj.window, dtype=torch.int64),
            "frame": str(ref.prefix),
            "inst_id": ref.inst_id,
        }


# ---------------------------------------------------------------------------------------------------------------------
# Mixing sources


def _largest_remainder(ratios: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``ratios`` (Hamilton's rule; ties to the earlier)."""
    quotas = ratios / ratios.sum() * total
    counts = np.floor(quotas).astype(np.int64)
    remainder = quotas - counts
    order = np.argsort(-remainder, kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


class RatioSampler(Sampler[int]):
    """Indices into a :class:`~torch.utils.data.ConcatDataset`, its sources mixed in fixed proportions.

    Each epoch draws ``num_samples`` indices (per replica: ``ceil(num_samples / num_replicas)``): source ``k`` gets
    its share ``ratios[k] / sum(ratios)`` of them (rounded by largest remainder, so a 3:1 mix of 1000 is exactly
    750 + 250), taken uniformly within the source as consecutive random permutations of it (every item once before
    any twice), then all shuffled together. Draws come from ``np.random.default_rng([seed, epoch])``; the same seed
    and epoch give the same indices. With ``num_replicas > 1`` (distributed training) replica ``rank`` takes every
    ``num_replicas``-th index of the shared draw, so together they see exactly that draw.

    :meth:`set_epoch` also calls ``set_epoch`` on every source that has it, so the datasets' augmentation follows.

    ``group_by_frame``: the same counts per source, but drawn and shuffled frame by frame (a source's
    ``frame_groups()``; each item its own group in a source without one): random permutations of the source's
    frames, each contributing all its items in a row (the last cut to fill the count exactly), then the frames of all
    sources shuffled together, and with several replicas each takes one contiguous share instead of every R-th index.
    A batch then holds about ``batch / items per frame`` frames, and the dataset's frame cache decodes each once;
    the price is batches of correlated items (same scene, light and camera).
    """

    def __init__(
        self,
        dataset: ConcatDataset,
        ratios: Sequence[float],
        num_samples: int,
        seed: int = 0,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        group_by_frame: bool = False,
    ) -> None:
        if not isinstance(dataset, ConcatDataset):
            raise TypeError(f"RatioSampler needs a ConcatDataset, got {type(dataset).__name__}")
        ratios_arr = np.asarray(ratios, dtype=np.float64)
        if ratios_arr.shape != (len(dataset.datasets),):
            raise ValueError(f"{len(dataset.datasets)} datasets but {ratios_arr.size} ratios")
        if not np.all(np.isfinite(ratios_arr)) or np.any(ratios_arr < 0) or ratios_arr.sum() <= 0:
            raise ValueError(f"ratios must be finite, >= 0 and not all 0, got {list(ratios)}")
        sizes = [len(d) for d in dataset.datasets]
        for k, (ratio, size) in enumerate(zip(ratios_arr, sizes, strict=True)):
            if ratio > 0 and size == 0:
                raise ValueError(f"dataset {k} is empty but has ratio {ratio}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        if not (num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}")
        self.dataset = dataset
        self.ratios = ratios_arr
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.per_replica = -(-self.num_samples // self.num_replicas)
        self.epoch = 0
        self._sizes = sizes
        self._offsets = [0, *dataset.cumulative_sizes[:-1]]
        self.group_by_frame = bool(group_by_frame)
        self._groups = None
        if self.group_by_frame:
            self._groups = [
                d.frame_groups() if hasattr(d, "frame_groups") else [np.array([i]) for i in range(len(d))]
                for d in dataset.datasets
            ]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw, and forward it to the sources' ``set_epoch``."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)
        for d in self.dataset.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(self.epoch)

    @property
    def counts(self) -> list[int]:
        """Indices drawn per source in one epoch, over all replicas."""
        return _largest_remainder(self.ratios, self.per_replica * self.num_replicas).tolist()

    def epoch_indices(self) -> np.ndarray:
        """All replicas' indices of the current epoch, (per_replica · num_replicas,) int64."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self._groups is not None:
            return self._grouped_indices(rng)
        parts = []
        for count, size, offset in zip(self.counts, self._sizes, self._offsets, strict=True):
            if count == 0:
                continue
            perms = [rng.permutation(size) for _ in range(-(-count // size))]
            parts.append(np.concatenate(perms)[:count] + offset)
        indices = np.concatenate(parts)
        return indices[rng.permutation(len(indices))]

    def _grouped_indices(self, rng: np.random.Generator) -> np.ndarray:
        """``epoch_indices`` with ``group_by_frame``: whole frames, shuffled as units."""
        groups: list[np.ndarray] = []
        for count, source_groups, offset in zip(self.counts, self._groups, self._offsets, strict=True):
            taken = 0
            while taken < count:
                for g in rng.permutation(len(source_groups)):
                    items = source_groups[g][: count - taken] + offset
                    groups.append(items)
                    taken += len(items)
                    if taken == count:
                        break
        return np.concatenate([groups[g] for g in rng.permutation(len(groups))])

    def __iter__(self):
        indices = self.epoch_indices()
        if self.group_by_frame:  # contiguous shares keep the frames together
            return iter(indices[self.rank * self.per_replica : (self.rank + 1) * self.per_replica].tolist())
        return iter(indices[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_replica


def mixed(
    datasets: Sequence[Dataset],
    ratios: Sequence[float],
    num_samples: int,
    seed: int = 0,
    group_by_frame: bool = False,
) -> tuple[ConcatDataset, RatioSampler]:
    """Concatenate ``datasets`` and sample them in the given proportions, e.g. CAMERA and REAL at 3:1 as ACR-Pose
    fine-tunes: ``data, sampler = mixed([camera, real], (3, 1), 24 * 1500)``; then
    ``DataLoader(data, batch_size=24, sampler=sampler)`` and ``sampler.set_epoch(e)`` before each epoch."""
    data = ConcatDataset(list(datasets))
    return data, RatioSampler(data, ratios, num_samples, seed, group_by_frame=group_by_frame)
