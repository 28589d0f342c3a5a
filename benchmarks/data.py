"""Benchmark of the training data pipeline (not a test): prints a table and writes JSON.

How fast :class:`~acr_pose_core.data.dataset.PoseDataset` turns NOCS-format frames into training items (paper
configuration: 1024 points, 192×192 crops, with augmentation), in one process and through a ``DataLoader`` with
``--workers`` worker processes. Training at the H100 target of 1,000 samples a second needs the loader to keep up:
the table says how many workers that takes at the measured per-process rate.

Each item reads its whole frame (colour, depth, mask and coordinate PNGs), so the rate is set by PNG decoding. Two
orders of the training sampler (``RatioSampler``): random, as training draws by default, and grouped by frame
(``group_by_frame``), where the dataset's frame cache decodes each frame once for all its objects.

Usage::

    python benchmarks/data.py [--data DIR] [--items 64] [--workers 2] [--out benchmarks/results/data.json]

Without ``--data`` it renders 16 camera-profile frames into a temporary folder first (about 5 s a core).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)
from torch.utils.data import ConcatDataset, DataLoader, Subset

from acr_pose_core.data.dataset import DatasetConfig, PoseDataset, RatioSampler
from acr_pose_core.data.priors import load_priors
from acr_pose_core.threads import worker_init_fn

TARGET_SAMPLES_PER_S = 1000.0
BATCH = 32


def _rate(dataset, items: int, workers: int, batch: int) -> float:
    """Items per second through a DataLoader (workers = 0: in this process), after one warm-up batch."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False, worker_init_fn=worker_init_fn)
    it = iter(loader)
    next(it)
    start, count = time.perf_counter(), 0
    for batch_items in it:
        count += len(batch_items["points"])
    return count / (time.perf_counter() - start) if count else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a split folder of NOCS-format frames (default: render 16 frames)")
    parser.add_argument("--items", type=int, default=64, help="items to time (default 64)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            from acr_pose_core.synth.generate import GenerateConfig, generate

            frames = GenerateConfig(out=Path(tmp), split="train", frames=16, frames_per_scene=4, seed=0)
            generate(frames, progress=False)
            root = Path(tmp) / "train"
        config = DatasetConfig(augment=True)  # the paper's sizes: 1024 points, 192×192 crops
        priors = load_priors().resampled(1024).points
        dataset = PoseDataset(root, priors, config)
        if len(dataset) == 0:
            raise SystemExit(f"{root}: no instances")
        # two epoch orders of the training sampler, a batch-size worth of warm-up plus the items to time
        orders = {}
        for grouped in (False, True):
            sampler = RatioSampler(ConcatDataset([dataset]), [1.0], args.items + BATCH, group_by_frame=grouped)
            orders["grouped by frame" if grouped else "random"] = sampler.epoch_indices().tolist()
        rates = {}
        for name, index in orders.items():
            data = Subset(dataset, index)
            one = _rate(data, args.items, workers=0, batch=BATCH)
            many = _rate(data, args.items, workers=args.workers, batch=BATCH) if args.workers > 0 else math.nan
            rates[name] = {"items_per_s_one_process": one, "items_per_s_with_workers": many,
                           "workers_for_1000_per_s": math.ceil(TARGET_SAMPLES_PER_S / one)}  # fmt: skip

    rows = {
        "data": str(args.data) if args.data else "16 rendered camera-profile frames",
        "instances": len(dataset),
        "frames": len(dataset.frame_groups()),
        "workers": args.workers,
        "batch": BATCH,
        "orders": rates,
    }
    print(
        f"PoseDataset, paper sizes (1024 points, 192x192 crops, augmentation), {len(dataset)} instances in "
        f"{rows['frames']} frames, batches of {BATCH}"
    )
    print(f"{'order':<18} {'1 process':>10} {'ms/item':>8} {f'{args.workers} workers':>10} {'workers for 1000/s':>19}")
    for name, r in rates.items():
        one = r["items_per_s_one_process"]
        print(
            f"{name:<18} {one:>10.1f} {1e3 / one:>8.1f} {r['items_per_s_with_workers']:>10.1f} "
            f"{r['workers_for_1000_per_s']:>19}"
        )
    write_result(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
