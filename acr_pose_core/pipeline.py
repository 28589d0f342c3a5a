"""Frame in, poses out: the :class:`PoseEstimator`.

For one RGB-D frame:

1. masks, classes and scores from a mask source (:mod:`acr_pose_core.detection`), or given;
2. each object → the Reconstructor's inputs (:func:`acr_pose_core.data.instance.instance_inputs`, the same function
   the training Dataset calls, and :func:`~acr_pose_core.data.instance.normalise_crop`);
3. all objects of the frame through the Reconstructor in one batch → NOCS points ``(B, N, 3)`` and the deformed
   priors;
4. one batched RANSAC-Umeyama call (:func:`acr_pose_core.geometry.poses_from_nocs`, the same function the trainer's
   validation calls) → ``sRT``; the size is the deformed prior's box, ``2 · max_m |P_c + M_d|`` (SPD's rule);
   the scale times the model folder's factor for the category, ``s' = f_c · s``, where it has a calibration.
   Steps 3–4 wait for the device once, when the results are copied back; with ``object_buckets`` they run at a few
   fixed object counts, and with ``cuda_graphs`` they are replayed from a CUDA graph per count.

Conventions: camera frame OpenCV (x right, y down, z forward), metres; ``p_camera = s·R·p_nocs + t`` with
``sRT[:3, :3] = s·R``; metric size = ``s · size_nocs`` along the object's own x, y, z; box corners in the
reference's order (:func:`acr_pose_core.geometry.boxes.box_corners`).

Input rules (:func:`check_frame`): colour (H, W, 3) uint8, RGB unless ``color_order="bgr"``; depth (H, W) uint16
(millimetres unless ``depth_scale`` says otherwise) or float32/float64 (metres unless ``depth_scale``), where 0,
negative values, NaN and infinities mean "no measurement"; intrinsics a
:class:`~acr_pose_core.geometry.camera.CameraIntrinsics` or a 3×3 matrix. Anything else raises
:class:`~acr_pose_core.detection.InputError` naming the problem. An object with fewer than ``min_points`` object
pixels with depth is dropped with its reason; one whose alignment fails likewise: no object gets a made-up pose.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from acr_pose_core.categories import Y_SYMMETRIC, category_name
from acr_pose_core.data import nocs_format
from acr_pose_core.data.frame_files import MAX_IMAGE_SIDE
from acr_pose_core.data.instance import InstanceInputs, instance_inputs, normalise_crop
from acr_pose_core.detection import Detections, InputError, MaskSource, as_mask_source
from acr_pose_core.detection.segmenter import Segmenter
from acr_pose_core.device import choose_device
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.geometry import ObjectPoses, poses_from_nocs, ransac_uniforms
from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.geometry.covariance import pose_covariance
from acr_pose_core.geometry.rotations import decompose_sRT
from acr_pose_core.model_folder import LoadedModel, load_model_folder
from acr_pose_core.models.reconstructor import ReconstructorOutput

__all__ = [
    "OBJECT_BUCKETS",
    "BatchResult",
    "CheckedFrame",
    "DroppedObject",
    "FrameEstimate",
    "InputError",
    "ModelBatch",
    "ObjectPose",
    "PoseEstimator",
    "check_frame",
    "choose_device",
    "frame_result",
]

MIN_POINTS = 32
"""Fewest object pixels with depth an object needs (SPD's evaluation skips objects with fewer than 32)."""

EFFECTIVE_POINTS = 2.0
"""How many independent points a fit's residuals are worth for :attr:`ObjectPose.covariance` (the reconstruction's
errors are correlated over the object): chosen so that the shipped default's translation errors on its val split
are normalised by the covariance (``benchmarks/covariance.py``)."""

PRECISIONS = ("float32", "bfloat16")
"""The Reconstructor's precisions the estimator offers (``PoseEstimator(precision=...)``)."""

OBJECT_BUCKETS = (1, 2, 4, 8, 16, 32)
"""The object counts a frame's batch is padded to with ``PoseEstimator(cuda_graphs=True)`` (one graph each; a frame
with more objects runs in batches of the largest)."""


@dataclass(frozen=True)
class CheckedFrame:
    """A frame that passed :func:`check_frame`."""

    rgb: np.ndarray  # (H, W, 3) uint8, RGB order
    depth: np.ndarray  # (H, W) the depth as given (uint16 or float), not copied
    depth_units_per_metre: float  # depth / depth_units_per_metre = metres
    depth_metres: np.ndarray  # (H, W) float32 metres, 0 where there is no measurement
    intrinsics: CameraIntrinsics

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.depth.shape[0]), int(self.depth.shape[1])


def _intrinsics(intrinsics: Any, height: int, width: int) -> CameraIntrinsics:
    if isinstance(intrinsics, CameraIntrinsics):
        camera = intrinsics
        if (camera.height, camera.width) != (height, width):
            raise InputError(
                f"the intrinsics are for {camera.height}x{camera.width} images, the frame is {height}x{width}"
            )
    else:
        try:
            K = np.asarray(intrinsics, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"intrinsics must be CameraIntrinsics or a 3x3 matrix, got {type(intrinsics).__name__}"
            ) from None
        if K.shape != (3, 3):
            raise InputError(f"intrinsics must be a 3x3 camera matrix, got shape {K.shape}")
        if not np.isfinite(K).all():
            raise InputError("the camera matrix has NaN or infinite entries")
        if not np.allclose(K[[1, 2, 2], [0, 0, 1]], 0.0) or K[2, 2] != 1.0 or K[0, 1] != 0.0:
            raise InputError(f"not a pinhole camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]: {K.tolist()}")
        camera = CameraIntrinsics.from_matrix(K, width, height)
    values = np.array([camera.fx, camera.fy, camera.cx, camera.cy], dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError(f"intrinsics must be finite, got fx={camera.fx} fy={camera.fy} cx={camera.cx} cy={camera.cy}")
    if camera.fx <= 0 or camera.fy <= 0:
        raise InputError(f"focal lengths must be positive, got fx={camera.fx} fy={camera.fy} (an uncalibrated camera?)")
    return camera


def check_frame(
    rgb: Any,
    depth: Any,
    intrinsics: Any,
    depth_scale: float | None = None,
    color_order: Literal["rgb", "bgr"] = "rgb",
) -> CheckedFrame:
    """Check a frame against the input rules (module docstring) and bring it to the estimator's conventions.

    Args:
        rgb: (H, W, 3) uint8 colour image.
        depth: (H, W) uint16 or float depth aligned to ``rgb`` (same camera, same size).
        intrinsics: the camera of both images.
        depth_scale: metres per depth unit; None: 0.001 for uint16 (millimetres), 1 for float (metres).
        color_order: ``"rgb"`` or ``"bgr"`` (OpenCV's ``imread`` and ROS ``bgr8`` images).

    Raises:
        InputError: naming the problem.
    """
    if color_order not in ("rgb", "bgr"):
        raise InputError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    if not isinstance(rgb, np.ndarray) or not isinstance(depth, np.ndarray):
        raise InputError(f"rgb and depth must be numpy arrays, got {type(rgb).__name__} and {type(depth).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        hint = " (drop the alpha channel: rgb[..., :3])" if rgb.ndim == 3 and rgb.shape[2] == 4 else ""
        raise InputError(f"rgb must be (H, W, 3), got shape {rgb.shape}{hint}")
    if rgb.dtype != np.uint8:
        raise InputError(f"rgb must be uint8, got {rgb.dtype}")
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise InputError(f"depth must be (H, W), got shape {depth.shape}")
    if depth.shape != rgb.shape[:2]:
        raise InputError(
            f"rgb is {rgb.shape[0]}x{rgb.shape[1]} but depth is {depth.shape[0]}x{depth.shape[1]}; "
            "align the depth to the colour camera first"
        )
    if depth.dtype == np.uint16:
        scale = 0.001 if depth_scale is None else depth_scale
    elif depth.dtype in (np.float32, np.float64):
        scale = 1.0 if depth_scale is None else depth_scale
    else:
        raise InputError(f"depth must be uint16 (e.g. millimetres) or float32 (metres), got {depth.dtype}")
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise InputError(f"depth_scale must be a positive number of metres per depth unit, got {depth_scale!r}")
    height, width = depth.shape
    if height < 2 or width < 2:
        raise InputError(f"the frame is {height}x{width} pixels")
    if max(height, width) > MAX_IMAGE_SIDE:
        raise InputError(f"the frame is {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} on a side")
    camera = _intrinsics(intrinsics, height, width)
    metres = depth.astype(np.float32) * np.float32(scale)  # (H, W) metres
    metres[~np.isfinite(metres) | (metres < 0)] = 0.0
    rgb = np.ascontiguousarray(rgb[..., ::-1]) if color_order == "bgr" else rgb
    return CheckedFrame(rgb, depth, 1.0 / scale, metres, camera)


@dataclass(frozen=True)
class ObjectPose:
    """One object's estimate. Camera frame (OpenCV), metres.

    Attributes:
        detection: the object's index in the frame's detections (masks given or from the mask source).
        class_id: 1..6; ``category`` its name.
        score: the mask source's score in [0, 1].
        sRT: (4, 4) float64, ``p_camera = sRT[:3, :3] @ p_nocs + sRT[:3, 3]``, ``sRT[:3, :3] = scale · rotation``.
        rotation: (3, 3) float64, ``det = +1``.
        translation: (3,) float64 metres, the object's NOCS origin (its box centre).
        scale: NOCS units → metres (the box diagonal of a NOCS-normalised object is 1).
        size_nocs: (3,) float64 NOCS-unit box extents; ``size = scale · size_nocs`` (3,) metres along x, y, z.
        corners: (8, 3) float64 box corners in the camera frame, metres.
        mask: (H, W) bool, the object's pixels.
        box: (4,) int64 ``y1, x1, y2, x2`` image box (ends exclusive).
        nocs: (N, 3) float32 the reconstructed NOCS coordinates of the sampled points ``points``.
        points: (N, 3) float32 the observed points, camera frame, metres.
        num_points: object pixels with depth (before sampling to N).
        inlier_ratio: RANSAC's inlier ratio of the alignment.
        covariance: (6, 6) float64 covariance of ``(translation, rotation)`` in ``PoseWithCovariance``'s order and
            units (:func:`acr_pose_core.geometry.covariance.pose_covariance` of the fit's inliers, worth
            :data:`EFFECTIVE_POINTS` independent points; free about y for the y-symmetric categories); NaN where
            undetermined.
    """

    detection: int
    class_id: int
    category: str
    score: float
    sRT: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    size_nocs: np.ndarray
    size: np.ndarray
    corners: np.ndarray
    mask: np.ndarray = field(repr=False)
    box: np.ndarray = field(repr=False)
    nocs: np.ndarray = field(repr=False)
    points: np.ndarray = field(repr=False)
    num_points: int = 0
    inlier_ratio: float = 0.0
    covariance: np.ndarray = field(default_factory=lambda: np.full((6, 6), np.nan), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no masks or point arrays)."""
        return {
            "detection": self.detection,
            "class_id": self.class_id,
            "category": self.category,
            "score": self.score,
            "sRT": self.sRT.tolist(),
            "translation_m": self.translation.tolist(),
            "rotation": self.rotation.tolist(),
            "scale": self.scale,
            "size_nocs": self.size_nocs.tolist(),
            "size_m": self.size.tolist(),
            "corners_m": self.corners.tolist(),
            "box_yxyx": self.box.tolist(),
            "num_points": self.num_points,
            "inlier_ratio": self.inlier_ratio,
            # (6, 6) row-major list, or None where undetermined (JSON has no NaN)
            "covariance": self.covariance.tolist() if np.isfinite(self.covariance).all() else None,
        }


@dataclass(frozen=True)
class DroppedObject:
    """A detected object (index ``detection`` in the frame's detections) that got no pose, and why (``reason``)."""

    detection: int
    class_id: int
    category: str
    score: float
    mask: np.ndarray = field(repr=False)
    box: np.ndarray = field(repr=False)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "detection": self.detection,
            "class_id": self.class_id,
            "category": self.category,
            "score": self.score,
            "box_yxyx": self.box.tolist(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FrameEstimate:
    """The estimate of one frame: ``objects`` with poses (in detection order) and ``dropped`` ones.

    ``timings_ms``: host wall-clock milliseconds of :meth:`PoseEstimator.estimate`'s stages, ``checks``,
    ``segmenter`` (only when it ran), ``inputs`` (crops and points), ``model`` (batching, the Reconstructor and
    RANSAC-Umeyama: one device step, its results copied to the host, so it includes waiting for the device) and
    ``poses`` (poses, boxes and covariances on the host). ``benchmarks/estimator.py`` splits ``model`` further,
    synchronising the device between its parts.
    """

    objects: list[ObjectPose]
    dropped: list[DroppedObject]
    image_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size),
            "objects": [o.to_dict() for o in self.objects],
            "dropped": [d.to_dict() for d in self.dropped],
        }


class ModelBatch(NamedTuple):
    """A frame's objects as the Reconstructor takes them, on the estimator's device (B objects, N points)."""

    points: torch.Tensor  # (B, N, 3) float32, camera frame, metres
    rgb: torch.Tensor  # (B, 3, S, S) float32, normalised crops
    choose: torch.Tensor  # (B, N) int64, each point's pixel in its crop, row · S + col
    category: torch.Tensor  # (B,) int64, 0..5 (class id − 1)
    num_valid: torch.Tensor  # (B,) int64, distinct points (they come first; the rest repeat them)


@dataclass(frozen=True)
class BatchResult:
    """What the host needs of a batch's device results (B objects, N points), as numpy arrays."""

    sRT: np.ndarray  # (B, 4, 4) float64, p_camera = sRT[:3, :3] @ p_nocs + sRT[:3, 3]
    valid: np.ndarray  # (B,) bool
    inlier_ratio: np.ndarray  # (B,) float64
    inliers: np.ndarray  # (B, N) bool, the points of the final fit
    size_nocs: np.ndarray  # (B, 3) float64 NOCS units
    nocs: np.ndarray  # (B, N, 3) float32

    @staticmethod
    def of(out: ReconstructorOutput, fit: ObjectPoses, count: int) -> BatchResult:
        """The first ``count`` objects (the rest is padding), copied to the host: the batch's one wait."""
        return BatchResult(
            sRT=fit.sRT[:count].cpu().numpy(),
            valid=fit.valid[:count].cpu().numpy(),
            inlier_ratio=fit.inlier_ratio[:count].double().cpu().numpy(),
            inliers=fit.inliers[:count].cpu().numpy(),
            size_nocs=out.size[:count].double().cpu().numpy(),
            nocs=out.nocs[:count].float().cpu().numpy(),
        )

    @staticmethod
    def cat(parts: list[BatchResult]) -> BatchResult:
        if len(parts) == 1:
            return parts[0]
        return BatchResult(*(np.concatenate(arrays) for arrays in zip(*(vars(p).values() for p in parts), strict=True)))


class PoseEstimator:
    """Category-level 6D pose and size of the objects in RGB-D frames.

    Args:
        model: a model folder (:mod:`acr_pose_core.model_folder`), an already loaded
            :class:`~acr_pose_core.model_folder.LoadedModel`, or None for the shipped default.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``, ...; chosen once, here.
        mask_source: where masks come from when :meth:`estimate` is given none: a mask source or any callable
            ``fn(rgb, depth_metres, intrinsics)`` (see :mod:`acr_pose_core.detection`); None: the model folder's
            segmenter where it has one, else masks must be given.
        min_points: objects with fewer object pixels with depth are dropped (never posed).
        seed: seeds the point sampling and RANSAC of every frame, so the same frame gives the same answer.
        sync_free: run the alignment with fixed shapes and quaternion fits (:func:`~acr_pose_core.geometry.
            ransac_umeyama` with ``chunk_size=None, solver="quaternion"``), so that :meth:`device_step` never waits
            for the device; the same poses to about 1e-10. None: on for every device but the CPU, where the early
            stop between chunks saves work.
        precision: ``"float32"``, or ``"bfloat16"`` to run the Reconstructor's layers under bf16 autocast (the
            geometry, the graphs and the outputs stay float32, :mod:`acr_pose_core.models.precision`); what it
            costs in accuracy is measured by ``benchmarks/precision.py``.
        object_buckets: increasing object counts to pad each frame's batch to (the smallest that holds it; a frame
            with more objects than the largest runs in batches of the largest), so that the device work has a few
            fixed shapes. The padding repeats the first object with no usable points, and every object keeps its
            own RANSAC numbers (row ``b`` of :func:`~acr_pose_core.geometry.ransac.ransac_uniforms`), so a real
            object's pose is what it is unpadded (tested). None: no padding, or :data:`OBJECT_BUCKETS` with
            ``cuda_graphs``.
        cuda_graphs: capture :meth:`device_step` as a CUDA graph for each object count at its first frame and
            replay it after (CUDA only; needs the sync-free alignment): the step's ~1,300 operators (349 for a
            paper-size forward of 6 objects, 986 for their alignment; ``benchmarks/model.py``) are launched as one
            graph. Each captured count keeps its own memory; the first frame of each count is slow (warm-up and
            capture).
        calibrate_size: apply the model folder's per-category scale factors ``f_c`` (``size_calibration``,
            :func:`~acr_pose_core.model_folder.write_size_calibration`): ``sRT[:3, :3] = f_c · s · R``,
            ``scale = f_c · s``, ``size = f_c · s · size_nocs``; the rotation and translation are unchanged.
            False: the fitted scale as it is (what a calibration is fitted to).

    Example::

        estimator = PoseEstimator(mask_source=my_segmenter)
        result = estimator.estimate(rgb, depth_mm, K)
        for obj in result.objects:
            print(obj.category, obj.translation, obj.size)
    """

    def __init__(
        self,
        model: str | os.PathLike | LoadedModel | None = None,
        device: str | torch.device = "auto",
        mask_source: MaskSource | Callable[..., Any] | None = None,
        min_points: int = MIN_POINTS,
        seed: int = 0,
        sync_free: bool | None = None,
        precision: Literal["float32", "bfloat16"] = "float32",
        object_buckets: tuple[int, ...] | None = None,
        cuda_graphs: bool = False,
        calibrate_size: bool = True,
    ) -> None:
        if min_points < 3:
            raise ValueError(f"min_points must be at least 3 (a similarity needs three points), got {min_points}")
        self.device = choose_device(device)
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs needs a CUDA device; this estimator runs on {self.device}")
        if cuda_graphs and sync_free is False:
            raise ValueError("cuda_graphs needs the sync-free alignment (sync_free=True, or None for the default)")
        if object_buckets is None and cuda_graphs:
            object_buckets = OBJECT_BUCKETS
        if object_buckets is not None:
            buckets = tuple(object_buckets)
            if (
                not buckets
                or any(not isinstance(b, int) or b < 1 for b in buckets)
                or list(buckets) != sorted(set(buckets))
            ):
                raise ValueError(f"object_buckets must be increasing positive integers, got {object_buckets!r}")
            object_buckets = buckets
        self.object_buckets: tuple[int, ...] | None = object_buckets
        self.cuda_graphs = bool(cuda_graphs)
        self._static_steps: dict[int, _StaticStep] = {}  # object count -> its buffers (and graph)
        self._uniforms = torch.empty(0, 0, dtype=torch.float64)  # RANSAC's numbers, row b for object b
        loaded = model if isinstance(model, LoadedModel) else load_model_folder(model, device="cpu")
        self.model = loaded
        self.reconstructor = loaded.reconstructor.to(self.device).eval()
        self.config = loaded.reconstructor.config
        self._priors = torch.from_numpy(loaded.priors.points).to(self.device, torch.float32)  # (6, M, 3)
        self.mask_source = None if mask_source is None else as_mask_source(mask_source)
        if mask_source is None and loaded.segmenter is not None:
            self.mask_source = Segmenter(loaded.segmenter.to(self.device), loaded.segmenter_config, self.device)
        # s' = f_c · s for category c (the model folder's size_calibration; 1 without one or with calibrate_size off)
        factors = loaded.size_factors if calibrate_size else None
        self.size_factors = np.ones(6) if factors is None else np.asarray(factors, np.float64)  # (6,)
        self.min_points = int(min_points)
        self.seed = int(seed)
        self.sync_free = self.device.type != "cpu" if sync_free is None else bool(sync_free)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision

    def inputs(self, frame: CheckedFrame, detections: Detections) -> list[InstanceInputs]:
        """Each detected object's model inputs (the Dataset's function, with the frame's depth units)."""
        rng = np.random.default_rng(self.seed)
        return [
            instance_inputs(
                frame.rgb,
                frame.depth,
                detections.masks[k],
                detections.boxes[k],
                frame.intrinsics,
                self.config.num_points,
                self.config.image_size,
                rng,
                depth_units_per_metre=frame.depth_units_per_metre,
            )
            for k in range(len(detections))
        ]

    @torch.no_grad()
    def estimate(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        intrinsics: CameraIntrinsics | np.ndarray,
        masks: Detections | Mapping[str, Any] | None = None,
        depth_scale: float | None = None,
        color_order: Literal["rgb", "bgr"] = "rgb",
    ) -> FrameEstimate:
        """Poses and sizes of the objects in one frame (see the module docstring for the rules).

        Args:
            rgb, depth, intrinsics, depth_scale, color_order: the frame, as :func:`check_frame` takes it.
            masks: the objects, as :class:`Detections` or a plain mapping (a user's own segmenter output)
                ``{"masks": (K, H, W) bool or 0/1, "class_ids": (K,) ids 1..6 or category names, "scores": (K,)
                optional, "boxes": (K, 4) y1, x1, y2, x2 optional}`` checked by :meth:`Detections.from_mapping`;
                None: ask the estimator's mask source.

        Raises:
            InputError: a bad frame, camera or detections; or no masks and no mask source.
        """
        clock = _StageClock()
        frame = check_frame(rgb, depth, intrinsics, depth_scale, color_order)
        clock.lap("checks")
        if masks is None:
            if self.mask_source is None:
                raise InputError("no masks given and the estimator has no mask source")
            masks = self.mask_source(frame.rgb, frame.depth_metres, frame.intrinsics)
            clock.lap("segmenter")
        if isinstance(masks, Mapping):
            masks = Detections.from_mapping(masks)
        if not isinstance(masks, Detections):
            raise InputError(
                "masks must be Detections (see acr_pose_core.detection) or a mapping with 'masks', 'class_ids' "
                f"and optional 'scores' and 'boxes', got {type(masks).__name__}"
            )
        if len(masks) and masks.image_size != frame.image_size:
            raise InputError(
                f"the masks are {masks.image_size[0]}x{masks.image_size[1]}, the frame "
                f"{frame.image_size[0]}x{frame.image_size[1]}"
            )
        objects = self.inputs(frame, masks)
        clock.lap("inputs")
        dropped: dict[int, str] = {}
        for k, obj in enumerate(objects):
            if obj.num_valid < self.min_points:
                pixels = int(masks.masks[k].sum())
                dropped[k] = (
                    f"{obj.num_valid} of its {pixels} mask pixels have depth; at least {self.min_points} needed"
                    if pixels
                    else "empty mask"
                )
        keep = [k for k in range(len(objects)) if k not in dropped]
        posed: dict[int, ObjectPose] = {}
        if keep:
            posed = self._reconstruct(masks, [objects[k] for k in keep], keep, dropped, clock)
        return FrameEstimate(
            objects=[posed[k] for k in sorted(posed)],
            dropped=[
                DroppedObject(
                    k,
                    int(masks.class_ids[k]),
                    category_name(int(masks.class_ids[k])),
                    float(masks.scores[k]),
                    masks.masks[k],
                    masks.boxes[k],
                    reason,
                )
                for k, reason in sorted(dropped.items())
            ],
            image_size=frame.image_size,
            timings_ms=clock.laps,
        )

    def batch(self, objects: list[InstanceInputs], class_ids: np.ndarray) -> ModelBatch:
        """The objects' inputs as one batch on the estimator's device (``class_ids (B,)`` 1..6)."""
        dev, N = self.device, self.config.num_points
        points = torch.from_numpy(np.stack([o.points for o in objects]).astype(np.float32)).to(dev)  # (B, N, 3) m
        rgb = torch.from_numpy(np.stack([normalise_crop(o.rgb) for o in objects])).to(dev)  # (B, 3, S, S)
        choose = torch.from_numpy(np.stack([o.choose for o in objects])).to(dev)  # (B, N)
        category = torch.from_numpy(np.asarray(class_ids) - 1).to(dev)  # (B,) 0..5
        num_valid = torch.tensor([min(o.num_valid, N) for o in objects], device=dev)
        return ModelBatch(points, rgb, choose, category, num_valid)

    def device_step(
        self,
        points: torch.Tensor,
        rgb: torch.Tensor,
        choose: torch.Tensor,
        category: torch.Tensor,
        num_valid: torch.Tensor,
        uniforms: torch.Tensor | None = None,
    ) -> tuple[ReconstructorOutput, ObjectPoses]:
        """:meth:`reconstruct` then :meth:`align`, on tensors already on the estimator's device. With ``sync_free``
        and ``uniforms`` on the device nothing here waits for the device or copies from the host (tested on the CPU
        with :func:`acr_pose_core.host_sync.forbid_host_sync`).
        """
        out = self.reconstruct(points, rgb, choose, category)
        return out, self.align(out, points, num_valid, uniforms)

    def reconstruct(
        self, points: torch.Tensor, rgb: torch.Tensor, choose: torch.Tensor, category: torch.Tensor
    ) -> ReconstructorOutput:
        """The Reconstructor on one batch (shapes as :meth:`Reconstructor.forward`), in the estimator's precision.
        The inputs are valid by construction (:meth:`inputs`, checked detections), so the forward's host-side index
        checks are skipped."""
        prior = self._priors[category]  # (B, M, 3)
        bf16 = self.precision == "bfloat16"  # no cast cache: a CUDA graph capture must not keep casts made outside
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            return self.reconstructor(points, rgb, choose, category, prior, check_inputs=False)

    def align(
        self,
        out: ReconstructorOutput,
        points: torch.Tensor,
        num_valid: torch.Tensor,
        uniforms: torch.Tensor | None = None,
    ) -> ObjectPoses:
        """RANSAC-Umeyama of the reconstruction on the observed ``points (B, N, 3)`` (metres), the first
        ``num_valid[b]`` points of object ``b`` used: with ``sync_free`` in one chunk with quaternion fits (no host
        synchronisation), else in chunks with SVD fits (the early stop reads the device between chunks).
        ``uniforms``: RANSAC's numbers (:meth:`ransac_numbers`); None: drawn from the estimator's seed."""
        chunk_size, solver = (None, "quaternion") if self.sync_free else (16, "svd")
        return poses_from_nocs(
            out.nocs, points, num_valid, self.seed, chunk_size=chunk_size, solver=solver, uniforms=uniforms
        )

    def ransac_numbers(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the estimator's RANSAC numbers on its device: object ``b`` of a frame always uses
        row ``b`` (:func:`~acr_pose_core.geometry.ransac.ransac_uniforms` of the seed, which is what the seed alone
        gives). Kept on the device and grown on demand, so a frame copies none from the host."""
        if stop > len(self._uniforms):
            rows = max(stop, 2 * len(self._uniforms), OBJECT_BUCKETS[-1])
            self._uniforms = ransac_uniforms(rows, self.seed, device=self.device)
        return self._uniforms[start:stop]

    @torch.no_grad()
    def run_batch(self, batch: ModelBatch) -> BatchResult:
        """:meth:`device_step` on a frame's batch (:meth:`batch`) and its results on the host: as it is, or padded
        to :attr:`object_buckets` (and replayed from CUDA graphs with ``cuda_graphs``)."""
        points, rgb, choose, category, num_valid = batch
        B = len(points)
        if B == 0:
            raise ValueError("run_batch needs at least one object (a frame without objects has nothing to run)")
        parts: list[BatchResult] = []
        step = B if self.object_buckets is None else self.object_buckets[-1]
        for start in range(0, B, step):
            stop = min(start + step, B)
            inputs = (points[start:stop], rgb[start:stop], choose[start:stop], category[start:stop])
            n_valid = num_valid[start:stop]
            if self.object_buckets is None:
                out, fit = self.device_step(*inputs, n_valid, self.ransac_numbers(start, stop))
                parts.append(BatchResult.of(out, fit, stop - start))
                continue
            size = next(b for b in self.object_buckets if b >= stop - start)
            padded = [_pad(x, size) for x in inputs] + [_pad(n_valid, size, fill=0)]
            runner = self._static_steps.get(size)
            if runner is None:
                runner = self._static_steps[size] = _StaticStep(self.device_step, self.cuda_graphs)
            out, fit = runner(*padded, self.ransac_numbers(start, start + size))
            parts.append(BatchResult.of(out, fit, stop - start))  # read before the next replay overwrites them
        return BatchResult.cat(parts)

    def _reconstruct(
        self,
        masks: Detections,
        objects: list[InstanceInputs],
        index: list[int],
        dropped: dict[int, str],
        clock: _StageClock | None = None,
    ) -> dict[int, ObjectPose]:
        """One Reconstructor batch and one RANSAC-Umeyama call for ``objects`` (detections ``index``)."""
        clock = clock or _StageClock()
        class_ids = masks.class_ids[index]  # (B,)
        found = self.run_batch(self.batch(objects, class_ids))
        clock.lap("model")
        sRT, size_nocs, valid, ratio, nocs = found.sRT, found.size_nocs, found.valid, found.inlier_ratio, found.nocs
        # host-side, float64; from the uncalibrated fit (the size factor changes s only, not the pose's residuals)
        points = [objects[b].points for b in range(len(index))]
        result: dict[int, ObjectPose] = {}
        for b, k in enumerate(index):
            if not valid[b]:
                dropped[k] = f"no consistent alignment of its reconstruction (RANSAC inlier ratio {ratio[b]:.2f})"
                continue
            class_id = int(class_ids[b])
            fitted = sRT[b].copy()
            fitted[:3, :3] *= self.size_factors[class_id - 1]  # the calibrated scale, s' = f_c · s
            scale, rotation, translation = decompose_sRT(fitted)
            result[k] = ObjectPose(
                detection=k,
                class_id=class_id,
                category=category_name(class_id),
                score=float(masks.scores[k]),
                sRT=fitted,
                rotation=rotation,
                translation=translation,
                scale=float(scale),
                size_nocs=size_nocs[b],
                size=float(scale) * size_nocs[b],
                corners=transform_points(fitted, box_corners(size_nocs[b])),
                mask=masks.masks[k],
                box=masks.boxes[k],
                nocs=nocs[b],
                points=objects[b].points.astype(np.float32),
                num_points=objects[b].num_valid,
                inlier_ratio=float(ratio[b]),
                covariance=pose_covariance(
                    nocs[b],
                    points[b],
                    sRT[b],
                    found.inliers[b],
                    effective_points=EFFECTIVE_POINTS,
                    symmetric_y=category_name(class_id) in Y_SYMMETRIC,
                ),
            )
        clock.lap("poses")
        return result


def _pad(x: torch.Tensor, size: int, fill: int | None = None) -> torch.Tensor:
    """``x (B, ...)`` grown to ``(size, ...)`` by copies of ``x[0]`` (or ``fill``)."""
    extra = size - len(x)
    if extra == 0:
        return x
    tail = x[:1].expand(extra, *x.shape[1:]) if fill is None else x.new_full((extra, *x.shape[1:]), fill)
    return torch.cat([x, tail])


class _StageClock:
    """Milliseconds between successive :meth:`lap` calls, by stage name (host wall clock)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + 1e3 * (now - self._last)
        self._last = now


class _StaticStep:
    """A step function at one fixed set of input shapes, on its own input buffers: each call copies the inputs in
    and runs the step on the buffers. With ``graph`` (CUDA), the first call warms the step up on a side stream and
    captures it as a CUDA graph; later calls replay it. The outputs are then the graph's own tensors, overwritten by
    the next call: read them first. Without ``graph`` (any device) the step runs eagerly on the same buffers, which
    is how the CPU tests check everything but the capture."""

    def __init__(self, step: Callable[..., Any], graph: bool) -> None:
        self.step, self.graph = step, graph
        self.buffers: list[torch.Tensor] | None = None
        self.cuda_graph: Any = None
        self.outputs: Any = None

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if self.buffers is None:
            self.buffers = [x.clone() for x in inputs]
        else:
            for buffer, x in zip(self.buffers, inputs, strict=True):
                buffer.copy_(x)
        if not self.graph:
            return self.step(*self.buffers)
        if self.cuda_graph is None:
            self._capture()
        self.cuda_graph.replay()
        return self.outputs

    def _capture(self) -> None:
        device = self.buffers[0].device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up: lazy initialisation and library workspaces happen outside capture
            for _ in range(2):
                self.step(*self.buffers)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = self.step(*self.buffers)
        self.cuda_graph = graph


def frame_result(frame: nocs_format.Frame, estimate: FrameEstimate, name: str = "") -> FrameResult:
    """A NOCS-format frame's ground truth (its label: every labelled instance) with an estimate's objects as the
    predictions, for :func:`acr_pose_core.evaluation.metrics.evaluate_frames` (sizes in NOCS units)."""
    if frame.label is None:
        raise ValueError(f"{name or frame.prefix}: the frame has no ground-truth label to evaluate against")
    gt = frame.label.instances
    return FrameResult(
        gt_class_ids=np.array([i.class_id for i in gt], np.int64),
        gt_sRT=np.array([i.sRT for i in gt], np.float64).reshape(-1, 4, 4),
        gt_size=np.array([i.size for i in gt], np.float64).reshape(-1, 3),
        gt_handle_visible=np.array([i.handle_visible for i in gt], bool),
        pred_class_ids=np.array([o.class_id for o in estimate.objects], np.int64),
        pred_sRT=np.array([o.sRT for o in estimate.objects], np.float64).reshape(-1, 4, 4),
        pred_size=np.array([o.size_nocs for o in estimate.objects], np.float64).reshape(-1, 3),
        pred_scores=np.array([o.score for o in estimate.objects], np.float64),
        name=name,
        gt_boxes_2d=np.array([i.bbox for i in gt], np.int64).reshape(-1, 4),
        pred_boxes_2d=np.array([o.box for o in estimate.objects], np.int64).reshape(-1, 4),
    )
