"""The ACR-Pose trainer: alternating Reconstructor and Discriminator updates, schedules, checkpoints, validation.

One step (paper §3.5–3.6): the Reconstructor minimises ``γ2·L_g + γ3·L_corr + γ4·L_cd + γ5·L_entro + γ6·L_reg``
with the Discriminator fixed; then the Discriminator minimises ``γ1·L_d`` on the ground-truth NOCS points of the
batch against the (detached) reconstructions. Adam for both, their rates scaled per epoch by the schedule.

- Devices: CPU or CUDA (``device: auto``), bf16 autocast on CUDA. Several GPUs or machines: start with ``torchrun``;
  the process group comes from its environment (NCCL on GPUs, gloo on CPUs), models are wrapped in
  ``DistributedDataParallel`` and each process reads its share of every epoch's draw. Rank 0 logs and saves.
- Data: training sources are mixed by their weights (:class:`~acr_pose_core.data.dataset.RatioSampler`); each epoch
  draws ``samples_per_epoch`` items; items with fewer than 3 valid points are dropped from their batch (a batch left
  empty on any rank is skipped on every rank, so distributed ranks stay in step).
- Checkpoints (:mod:`~acr_pose_core.training.checkpoint`): safetensors + JSON, at the end of every epoch and every
  ``checkpoint_every`` steps; ``resume`` continues from the newest complete one with the optimisers, schedulers,
  RNG state and position in the epoch's draw restored, so the losses continue exactly.
- Logs: a progress bar, ``log.jsonl`` (one JSON object per log step and per validation), and TensorBoard event
  files in ``tensorboard/`` when the ``tensorboard`` package is installed.
- Validation: the NOCS metrics (:mod:`~acr_pose_core.evaluation.metrics`) of held-out instances with their true
  masks, the pose of each from the reconstruction by RANSAC-Umeyama (:func:`~acr_pose_core.geometry.poses_from_nocs`)
  and its size from the deformed prior.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from acr_pose_core.data.dataset import PoseDataset, mixed
from acr_pose_core.data.priors import load_priors
from acr_pose_core.device import choose_device
from acr_pose_core.evaluation.metrics import evaluate_frames
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.fileio import json_text, write_atomically
from acr_pose_core.geometry import poses_from_nocs
from acr_pose_core.model_folder import load_model_folder
from acr_pose_core.models.discriminator import Discriminator
from acr_pose_core.models.losses import (
    chamfer_loss,
    correspondence_loss,
    discriminator_loss,
    generator_loss,
    reconstruction_losses,
)
from acr_pose_core.models.precision import full_precision
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.settings import config_to_dict
from acr_pose_core.threads import worker_init_fn
from acr_pose_core.training.checkpoint import (
    TrainingState,
    find_checkpoint,
    git_commit,
    load_checkpoint,
    load_module_weights,
    save_checkpoint,
)
from acr_pose_core.training.config import RESUMABLE_CHANGES, DataSourceConfig, TrainConfig, config_changes
from acr_pose_core.training.run import LockedRun, rewind_log

__all__ = ["RUN_ENTRIES", "RunWarning", "Trainer", "losses_on_host"]

_MODEL_KEYS = ("points", "rgb", "choose", "category", "prior")


def losses_on_host(steps: list[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
    """The loss terms of several :meth:`Trainer.train_step` calls as floats, read from the device in one copy (one
    wait instead of one per term and step). Every step has the same terms."""
    if not steps:
        return []
    keys = list(steps[0])
    rows = torch.stack([torch.stack([step[k].double() for k in keys]) for step in steps]).cpu().tolist()
    return [dict(zip(keys, row, strict=True)) for row in rows]


class _SkipSampler(Sampler[int]):
    """The indices of ``sampler`` after the first ``skip`` (to resume in the middle of an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return iter(list(self.sampler)[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


class _Cached(torch.utils.data.Dataset):
    """A dataset whose items are computed once and then kept (valid only for deterministic items)."""

    def __init__(self, dataset: PoseDataset) -> None:
        self.dataset = dataset
        self.items: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index not in self.items:
            self.items[index] = self.dataset[index]
        return self.items[index]

    def frame_groups(self) -> list:
        """The wrapped dataset's frames (so that ``group_by_frame`` orders cached items too)."""
        return self.dataset.frame_groups()


RUN_ENTRIES = ("checkpoints", "log.jsonl", "config.json", "tensorboard", "result.json")
"""What a run writes into its folder (``result.json``: a finished ablation row)."""


def _check_run_folder(out: Path, resume: bool, overwrite: bool, is_main: bool = True) -> Path | None:
    """The checkpoint to resume from (None: start at step 1), after the rules for a run folder:

    - ``resume``: the folder must hold a complete checkpoint, else :class:`FileNotFoundError`; newer checkpoints
      that are incomplete or corrupt are skipped with a :class:`RunWarning` naming each;
    - otherwise the folder must not hold a run (:data:`RUN_ENTRIES`), which would be restarted at step 1 over its
      own files and mixed with them, unless ``overwrite``: then the run's entries are deleted first (by the main
      process, ``is_main``, while the others wait; other files in the folder are left alone).
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run, or start it over")
    checkpoints = out / "checkpoints"
    if resume:
        found = find_checkpoint(checkpoints)
        for path, reason in found.skipped:
            warnings.warn(f"skipping checkpoint {path.name}: {reason}", RunWarning, stacklevel=3)
        if found.path is None:
            what = "does not exist" if not out.exists() else "holds no complete checkpoint"
            skipped = f" ({len(found.skipped)} incomplete or corrupt)" if found.skipped else ""
            started = [name for name in RUN_ENTRIES if (out / name).exists()]
            advice = (
                f"start it over with --overwrite (it holds {', '.join(started)} but no checkpoint)"
                if started
                else "start a new run without --resume"
            )
            raise FileNotFoundError(f"cannot resume: {out} {what}{skipped}; {advice}")
        return found.path
    present = [name for name in RUN_ENTRIES if (out / name).exists()]
    if present and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(present)}): continue it with --resume, start it over with "
            "--overwrite (deletes those), or choose another folder"
        )
    if present and is_main:
        for name in present:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    if overwrite and dist.is_initialized():
        dist.barrier()  # every rank, whatever it saw: none starts before the old run is gone
    return None


def _resumable_changes(checkpoint: Path, config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings ``config`` changes against the run's (as its checkpoint recorded them); only
    :data:`~acr_pose_core.training.config.RESUMABLE_CHANGES` are allowed, anything else is a :class:`ValueError`
    listing every change. Settings an older checkpoint lacks count as their defaults."""
    stored = json.loads(checkpoint.read_text(encoding="utf-8")).get("config")  # a complete checkpoint: valid JSON
    if not isinstance(stored, dict):
        raise ValueError(f"{checkpoint}: records no training configuration; cannot check it against this one")
    changes = config_changes(stored, config, where=str(checkpoint))
    refused = {key: values for key, values in changes.items() if key not in RESUMABLE_CHANGES}
    if refused:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise ValueError(
            f"cannot resume {checkpoint.parent.parent} with other settings ({listed}): a resumed run continues the "
            "same training. Use the run's settings (its config.json), or start a new run in another folder"
        )
    for key, (old, new) in changes.items():
        warnings.warn(f"resuming with {key} changed from {old!r} to {new!r}", RunWarning, stacklevel=3)
    return changes


class RunWarning(UserWarning):
    """Something about a run's folder the user should know: a skipped checkpoint, a setting changed on resume."""


def _dataset(source: DataSourceConfig, priors: np.ndarray, config: TrainConfig, augment: bool) -> PoseDataset:
    root = Path(source.root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} not found; render one with 'acr-pose generate --split {root.name} --out "
            f"{root.parent}' or point the configuration's train/val roots at a NOCS-format split (--set 'train=[...]')"
        )
    return PoseDataset(
        Path(source.root),
        priors,
        replace(config.dataset, augment=augment),
        models=None if source.models is None else Path(source.models),
        seed=config.seed,
        composed_depth=None if source.composed_depth is None else Path(source.composed_depth),
    )


class Trainer(LockedRun):
    """Trains a Reconstructor (and Discriminator) as ``config`` says, writing everything under ``out``."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike,
        resume: bool = False,
        progress: bool | None = None,
        max_steps: int | None = None,
        overwrite: bool = False,
    ) -> None:
        """Set up a run in ``out`` (see :func:`_check_run_folder` for what ``resume`` and ``overwrite`` allow),
        holding the folder's :class:`~acr_pose_core.training.run.RunLock` until :meth:`run` ends."""
        self._hold(out, resume, lambda: self._setup(config, out, resume, progress, max_steps, overwrite))

    def _setup(self, config, out, resume, progress, max_steps, overwrite) -> None:
        if not config.train:
            raise ValueError("the configuration names no training data (train: [{root: ...}])")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.config = config
        self.out = Path(out)
        self.checkpoints = self.out / "checkpoints"
        self.max_steps = max_steps
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.device = choose_device(config.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.world > 1 else 0
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.is_main = self.rank == 0
        resume_from = _check_run_folder(self.out, resume, overwrite, self.is_main)
        changed = {} if resume_from is None else _resumable_changes(resume_from, config)  # before any work
        self.progress = progress
        self.dtype = getattr(torch, config.dtype)
        self.amp = config.amp and self.device.type == "cuda" and self.dtype == torch.float32
        self.check_inputs = self.device.type == "cpu"  # the model's index checks, which read on the host

        priors = load_priors(config.priors).resampled(config.model.prior_points).points
        sources = [_dataset(s, priors, config, augment=config.dataset.augment) for s in config.train]
        if config.cache_items:
            sources = [_Cached(d) for d in sources]
        samples = config.samples_per_epoch or sum(len(d) for d in sources)
        if not all(len(d) for d in sources):
            empty = [s.root for s, d in zip(config.train, sources, strict=True) if not len(d)]
            raise ValueError(f"training source(s) {empty} hold no instance with enough depth to train on")
        weights = [s.weight for s in config.train]
        self.train_data, self.sampler = mixed(sources, weights, samples, config.seed, config.group_by_frame)
        self.sampler.num_replicas, self.sampler.rank = self.world, self.rank
        self.sampler.per_replica = -(-self.sampler.num_samples // self.world)
        if self.sampler.per_replica < config.batch_size:
            raise ValueError(
                f"an epoch of {samples} samples over {self.world} process(es) is less than one batch of "
                f"{config.batch_size}: it would train nothing (raise samples_per_epoch or lower batch_size)"
            )
        self.val_data = [_dataset(s, priors, config, augment=False) for s in config.val]

        with torch.random.fork_rng(devices=[]):  # initial weights from config.seed; the caller's RNG untouched
            torch.manual_seed(config.seed)
            self.reconstructor = Reconstructor(config.model).to(self.device, self.dtype)
            self.discriminator = Discriminator(config.discriminator).to(self.device, self.dtype)
        if config.init_from is not None and (Path(config.init_from) / "model.json").is_file():
            if not config.reinit_discriminator:
                raise ValueError(
                    f"init_from {config.init_from} is a model folder (no Discriminator): set reinit_discriminator: true"
                )
            loaded = load_model_folder(config.init_from, dtype=self.dtype)  # its sha256 checked, fp16 widened
            if config_to_dict(loaded.reconstructor.config) != config_to_dict(config.model):
                raise ValueError(f"init_from {config.init_from}: its Reconstructor configuration differs from model:")
            self.reconstructor.load_state_dict(loaded.reconstructor.state_dict())
        elif config.init_from is not None:
            load_module_weights(Path(config.init_from), self.reconstructor, "reconstructor")
            if not config.reinit_discriminator:
                load_module_weights(Path(config.init_from), self.discriminator, "discriminator")
        self.recon_train: torch.nn.Module = self.reconstructor
        self.disc_train: torch.nn.Module = self.discriminator
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.recon_train = DistributedDataParallel(self.reconstructor, device_ids=ids)
            self.disc_train = DistributedDataParallel(self.discriminator, device_ids=ids)
        self.opt_r = torch.optim.Adam(self.reconstructor.parameters(), lr=config.lr_reconstructor)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_discriminator)
        schedule = config.schedule
        self.sched_r = torch.optim.lr_scheduler.LambdaLR(self.opt_r, lambda e: schedule.factor(e))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda e: schedule.factor(e))
        self.state = TrainingState(
            step=0,
            epoch=0,
            step_in_epoch=0,
            modules={"reconstructor": self.reconstructor, "discriminator": self.discriminator},
            optimisers={"reconstructor": self.opt_r, "discriminator": self.opt_d},
            schedulers={"reconstructor": self.sched_r, "discriminator": self.sched_d},
            rng={},
        )
        self.resumed_from: Path | None = None
        if resume_from is not None:
            load_checkpoint(resume_from, self.state, map_location=self.device)
            if "torch" in self.state.rng:
                torch.set_rng_state(self.state.rng["torch"].cpu())
            self.resumed_from = resume_from
        self.metrics: dict[str, Any] = {}
        self.writer = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.resumed_from is not None:
                dropped = rewind_log(self.out / "log.jsonl", self.state.step)  # the killed run's later lines
                self._log(
                    {
                        "step": self.state.step,
                        "epoch": self.state.epoch,
                        "event": "resumed",
                        "checkpoint": self.resumed_from.name,
                        "changed": {key: list(values) for key, values in changed.items()},
                        "log_lines_dropped": dropped,
                    }
                )
            write_atomically(self.out / "config.json", json_text(config_to_dict(config), indent=2) + "\n")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.state.step or None)
            except ImportError:  # the train extra is optional; log.jsonl has everything
                self.writer = None

    # ------------------------------------------------------------------ one step

    def _batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        keep = batch["valid_points"] >= 3  # an instance without depth cannot be reconstructed
        return {
            k: v[keep].to(self.device, self.dtype if v.is_floating_point() else None, non_blocking=True)
            for k, v in batch.items()
            if isinstance(v, torch.Tensor)
        }

    def _every_rank_has_items(self, count: int) -> bool:
        """Whether this batch has items on every rank (one all-reduce when distributed; else ``count > 0``)."""
        if self.world == 1:
            return count > 0
        empty = torch.tensor([int(count == 0)], device=self.device)
        dist.all_reduce(empty, op=dist.ReduceOp.MAX)
        return not bool(empty.item())

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One alternating update on a device batch; returns the loss terms as detached 0-dim tensors on the device.

        Nothing in the step reads a device value on the host (tested with
        :func:`acr_pose_core.host_sync.forbid_host_sync`), so on a GPU the host queues the next batch's work while
        this one runs; :func:`losses_on_host` reads the terms of many steps at once. The model's index checks read
        on the host, so they run on the CPU only: dataset items are valid by construction."""
        w, cfg = self.config.losses, self.config
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.recon_train(*(batch[k] for k in _MODEL_KEYS), check_inputs=self.check_inputs)
            terms = reconstruction_losses(
                full_precision(out.nocs),
                full_precision(out.deformed_prior),
                full_precision(out.assignment),
                full_precision(out.deformation),
                batch["nocs"],
                batch["model"],
                w,
            )
            total = terms.pop("total")
            if cfg.adversarial:
                # through the bare Discriminator: its gradients here are discarded, only the Reconstructor learns
                terms["generator"] = generator_loss(self.discriminator(full_precision(out.nocs)))
                total = total + w.generator * terms["generator"]
        self.opt_r.zero_grad(set_to_none=True)
        total.backward()
        self.opt_r.step()
        if cfg.adversarial:
            n = len(batch["nocs"])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                judged = self.disc_train(torch.cat([batch["nocs"], full_precision(out.nocs.detach())]))  # one forward
                terms["discriminator"] = discriminator_loss(full_precision(judged[:n]), full_precision(judged[n:]))
            self.opt_d.zero_grad(set_to_none=True)
            (w.discriminator * terms["discriminator"]).backward()
            self.opt_d.step()
        terms["total"] = total
        return {k: v.detach() for k, v in terms.items()}

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """NOCS metrics of up to ``val_max_items`` held-out instances per source (true masks, RANSAC-Umeyama)."""
        if not self.val_data:
            return {}
        self.reconstructor.eval()
        frames: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        losses: dict[str, list[float]] = defaultdict(list)
        for k, data in enumerate(self.val_data):
            n = len(data) if self.config.val_max_items is None else min(len(data), self.config.val_max_items)
            loader = DataLoader(
                torch.utils.data.Subset(data, range(n)),
                batch_size=self.config.batch_size,
                num_workers=self.config.num_workers,
                worker_init_fn=worker_init_fn,
            )
            for raw in loader:
                batch = self._batch(raw)
                if not len(batch["points"]):
                    continue
                frame_names = [
                    f"{k}:{f}" for f, keep in zip(raw["frame"], raw["valid_points"] >= 3, strict=True) if keep
                ]
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out = self.reconstructor(*(batch[k2] for k2 in _MODEL_KEYS))
                nocs = full_precision(out.nocs)
                losses["correspondence"].append(float(correspondence_loss(nocs, batch["nocs"])))
                losses["chamfer"].append(float(chamfer_loss(full_precision(out.deformed_prior), batch["model"])))
                fit = poses_from_nocs(nocs, batch["points"], batch["valid_points"], seed=0)
                poses, found = fit.sRT.cpu().numpy(), fit.valid.cpu().numpy()  # (b, 4, 4), (b,)
                size = out.size.float().cpu().numpy()
                for i, name in enumerate(frame_names):
                    rec = frames[name]
                    rec["gt_class_ids"].append(int(batch["class_id"][i]))
                    rec["gt_sRT"].append(batch["sRT"][i].double().cpu().numpy())
                    rec["gt_size"].append(batch["size"][i].double().cpu().numpy())
                    rec["gt_handle_visible"].append(bool(batch["handle_visible"][i]))
                    if found[i]:  # a failed alignment is a missed object
                        rec["pred_class_ids"].append(int(batch["class_id"][i]))
                        rec["pred_sRT"].append(poses[i])
                        rec["pred_size"].append(size[i])
                        rec["pred_scores"].append(1.0)
        self.reconstructor.train()
        results = [
            FrameResult(
                gt_class_ids=np.array(r["gt_class_ids"]),
                gt_sRT=np.array(r["gt_sRT"]).reshape(-1, 4, 4),
                gt_size=np.array(r["gt_size"]).reshape(-1, 3),
                gt_handle_visible=np.array(r["gt_handle_visible"]),
                pred_class_ids=np.array(r["pred_class_ids"], dtype=np.int64),
                pred_sRT=np.array(r["pred_sRT"]).reshape(-1, 4, 4),
                pred_size=np.array(r["pred_size"]).reshape(-1, 3),
                pred_scores=np.array(r["pred_scores"]),
                name=name,
            )
            for name, r in frames.items()
        ]
        metrics = evaluate_frames(results, iou_mode="corrected")
        summary = {name: values["mean"] for name, values in metrics.summary().items()}
        summary.update({f"val_{k}": float(np.mean(v)) for k, v in losses.items()})
        summary["val_instances"] = int(sum(len(r.gt_class_ids) for r in results))
        return summary

    # ------------------------------------------------------------------ the loop

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json_text(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(key, value, record["step"])

    def _save(self) -> Path | None:
        if not self.is_main:
            return None
        self.state.rng = {"torch": torch.get_rng_state()}
        train = zip(self.config.train, self.train_data.datasets, strict=True)
        val = zip(self.config.val, self.val_data, strict=True)
        metadata = {
            "data": {
                "train": [{"root": s.root, "weight": s.weight, "instances": len(d)} for s, d in train],
                "val": [{"root": s.root, "instances": len(d)} for s, d in val],
            },
            "git_commit": git_commit(),
            "metrics": self.metrics,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "world_size": self.world,
        }
        return save_checkpoint(
            self.checkpoints, self.state, config_to_dict(self.config), metadata, self.config.keep_checkpoints
        )

    def _run(self) -> dict[str, Any]:
        """Train until the configured number of epochs (or ``max_steps``); :meth:`run` calls it under the lock."""
        cfg, state = self.config, self.state
        last: dict[str, float] = {}
        history: list[dict[str, float]] = []
        pending: list[dict[str, torch.Tensor]] = []  # terms of the steps since the last read (on the device)

        def read_pending() -> dict[str, float]:
            history.extend(losses_on_host(pending))
            pending.clear()
            return history[-1] if history else {}

        while state.epoch < cfg.schedule.epochs:
            self.sampler.set_epoch(state.epoch)
            loader = DataLoader(
                self.train_data,
                batch_size=cfg.batch_size,
                sampler=_SkipSampler(self.sampler, state.step_in_epoch * cfg.batch_size),
                num_workers=cfg.num_workers,
                worker_init_fn=worker_init_fn,
                drop_last=True,
                pin_memory=self.device.type == "cuda",
            )
            disable = not self.is_main if self.progress is None else not (self.progress and self.is_main)
            bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{cfg.schedule.epochs}", unit="batch", disable=disable)
            for raw in bar:
                batch = self._batch(raw)
                if not self._every_rank_has_items(len(batch["points"])):
                    continue  # all ranks skip together: DistributedDataParallel needs the same steps everywhere
                pending.append(self.train_step(batch))
                state.step += 1
                state.step_in_epoch += 1
                if state.step % cfg.log_every == 0:  # the host reads the losses here only
                    last = read_pending()
                    lr = self.opt_r.param_groups[0]["lr"]
                    self._log({"step": state.step, "epoch": state.epoch, "lr": lr, **last})
                    bar.set_postfix(corr=f"{last['correspondence']:.4f}", cd=f"{last['chamfer']:.4f}")
                if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                    self._save()
                if self.max_steps is not None and state.step >= self.max_steps:
                    self._save()
                    last = read_pending()
                    return {"losses": last, "history": history, "metrics": self.metrics, "step": state.step}
            last = read_pending()
            self.sched_r.step()
            if cfg.adversarial:  # without the Discriminator its optimiser never steps (torch warns otherwise)
                self.sched_d.step()
            state.epoch += 1
            state.step_in_epoch = 0
            if self.val_data and state.epoch % cfg.val_every == 0:
                self.metrics = self.validate()
                self._log({"step": state.step, "epoch": state.epoch, **self.metrics})
            if state.epoch % cfg.checkpoint_every_epochs == 0 or state.epoch == cfg.schedule.epochs:
                self._save()
        if self.writer is not None:
            self.writer.close()
        return {"losses": last, "history": history, "metrics": self.metrics, "step": state.step}
