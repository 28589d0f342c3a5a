"""Training the instance segmenter (Mask R-CNN, :mod:`acr_pose_core.models.segmenter`) from scratch on NOCS-format
frames: ``acr-pose train-detector``.

The habits of the Reconstructor's trainer (:mod:`acr_pose_core.training.trainer`): a YAML configuration checked
before any work and saved with every checkpoint; a run folder that is refused when it already holds a run unless
``--resume`` (continue from the newest complete checkpoint, exactly: weights, optimiser, counters, RNG, and data
order, which is a function of ``(seed, epoch, index)``) or ``--overwrite``; safetensors checkpoints; ``log.jsonl``
and TensorBoard; a progress bar; validation every ``val_every`` steps with mask AP and box AP
(:mod:`acr_pose_core.evaluation.instance_ap`) on held-out frames.

Optimisation: AdamW, a linear warm-up over ``warmup_steps``, then the rate times ``decay_factors[i]`` from step
``decay_steps[i]``; the rate is a function of the step alone, set before every step (nothing to restore but the
step). An epoch is one pass over the training frames in a seeded random order. ``--resume`` may also move a decay
that has not happened yet (with ``steps``, to end a run sooner or later): every step taken keeps its rate.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from tqdm.auto import tqdm

from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import DetectionFrames, collate_detection, frame_objects
from acr_pose_core.device import choose_device
from acr_pose_core.evaluation.instance_ap import FrameInstances, instance_ap
from acr_pose_core.fileio import finite_or_none, json_text, write_atomically
from acr_pose_core.model_folder import load_model_folder
from acr_pose_core.models.segmenter import SegmenterConfig, build_segmenter, predict_instances
from acr_pose_core.settings import config_changes_between, config_to_dict, load_settings
from acr_pose_core.threads import worker_init_fn
from acr_pose_core.training.checkpoint import (
    TrainingState,
    checkpoint_json,
    git_commit,
    load_checkpoint,
    load_module_weights,
    save_checkpoint,
)
from acr_pose_core.training.config import DataSourceConfig
from acr_pose_core.training.pretrained import backbone_state
from acr_pose_core.training.run import LockedRun, rewind_log
from acr_pose_core.training.trainer import _check_run_folder

__all__ = ["DetectorTrainConfig", "DetectorTrainer", "freeze_backbone", "load_detector_config"]

RESUMABLE = frozenset(
    {
        "steps",
        "device",
        "num_workers",
        "log_every",
        "val_every",
        "val_max_frames",
        "checkpoint_every",
        "keep_checkpoints",
        "val",
    }
)
"""Settings ``--resume`` accepts changed; anything else changes what a step computes and is refused."""

_FUTURE_DECAYS = frozenset({"decay_steps", "decay_factors"})
"""Accepted changed on resume while the steps already taken keep their learning rate (:func:`_same_lr`): moving a
decay that has not happened yet, e.g. to end a run sooner with ``steps``, changes no step that was computed."""


def _same_lr(recorded: DetectorTrainConfig, config: DetectorTrainConfig, done: int) -> bool:
    """Whether steps ``0 .. done-1`` had the same learning rate under both settings (the rate is a step function
    of the step alone, so comparing every taken step is exact)."""
    return all(recorded.lr_at(step) == config.lr_at(step) for step in range(done))


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything a segmenter run depends on (saved with every checkpoint)."""

    train: tuple[DataSourceConfig, ...] = ()
    val: tuple[DataSourceConfig, ...] = ()
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    steps: int = 20000
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    decay_steps: tuple[int, ...] = ()
    decay_factors: tuple[float, ...] = ()
    grad_clip: float = 10.0  # max gradient norm (from-scratch Mask R-CNN spikes early)
    # Initial backbone weights: None (random), "imagenet" (the offline ImageNet weights, mobilenet_v2 only;
    # training.pretrained) or a local state-dict file of the backbone body. Read at the start of a fresh run only.
    backbone_weights: str | None = None
    # A model folder (acr-pose export) or a train-detector checkpoint whose whole segmenter starts the run
    # (fine-tuning; its configuration must equal ``segmenter``). Read at the start of a fresh run only, after
    # backbone_weights, which it replaces.
    init_from: str | None = None
    # The first freeze_backbone_blocks blocks of the backbone body are not trained (torchvision's practice with
    # pretrained weights: the early filters are generic); freeze_backbone_norm keeps every backbone BatchNorm at its
    # stored statistics and affine values (batches of 2 images estimate them badly).
    freeze_backbone_blocks: int = 0
    freeze_backbone_norm: bool = False
    augment: bool = True
    num_workers: int = 2
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    val_max_frames: int = 100
    checkpoint_every: int = 500
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        if (
            min(
                self.steps,
                self.batch_size,
                self.log_every,
                self.val_every,
                self.checkpoint_every,
                self.keep_checkpoints,
                self.val_max_frames,
            )
            < 1
        ):
            raise ValueError(
                "steps, batch_size, log_every, val_every, checkpoint_every, keep_checkpoints and "
                "val_max_frames must be at least 1"
            )
        if not (math.isfinite(self.lr) and self.lr > 0) or not (
            math.isfinite(self.weight_decay) and self.weight_decay >= 0
        ):
            raise ValueError(
                f"lr must be a positive finite number and weight_decay finite, not negative; got {self.lr}, "
                f"{self.weight_decay}"
            )
        if self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError("warmup_steps and num_workers must not be negative")
        if any(not (math.isfinite(f) and f > 0) for f in self.decay_factors):
            raise ValueError(f"decay_factors must be positive finite numbers, got {list(self.decay_factors)}")
        if len(self.decay_steps) != len(self.decay_factors) or list(self.decay_steps) != sorted(self.decay_steps):
            raise ValueError("decay_steps (ascending) and decay_factors must have the same length")
        if self.freeze_backbone_blocks < 0:
            raise ValueError(f"freeze_backbone_blocks must not be negative, got {self.freeze_backbone_blocks}")
        if self.backbone_weights == "imagenet" and self.segmenter.backbone != "mobilenet_v2":
            raise ValueError(
                f"backbone_weights 'imagenet' exists offline for segmenter.backbone 'mobilenet_v2' only, "
                f"not {self.segmenter.backbone!r}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): warm-up, then the step decays."""
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        for at, f in zip(self.decay_steps, self.decay_factors, strict=True):
            if step >= at:
                factor = f
        return self.lr * factor


_INFERENCE_SETTINGS = ("score_threshold", "mask_threshold", "max_detections", "test_proposals")


def _load_initial_segmenter(path: Path, model: torch.nn.Module, config: SegmenterConfig) -> None:
    """``init_from``: the segmenter of a model folder or of a train-detector checkpoint (or run folder) into
    ``model``, whose configuration ``config`` must be the stored one."""
    if (path / "model.json").is_file():
        loaded = load_model_folder(path)
        if loaded.segmenter is None:
            raise ValueError(f"init_from {path}: the model folder has no segmenter")
        stored, state = loaded.segmenter_config, loaded.segmenter.float().state_dict()
    else:
        json_path = checkpoint_json(path)
        document = json.loads(json_path.read_text(encoding="utf-8"))
        stored, state = load_detector_config(tree=document["config"], where=str(json_path)).segmenter, None
    # the inference settings (thresholds, detections and proposals kept) do not shape the weights
    stored = replace(stored, **{k: getattr(config, k) for k in _INFERENCE_SETTINGS})
    if stored != config:
        changed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in config_changes_between(stored, config).items())
        raise ValueError(f"init_from {path}: its segmenter configuration differs from segmenter ({changed})")
    if state is None:
        load_module_weights(json_path, model, "segmenter")
    else:
        model.load_state_dict(state)


def load_detector_config(
    path: str | os.PathLike | None = None, overrides=(), tree: dict | None = None, where: str = ""
) -> DetectorTrainConfig:
    """A :class:`DetectorTrainConfig` from YAML (or a recorded tree) and ``key.sub=value`` overrides
    (:func:`~acr_pose_core.training.config.load_settings`)."""
    return load_settings(DetectorTrainConfig, path, overrides, tree, where)


class _EpochSampler(Sampler[int]):
    """A seeded permutation of the frames per epoch, ``(seed, epoch)``; ``skip`` items already consumed."""

    def __init__(self, size: int, seed: int, epoch: int, skip: int) -> None:
        self.order = np.random.default_rng([seed, epoch]).permutation(size)[skip:]

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


AP_MIN_SCORE = 0.05
"""Validation ranks every detection down to this score (COCO's practice), not only those over the run-time threshold:
AP is a ranking measure, and cutting at the operating threshold would understate it."""


def freeze_backbone(model: torch.nn.Module, blocks: int, norm: bool) -> list[torch.nn.Module]:
    """Stop training the first ``blocks`` blocks of ``model.backbone.body`` and, with ``norm``, every BatchNorm of
    the body; returns the BatchNorm layers that must stay in eval mode (their running statistics fixed)."""
    body = model.backbone.body
    children = list(body.children())
    if blocks > len(children):
        raise ValueError(f"freeze_backbone_blocks {blocks}: the backbone has {len(children)} blocks")
    for child in children[:blocks]:
        for parameter in child.parameters():
            parameter.requires_grad_(False)
    frozen = []
    for index, child in enumerate(children):
        for module in child.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and (norm or index < blocks):
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
                frozen.append(module)
    return frozen


class DetectorTrainer(LockedRun):
    """Trains a segmenter as ``config`` says, writing everything under ``out`` (see the module docstring)."""

    def __init__(
        self,
        config: DetectorTrainConfig,
        out: str | os.PathLike,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        max_steps: int | None = None,
    ) -> None:
        self._hold(out, resume, lambda: self._setup(config, out, resume, overwrite, progress, max_steps))

    def _setup(self, config, out, resume, overwrite, progress, max_steps) -> None:
        if not config.train:
            raise ValueError("the configuration names no training frames (train: [{root: ...}])")
        self.config, self.out, self.progress = config, Path(out), progress
        self.max_steps = max_steps
        self.checkpoints = self.out / "checkpoints"
        resume_from = _check_run_folder(self.out, resume, overwrite)
        changed = {}
        if resume_from is not None:
            stored = json.loads(resume_from.read_text(encoding="utf-8"))["config"]
            recorded = load_detector_config(tree=stored, where=str(resume_from))
            changed = config_changes_between(recorded, config)
            done = json.loads(resume_from.read_text(encoding="utf-8"))["step"]
            refused = {
                k: v
                for k, v in changed.items()
                if k.split(".")[0] not in RESUMABLE and not (k in _FUTURE_DECAYS and _same_lr(recorded, config, done))
            }
            if refused:
                listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
                raise ValueError(f"cannot resume {self.out} with other settings ({listed})")
        self.device = choose_device(config.device)
        sources = [DetectionFrames(s.root, config.augment, config.seed) for s in config.train]
        empty = [s.root for s, d in zip(config.train, sources, strict=True) if not len(d)]
        if empty:
            raise ValueError(f"training source(s) {empty} hold no frames")
        self.train_data = ConcatDataset(sources)
        self.val_data = [DetectionFrames(s.root, max_frames=config.val_max_frames) for s in config.val]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = build_segmenter(config.segmenter)
        body = self.model.backbone.body
        if config.backbone_weights is not None and resume_from is None:
            body.load_state_dict(backbone_state(config.segmenter.backbone, body, config.backbone_weights))
        if config.init_from is not None and resume_from is None:
            _load_initial_segmenter(Path(config.init_from), self.model, config.segmenter)
        self.model.to(self.device)
        self.frozen = freeze_backbone(self.model, config.freeze_backbone_blocks, config.freeze_backbone_norm)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.state = TrainingState(0, 0, 0, {"segmenter": self.model}, {"segmenter": self.optimiser})
        self.metrics: dict[str, Any] = {}
        # torchvision's RPN and box samplers draw from torch's global generator (no generator argument): seed it
        # here and store it with every checkpoint, so that a resumed run draws what the uninterrupted one would
        torch.manual_seed(config.seed)
        if resume_from is not None:
            load_checkpoint(resume_from, self.state, map_location=self.device)
            torch.set_rng_state(self.state.rng["torch"].cpu())
            self.metrics = json.loads(resume_from.read_text(encoding="utf-8")).get("metadata", {}).get("metrics", {})
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomically(self.out / "config.json", json_text(config_to_dict(config), indent=2) + "\n")
        if resume_from is not None:
            dropped = rewind_log(self.out / "log.jsonl", self.state.step)  # the killed run's later lines
            self._log(
                {
                    "step": self.state.step,
                    "event": "resumed",
                    "checkpoint": resume_from.name,
                    "changed": {k: list(v) for k, v in changed.items()},
                    "log_lines_dropped": dropped,
                }
            )
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.state.step or None)
        except ImportError:
            self.writer = None

    def train_mode(self) -> None:
        """``model.train()``, but the frozen BatchNorm layers keep their statistics (eval mode)."""
        self.model.train()
        for module in self.frozen:
            module.eval()

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json_text(record) + "\n")
        if getattr(self, "writer", None) is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, record["step"])

    def _save(self) -> Path:
        self.state.rng = {"torch": torch.get_rng_state()}
        metadata = {
            "git_commit": git_commit(),
            "metrics": self.metrics,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "frames": {"train": len(self.train_data), "val": sum(len(d) for d in self.val_data)},
        }
        return save_checkpoint(
            self.checkpoints, self.state, config_to_dict(self.config), metadata, self.config.keep_checkpoints
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mask AP and box AP (and per-category mask AP50) on the validation frames."""
        self.model.eval()
        operating = self.model.roi_heads.score_thresh
        self.model.roi_heads.score_thresh = min(operating, AP_MIN_SCORE)
        predictions, truths = [], []
        for data in self.val_data:
            for prefix in data.frames:
                frame = nocs_format.read_frame(prefix, with_coord=False)
                _, class_ids, masks, boxes = frame_objects(frame)
                image = torch.from_numpy(np.ascontiguousarray(frame.color.transpose(2, 0, 1))).float() / 255
                predictions.append(
                    predict_instances(self.model, image.to(self.device), self.config.segmenter, AP_MIN_SCORE)
                )
                truths.append(FrameInstances(class_ids, np.ones(len(class_ids)), boxes, masks))
        self.model.roi_heads.score_thresh = operating
        self.train_mode()
        if not truths:
            return {}
        mask = instance_ap(predictions, truths, "mask")
        box = instance_ap(predictions, truths, "box")
        metrics = {f"mask_{k}": v for k, v in mask.items()}
        metrics.update({f"box_{k}": v for k, v in box.items() if "/" not in k})
        metrics["val_frames"] = len(truths)
        return {k: finite_or_none(v) for k, v in metrics.items()}

    def _run(self) -> dict[str, Any]:
        """Train to ``config.steps`` (or ``max_steps``); :meth:`run` calls it under the lock."""
        cfg, state = self.config, self.state
        end = cfg.steps if self.max_steps is None else min(cfg.steps, self.max_steps)
        self.train_mode()
        last: dict[str, float] = {}
        bar = tqdm(
            total=end,
            initial=state.step,
            desc="segmenter",
            unit="step",
            disable=not self.progress if self.progress is not None else None,
        )
        while state.step < end:
            for data in self.train_data.datasets:
                data.set_epoch(state.epoch)
            skip = state.step_in_epoch * cfg.batch_size  # frames of this epoch already trained on
            loader = DataLoader(
                self.train_data,
                batch_size=cfg.batch_size,
                sampler=_EpochSampler(len(self.train_data), cfg.seed, state.epoch, skip),
                num_workers=cfg.num_workers,
                worker_init_fn=worker_init_fn,
                collate_fn=collate_detection,
                drop_last=True,
            )
            for images, targets in loader:
                for group in self.optimiser.param_groups:
                    group["lr"] = cfg.lr_at(state.step)
                images = [i.to(self.device) for i in images]
                targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
                losses = self.model(images, targets)
                total = sum(losses.values())
                self.optimiser.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimiser.step()
                state.step += 1
                state.step_in_epoch += 1
                last = {k: v.item() for k, v in losses.items()} | {"total": total.item()}
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.3f}")
                if state.step % cfg.log_every == 0:
                    self._log({"step": state.step, "epoch": state.epoch, "lr": cfg.lr_at(state.step - 1), **last})
                if self.val_data and (state.step % cfg.val_every == 0 or state.step == cfg.steps):
                    self.metrics = self.validate()
                    self._log({"step": state.step, "epoch": state.epoch, **self.metrics})
                if state.step % cfg.checkpoint_every == 0 or state.step == end:
                    self._save()
                if state.step >= end:
                    break
            else:
                state.epoch += 1
                state.step_in_epoch = 0
        bar.close()
        if self.writer is not None:
            self.writer.close()
        return {"losses": last, "metrics": self.metrics, "step": state.step}
