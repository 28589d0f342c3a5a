"""Training configuration: nested dataclasses, read from YAML files in ``config/`` and overridable per key.

Every default is the paper's (appendix 6.1): Adam, batch 96, learning rates 1e-4 (Reconstructor) and 1e-5
(Discriminator), alternating updates, 50 epochs with the rate multiplied by 0.5, 0.1 and 0.01 of its initial value
from epochs 10, 30 and 40; fine-tuning: the Discriminator re-initialised, sources mixed 3:1, the rate halved at
epoch 5 of 10. Loss weights γ1..γ6 = 0.1, 0.1, 1.0, 5.0, 0.0001, 0.01.

A file gives any subset of the keys (unknown keys and wrong types are errors that name the key); ``overrides`` of
the form ``"schedule.epochs=2"`` or ``"model.channels=16"`` are applied on top, values parsed as YAML.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from acr_pose_core.data.dataset import DatasetConfig
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.discriminator import DiscriminatorConfig
from acr_pose_core.models.losses import LossWeights
from acr_pose_core.settings import config_to_dict, flatten, load_settings

__all__ = [
    "RESUMABLE_CHANGES",
    "DataSourceConfig",
    "ScheduleConfig",
    "TrainConfig",
    "config_changes",
    "load_train_config",
]


@dataclass(frozen=True)
class DataSourceConfig:
    """One data set: a folder of NOCS-format frames (e.g. ``data/synth/train``, or NOCS ``CAMERA/train``)."""

    root: str
    weight: float = 1.0  # sampling ratio among the training sources (CAMERA:REAL = 3:1 when fine-tuning)
    models: str | None = None  # instance model file; default: <root>/../obj_models/<root name>.npz
    composed_depth: str | None = None  # NOCS-CAMERA's composed depth tree, if used


@dataclass(frozen=True)
class ScheduleConfig:
    """Epochs and the learning-rate steps: from ``decay_epochs[i]`` on, the rate is ``decay_factors[i]`` × initial."""

    epochs: int = 50
    decay_epochs: tuple[int, ...] = (10, 30, 40)
    decay_factors: tuple[float, ...] = (0.5, 0.1, 0.01)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"schedule: epochs must be at least 1, got {self.epochs}")
        if any(e < 0 for e in self.decay_epochs) or any(not (math.isfinite(f) and f > 0) for f in self.decay_factors):
            raise ValueError("schedule: decay_epochs must be >= 0 and decay_factors positive finite numbers")
        if len(self.decay_epochs) != len(self.decay_factors):
            raise ValueError("schedule: decay_epochs and decay_factors must have the same length")
        if list(self.decay_epochs) != sorted(self.decay_epochs):
            raise ValueError("schedule: decay_epochs must increase")

    def factor(self, epoch: int) -> float:
        """Learning-rate factor during ``epoch`` (0-based)."""
        out = 1.0
        for start, f in zip(self.decay_epochs, self.decay_factors, strict=True):
            if epoch >= start:
                out = f
        return out


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved with every checkpoint."""

    model: ReconstructorConfig = field(default_factory=ReconstructorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    dataset: DatasetConfig = field(default_factory=lambda: DatasetConfig(augment=True))
    train: tuple[DataSourceConfig, ...] = ()
    val: tuple[DataSourceConfig, ...] = ()
    priors: str | None = None  # a priors file; None: the shipped ones
    adversarial: bool = True  # train with the Discriminator (Table 3's "adversarial reconstruction")
    init_from: str | None = None  # a checkpoint or model folder whose Reconstructor starts the run (fine-tuning)
    reinit_discriminator: bool = True  # with init_from: a fresh Discriminator, as the paper fine-tunes
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch_size: int = 96
    samples_per_epoch: int | None = None  # None: the training sources' total size
    lr_reconstructor: float = 1e-4
    lr_discriminator: float = 1e-5
    num_workers: int = 2
    cache_items: bool = False  # keep decoded items in memory (small sets without augmentation: overfitting, tests)
    # Draw each frame's instances together (RatioSampler(group_by_frame=True)): a loader process decodes a frame's
    # PNGs once for all its objects (items per second: benchmarks/data.py), at the price of batches of correlated
    # items. Off by default (the reference's order); measured harmless at smoke size (README), on in
    # config/train_default_gpu.yaml.
    group_by_frame: bool = False
    device: str = "auto"  # auto: cuda when available
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU and with dtype float64)
    dtype: str = "float32"  # of weights and data; float64 where float32 rounding must not matter (exactness tests)
    seed: int = 0
    checkpoint_every: int = 0  # steps between extra checkpoints (0: none); epochs end with one, see below
    checkpoint_every_epochs: int = 1  # epochs between end-of-epoch checkpoints (the last epoch always saves)
    keep_checkpoints: int = 3
    val_every: int = 1  # epochs between validation passes
    val_max_items: int | None = 512  # instances per validation pass (None: all)
    log_every: int = 10  # steps between log lines

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.checkpoint_every_epochs < 1:
            raise ValueError("checkpoint_every_epochs must be positive")
        if self.batch_size < 1 or self.num_workers < 0 or self.val_every < 1 or self.log_every < 1:
            raise ValueError("batch_size, val_every and log_every must be positive and num_workers ≥ 0")
        if self.keep_checkpoints < 1 or self.checkpoint_every < 0:
            raise ValueError(
                f"keep_checkpoints must be at least 1 (got {self.keep_checkpoints}) and checkpoint_every ≥ 0 "
                f"(got {self.checkpoint_every})"
            )
        if self.samples_per_epoch is not None and self.samples_per_epoch < self.batch_size:
            raise ValueError(
                f"samples_per_epoch ({self.samples_per_epoch}) is less than one batch ({self.batch_size}): "
                "an epoch would train nothing"
            )
        if self.val_max_items is not None and self.val_max_items < 1:
            raise ValueError(f"val_max_items must be at least 1 (or null for all), got {self.val_max_items}")
        if not all(math.isfinite(lr) and lr > 0 for lr in (self.lr_reconstructor, self.lr_discriminator)):
            raise ValueError(
                f"lr_reconstructor and lr_discriminator must be positive finite numbers, got {self.lr_reconstructor} "
                f"and {self.lr_discriminator}"
            )
        if self.dataset.num_points != self.model.num_points or self.dataset.image_size != self.model.image_size:
            raise ValueError(
                f"dataset (num_points {self.dataset.num_points}, image_size {self.dataset.image_size}) and model "
                f"(num_points {self.model.num_points}, image_size {self.model.image_size}) must agree"
            )
        if self.dataset.model_points < 1:
            raise ValueError("dataset.model_points must be positive")
        if self.cache_items and self.dataset.augment:
            raise ValueError("cache_items needs dataset.augment: false (augmented items differ every epoch)")


RESUMABLE_CHANGES = frozenset(
    {
        "schedule.epochs",  # train longer (or stop sooner); the learning-rate steps stay where they were
        "device",
        "num_workers",
        "log_every",
        "checkpoint_every",
        "checkpoint_every_epochs",
        "keep_checkpoints",
        "val",
        "val_every",
        "val_max_items",
    }
)
"""Settings that ``--resume`` accepts changed (recorded in ``log.jsonl``): none of them changes what a step
computes. Any other change (model, data, batch size, rates, schedule steps, losses, seed, precision) is refused."""


def config_changes(stored: dict, config: TrainConfig, where: str = "") -> dict[str, tuple[Any, Any]]:
    """The settings in which ``config`` differs from a run's recorded ones (``stored``: plain values as in its
    ``config.json`` or checkpoint): ``{"dotted.key": (recorded, now)}``. A setting that an older record lacks counts
    as its default; an unknown or invalid recorded setting is a :class:`ValueError` naming ``where``."""
    a = flatten(config_to_dict(load_train_config(None, [], tree=stored, where=where)))
    b = flatten(config_to_dict(config))
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def load_train_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    tree: dict | None = None,
    where: str = "",
) -> TrainConfig:
    """A :class:`TrainConfig` (see :func:`load_settings`)."""
    return load_settings(TrainConfig, path, overrides, tree, where)
