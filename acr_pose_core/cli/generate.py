"""``acr-pose generate``: render a synthetic data set of the six NOCS categories in the NOCS on-disk format.

Examples::

    acr-pose generate --profile camera --split train --frames 2000 --out data/synth --workers 2
    acr-pose generate --profile real --split test --frames 200 --out data/synth_real --seed 1

Running the same command again completes an interrupted run (frames already written are kept); the output is the
same for a seed whatever the number of workers. See :mod:`acr_pose_core.synth.generate` for the layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render a synthetic NOCS-format RGB-D data set (procedural objects of the six categories)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output root (created if missing)")
    parser.add_argument(
        "--profile",
        choices=("camera", "real"),
        default="camera",
        help="camera: NOCS-CAMERA intrinsics, exact depth; real: NOCS-REAL intrinsics and a depth-sensor model",
    )
    parser.add_argument("--split", choices=("train", "val", "test"), default="train", help="instance split")
    parser.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    parser.add_argument("--frames-per-scene", type=int, default=10, help="views of each scene (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.synth.generate import GenerateConfig, generate

    config = GenerateConfig(
        out=args.out,
        profile=args.profile,
        split=args.split,
        frames=args.frames,
        frames_per_scene=args.frames_per_scene,
        seed=args.seed,
        workers=args.workers,
    )
    summary = generate(config, progress=None)
    rate = summary.frames_written / summary.frame_seconds if summary.frame_seconds > 0 else 0.0
    print(
        f"[generate] {config.out / config.split}: {summary.frames_written} frames written, "
        f"{summary.frames_skipped} already there, {summary.seconds:.1f} s ({rate:.1f} frames/s)"
    )
    return 0
