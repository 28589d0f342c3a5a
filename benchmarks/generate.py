"""Benchmark of synthetic data generation (not a test): prints a table and writes JSON.

Runs ``acr_pose_core.synth.generate.generate`` with each ``--workers`` count of worker processes at 640×480 with
exactly 4 objects of the six categories per scene (plus the usual 0–3 distractors), for both sensor profiles, writing
real files to a temporary folder, and reports frames per second including scene building, rendering, the sensor
model and PNG writing (the one-off writing of the split's instance point clouds is reported apart). Target: at least
5 frames a second per core, and W workers about W times one worker's rate (each worker pins its math libraries to
one thread: ``acr_pose_core/threads.py``).

Usage::

    python benchmarks/generate.py [--frames 60] [--workers 1 2] [--out benchmarks/results/generate.json]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.synth.generate import GenerateConfig, generate
from acr_pose_core.synth.scene import SceneConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="worker counts to measure (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generate.json"))
    args = parser.parse_args(argv)

    rows = []
    for profile, workers in [(p, w) for p in ("camera", "real") for w in args.workers]:
        with tempfile.TemporaryDirectory() as tmp:
            config = GenerateConfig(
                out=Path(tmp), profile=profile, split="train", frames=args.frames, seed=0, workers=workers,
                scene=SceneConfig(objects=(4, 4)),
            )  # fmt: skip
            generate(GenerateConfig(out=Path(tmp) / "warm", split="train", frames=1), progress=False)  # imports, models
            summary = generate(config, progress=False)
            size = sum(p.stat().st_size for p in (Path(tmp) / "train").rglob("*") if p.is_file())
        rows.append(
            {
                "profile": profile,
                "workers": workers,
                "frames": summary.frames_written,
                "seconds": summary.frame_seconds,
                "frames_per_second": summary.frames_written / summary.frame_seconds,
                "frames_per_second_per_worker": summary.frames_written / summary.frame_seconds / workers,
                "instance_models_seconds": summary.seconds - summary.frame_seconds,
                "megabytes_per_frame": size / summary.frames_written / 1e6,
            }
        )
    print("acr-pose generate, 640x480, 4 objects + 0-3 distractors per scene, 10 views per scene")
    print(
        f"{'profile':>8} {'workers':>7} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'per worker':>11} {'MB/frame':>9}"
    )
    for r in rows:
        print(
            f"{r['profile']:>8} {r['workers']:>7} {r['frames']:>7} {r['seconds']:>8.1f} {r['frames_per_second']:>9.2f} "
            f"{r['frames_per_second_per_worker']:>11.2f} {r['megabytes_per_frame']:>9.2f}"
        )
    print("target: >= 5 frames/s per core")
    write_result(args.out, {"generate": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
