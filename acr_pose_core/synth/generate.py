"""Generation of a synthetic NOCS-format data set: scenes rendered to RGB-D frames with masks, NOCS maps and labels.

Layout written under ``out``::

    <split>/<scene:05d>/<frame:04d>_{color,depth,mask,coord}.png, _meta.txt, _label.json
    obj_models/<split>.npz            surface points (NOCS units) of every instance model of the split
    <split>/generation.json           the configuration, for reproducibility

Determinism: scene ``k`` draws its layout from ``SeedSequence([seed, split, k, 0])`` and its frame ``i`` (camera,
sensor noise) from ``SeedSequence([seed, split, k, i + 1])``, so the output is the same whatever the number of
worker processes and whichever frames were already there. Resumable: a frame is complete once its ``_label.json``
exists (written last, every file atomically); an interrupted run continues where it stopped and never leaves a
half-written frame that counts as complete. A split folder with files but no ``generation.json`` (a real NOCS
data set, the user's frames) is refused, never written into.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from acr_pose_core.categories import CATEGORIES, CLASS_IDS
from acr_pose_core.data import nocs_format
from acr_pose_core.fileio import json_text, write_atomically
from acr_pose_core.geometry.camera import CAMERA_INTRINSICS, REAL_INTRINSICS, CameraIntrinsics
from acr_pose_core.synth.scene import Scene, SceneConfig, make_scene, sample_camera
from acr_pose_core.synth.sensor import Profile, sensor_color, sensor_depth_mm
from acr_pose_core.synth.shapes import SPLITS, model_from_id, split_model_ids
from acr_pose_core.threads import limit_worker_threads

__all__ = ["GenerateConfig", "GenerateSummary", "generate", "render_frame", "scene_frame", "write_split_models"]

_MUG = CLASS_IDS["mug"]
_HANDLE_MIN_PIXELS = 10
_HANDLE_MIN_FRACTION = 0.01


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. ``frames`` frames in scenes of ``frames_per_scene`` views each."""

    out: Path
    profile: Profile = "camera"
    split: str = "train"
    frames: int = 100
    frames_per_scene: int = 10
    seed: int = 0
    workers: int = 1
    model_points: int = 2048  # surface points per instance model in obj_models/<split>.npz
    scene: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.profile not in ("camera", "real"):
            raise ValueError(f"profile must be 'camera' or 'real', got {self.profile!r}")
        if self.frames < 1 or self.frames_per_scene < 1 or self.workers < 1:
            raise ValueError("frames, frames_per_scene and workers must be positive")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.model_points < 1:
            raise ValueError(f"model_points must be positive, got {self.model_points}")

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CAMERA_INTRINSICS if self.profile == "camera" else REAL_INTRINSICS

    @property
    def num_scenes(self) -> int:
        return -(-self.frames // self.frames_per_scene)

    def frames_in_scene(self, scene_index: int) -> int:
        return min(self.frames_per_scene, self.frames - scene_index * self.frames_per_scene)

    def prefix(self, scene_index: int, frame_index: int) -> Path:
        return self.out / self.split / f"{scene_index:05d}" / f"{frame_index:04d}"


@dataclass
class GenerateSummary:
    """What a :func:`generate` call did: frames written and already there, total seconds, and the seconds spent on
    frames alone (after the split's instance models were written)."""

    frames_written: int
    frames_skipped: int
    seconds: float
    frame_seconds: float


def _rng(config: GenerateConfig, scene_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, SPLITS.index(config.split), scene_index, stream]))


def render_frame(
    scene: Scene,
    renderer,
    world_from_camera: np.ndarray,
    intrinsics: CameraIntrinsics,
    profile: Profile,
    rng: np.random.Generator,
) -> nocs_format.Frame:
    """Render one view of ``scene`` and assemble the NOCS-format frame with its ground-truth label."""
    r = renderer.render(world_from_camera, intrinsics)
    depth_mm = sensor_depth_mm(r, profile, rng)
    color = sensor_color(r.color, profile, rng)
    camera_from_world = np.linalg.inv(world_from_camera)
    meta, labels, depth_pixels = [], [], {}
    for obj in scene.objects:
        meta.append(nocs_format.InstanceMeta(obj.inst_id, obj.class_id, obj.model_id))
        pixels = r.mask == obj.inst_id
        if obj.class_id == 0 or not pixels.any():
            continue
        depth_pixels[str(obj.inst_id)] = int((pixels & (depth_mm > 0)).sum())
        handle_visible = True
        if obj.class_id == _MUG and "handle" in obj.model.part_names:
            handle = int((pixels & (r.part == obj.model.part_names.index("handle"))).sum())
            handle_visible = handle >= max(_HANDLE_MIN_PIXELS, _HANDLE_MIN_FRACTION * pixels.sum())
        labels.append(
            nocs_format.InstanceLabel(
                inst_id=obj.inst_id,
                class_id=obj.class_id,
                model_id=obj.model_id,
                sRT=camera_from_world @ obj.world_from_object,
                scale=obj.scale,
                size=obj.model.size.copy(),
                handle_visible=bool(handle_visible),
                bbox=nocs_format.mask_bbox(pixels),
            )
        )
    label = nocs_format.FrameLabel(
        instances=labels,
        intrinsics=intrinsics.K,
        image_size=(intrinsics.height, intrinsics.width),
        # depth_pixels: per instance id, mask pixels with a depth measurement (what the reference pipeline's
        # "too few valid depth pixels" rule counts), so that datasets can index instances from labels alone
        info={"profile": profile, "world_from_camera": world_from_camera.tolist(), "depth_pixels": depth_pixels},
    )
    return nocs_format.Frame(
        color=color,
        depth=depth_mm,
        mask=r.mask,
        coord=r.coord,
        meta=meta,
        label=label,
        prefix=Path(),
    )


def scene_frame(config: GenerateConfig, scene_index: int = 0, frame_index: int = 0) -> nocs_format.Frame:
    """Frame ``frame_index`` of scene ``scene_index`` of ``config``, rendered in memory: the frame :func:`generate`
    writes at that place (same seeds), for the demo and tests that want one scene without a data set on disk."""
    if not 0 <= frame_index < config.frames_per_scene or scene_index < 0:
        raise ValueError(f"scene {scene_index}, frame {frame_index}: outside the configuration's scenes")
    scene = make_scene(_rng(config, scene_index, 0), config.split, config.scene)
    rng = _rng(config, scene_index, frame_index + 1)
    camera = sample_camera(rng, scene, config.scene)
    return render_frame(scene, scene.renderer(), camera, config.intrinsics, config.profile, rng)


def _generate_scene(config: GenerateConfig, scene_index: int) -> tuple[int, int]:
    """Render the missing frames of one scene. Returns (written, skipped)."""
    n = config.frames_in_scene(scene_index)
    todo = [i for i in range(n) if not nocs_format.frame_complete(config.prefix(scene_index, i))]
    if not todo:
        return 0, n
    scene = make_scene(_rng(config, scene_index, 0), config.split, config.scene)
    renderer = scene.renderer()
    (config.out / config.split / f"{scene_index:05d}").mkdir(parents=True, exist_ok=True)
    for i in todo:
        if _parent_gone():
            raise SystemExit(f"acr-pose generate: worker {os.getpid()} stops: its parent process has gone")
        rng = _rng(config, scene_index, i + 1)
        frame = render_frame(
            scene, renderer, sample_camera(rng, scene, config.scene), config.intrinsics, config.profile, rng
        )
        nocs_format.write_frame(config.prefix(scene_index, i), frame)
    return len(todo), n - len(todo)


_parent_pid: int | None = None  # in a worker process: the pid of the process that started the pool


def _init_worker(parent_pid: int) -> None:
    """Pool initializer: one math-library thread (W workers use W cores), Ctrl-C left to the parent (which stops the
    pool and reports once, instead of a traceback per worker), and the parent remembered (see :func:`_parent_gone`)."""
    global _parent_pid
    limit_worker_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _parent_pid = parent_pid


def _parent_gone() -> bool:
    """In a worker: whether the parent has died (killed on its own, it can no longer stop its pool), so the worker
    stops after its current frame instead of writing into the output folder unattended."""
    return _parent_pid is not None and os.getppid() != _parent_pid


def _worker(args: tuple[GenerateConfig, int]) -> tuple[int, int, int]:
    config, scene_index = args
    written, skipped = _generate_scene(config, scene_index)
    return scene_index, written, skipped


def write_split_models(out: Path, split: str, points: int = 2048, seed: int = 0) -> Path:
    """Write ``out/obj_models/<split>.npz``: ``points`` surface points (NOCS units) of every category model of the
    split (skipped when the file already holds them all)."""
    path = out / "obj_models" / f"{split}.npz"
    ids = [i for c in CATEGORIES for i in split_model_ids(split, c)]
    if path.exists():
        try:
            if set(nocs_format.read_models(path)) >= set(ids):
                return path
        except nocs_format.NocsFormatError:
            pass  # rewrite a broken file
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), 2**20]))
    models = {i: model_from_id(i).sample_surface(points, rng).astype(np.float32) for i in ids}
    nocs_format.write_models(path, models)
    return path


def _json_ready(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _read_record(record: Path) -> dict:
    """The settings an earlier run recorded in ``generation.json``; a damaged file is an error that names it."""
    try:
        previous = json.loads(record.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{record}: not readable JSON ({error}); it records how this folder was generated: restore it to "
            "resume, or generate into another --out"
        ) from error
    if not isinstance(previous, dict):
        raise ValueError(f"{record}: expected the generation settings (a JSON object), found {type(previous).__name__}")
    return previous


def generate(config: GenerateConfig, progress: bool | None = None) -> GenerateSummary:
    """Generate (or complete) the data set described by ``config``; see the module docstring."""
    start = time.perf_counter()
    split_dir = config.out / config.split
    split_dir.mkdir(parents=True, exist_ok=True)
    record = split_dir / "generation.json"
    settings = _json_ready({k: v for k, v in asdict(config).items() if k not in ("out", "workers")})
    if not record.exists():
        # generation.json is written before any frame: a split folder holding files without it (a NOCS data set's
        # val/, the user's own frames) or a split model file without it was not written here; never overwrite them
        foreign = sorted(p.name for p in split_dir.iterdir())[:3]
        models = config.out / "obj_models" / f"{config.split}.npz"
        if foreign or models.exists():
            found = f"{split_dir} holds {', '.join(foreign)}" if foreign else f"{models} exists"
            raise FileExistsError(
                f"{found} but no generation.json: it was not written by acr-pose generate (a NOCS data set?) and "
                "would be overwritten; generate into another --out"
            )
    else:
        previous = _read_record(record)
        clash = {k: (previous.get(k), v) for k, v in settings.items() if k != "frames" and previous.get(k) != v}
        if clash:
            raise ValueError(
                f"{record}: this folder was generated with other settings {clash} (was, now); "
                "use another --out or the same settings to resume"
            )
    write_atomically(record, json_text(settings, indent=2) + "\n")
    write_split_models(config.out, config.split, config.model_points, config.seed)

    frames_start = time.perf_counter()
    written = skipped = 0
    jobs = [(config, k) for k in range(config.num_scenes)]
    bar = tqdm(
        total=config.frames,
        desc=f"generate {config.split}",
        unit="frame",
        disable=None if progress is None else not progress,
    )
    try:
        if config.workers == 1:
            results = map(_worker, jobs)
            pool = None
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = multiprocessing.get_context(method).Pool(
                config.workers, initializer=_init_worker, initargs=(os.getpid(),)
            )
            results = pool.imap_unordered(_worker, jobs)
        for _, w, s in results:
            written += w
            skipped += s
            bar.update(w + s)
        if pool is not None:
            pool.close()
            pool.join()
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        bar.close()
    end = time.perf_counter()
    return GenerateSummary(written, skipped, end - start, end - frames_start)
