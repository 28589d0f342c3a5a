"""Benchmark of training throughput end to end (not a test): prints a table and writes JSON.

The real :class:`~acr_pose_core.training.trainer.Trainer` (loader workers, batches to the device, the alternating
Reconstructor and Discriminator updates, log reads) on NOCS-format frames, for ``--steps`` steps of a training
configuration; samples a second over the steps after ``--warmup`` (worker start-up, library initialisation and
autotuning excluded). The clock starts and stops with a device synchronisation, and nothing else in between is
added to what the trainer itself waits for (it reads its losses every ``log_every`` steps), so the rate is what a
real run gets. Validation and checkpoints (one, after the last step) are left out of the timing.

``benchmarks/model.py`` times the update alone on a synthetic batch; the difference between the two is what the
loader and the trainer's own work cost.

Usage::

    python benchmarks/train.py --data DIR [--config config/train_default_gpu.yaml] [--steps 30] [--warmup 5]
                               [--set KEY=VALUE ...] [--out benchmarks/results/train.json]

On a CPU, shrink the model (e.g. ``--config config/train_tiny.yaml``): a paper-size step takes about 90 s there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.settings import config_to_dict
from acr_pose_core.training.config import load_train_config
from acr_pose_core.training.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="a NOCS-format split to train on (e.g. data/gpu_frames/test)"
    )
    parser.add_argument("--config", type=Path, default=Path("config/train_default_gpu.yaml"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train.json"))
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.steps:
        raise SystemExit("need 0 < --warmup < --steps")
    settings = [f"train=[{{root: {args.data}}}]", "val=[]", "checkpoint_every=0", *args.overrides]
    settings.append(f"samples_per_epoch={(args.steps + 1) * load_train_config(args.config, settings).batch_size}")
    config = load_train_config(args.config, settings)

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out) / "run", progress=False, max_steps=args.steps)
        device, step = trainer.device, trainer.train_step
        marks: dict[str, float] = {}
        calls = 0

        def timed_step(batch):
            nonlocal calls
            calls += 1
            if calls == args.warmup + 1:  # the clock starts when the warm-up steps have finished on the device
                _sync(device)
                marks["start"] = time.perf_counter()
            result = step(batch)
            if calls == args.steps:
                _sync(device)
                marks["stop"] = time.perf_counter()
            return result

        trainer.train_step = timed_step  # type: ignore[method-assign]
        started = time.perf_counter()
        trainer.run()
        total = time.perf_counter() - started
    steps = args.steps - args.warmup
    seconds = (marks["stop"] - marks["start"]) / steps
    samples = config.batch_size / seconds
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"{'device':<8} {'batch':>5} {'workers':>7} {'s/step':>8} {'samples/s':>10} {'peak GiB':>9}")
    print(
        f"{device.type:<8} {config.batch_size:>5} {config.num_workers:>7} {seconds:>8.3f} {samples:>10.1f} {peak:>9.2f}"
    )
    print(f"({steps} timed steps after {args.warmup} warm-up steps; the whole run with start-up {total:.1f} s)")
    write_result(args.out, {"config": str(args.config), "overrides": args.overrides, "data": str(args.data),
                            "device": str(device), "amp_bf16": trainer.amp, "timed_steps": steps,
                            "warmup_steps": args.warmup, "seconds_per_step": seconds, "samples_per_second": samples,
                            "peak_gib": peak, "run_seconds": total, "settings": config_to_dict(config)})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
