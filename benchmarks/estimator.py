"""Benchmark of the per-frame pipeline (not a test): prints a table and writes JSON.

The shipped default model folder (or ``--model``) on generated 640×480 frames of the camera profile (test-split
instances): per frame, the segmenter (when the folder has one), the model inputs, the Reconstructor batch and the
batched RANSAC-Umeyama, timed together by ``PoseEstimator.estimate`` with the segmenter's masks and with the true
masks (no segmenter). Median and 90th percentile over the frames, after one warm-up frame. Then the same frames
stage by stage, through the estimator's own steps (each followed by a device synchronisation on a GPU): frame
checks, segmenter, model inputs (crops, back-projection, sampling), the batch on the device, the Reconstructor,
the alignment; medians in milliseconds.

Usage::

    python benchmarks/estimator.py [--model DIR] [--device cpu|cuda] [--frames 10] [--threads N] [--data DIR]
                                   [--precision float32|bfloat16] [--object-buckets 1 2 4 ...] [--cuda-graphs]
                                   [--out benchmarks/results/estimator.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.data import nocs_format
from acr_pose_core.detection import detections_from_frame
from acr_pose_core.pipeline import PRECISIONS, PoseEstimator, check_frame


def stage_times(estimator: PoseEstimator, frames: list, device: str) -> dict[str, float]:
    """Median milliseconds of each step of ``estimate`` over ``frames[1:]`` (frame 0 warms up)."""
    times: dict[str, list[float]] = {}

    def step(name: str, fn):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.setdefault(name, []).append(1e3 * (time.perf_counter() - start))
        return value

    with torch.no_grad():
        for i, frame in enumerate(frames):
            checked = step("frame checks", lambda f=frame: check_frame(f.color, f.depth, f.label.intrinsics))
            if estimator.mask_source is not None:
                masks = step(
                    "segmenter",
                    lambda c=checked: estimator.mask_source(c.rgb, c.depth_metres, c.intrinsics),
                )
            else:
                masks = detections_from_frame(frame)
            if not len(masks):
                continue
            objects = step("model inputs", lambda c=checked, m=masks: estimator.inputs(c, m))
            batch = step("batch to device", lambda o=objects, m=masks: estimator.batch(o, m.class_ids))
            if estimator.object_buckets is not None:  # padded (and graphed): one step, the results on the host
                step("reconstructor + alignment (padded)", lambda b=batch: estimator.run_batch(b))
                continue
            out = step("reconstructor", lambda b=batch: estimator.reconstruct(*b[:4]))
            step("alignment", lambda b=batch, o=out: estimator.align(o, b[0], b[4]).sRT.cpu())
            if i == 0:
                times.clear()
    return {name: float(np.median(ms)) for name, ms in times.items()}


def compare(estimator: PoseEstimator, eager: PoseEstimator, frames: list) -> dict[str, float]:
    """The largest differences between two estimators' answers on ``frames`` with their true masks."""
    worst = {"objects": 0, "max_sRT_difference": 0.0, "max_nocs_difference": 0.0, "status_differs": 0}
    for frame in frames:
        masks = detections_from_frame(frame)
        a = estimator.estimate(frame.color, frame.depth, frame.label.intrinsics, masks=masks)
        b = eager.estimate(frame.color, frame.depth, frame.label.intrinsics, masks=masks)
        posed_a, posed_b = {o.detection: o for o in a.objects}, {o.detection: o for o in b.objects}
        worst["objects"] += len(masks)
        worst["status_differs"] += len(set(posed_a) ^ set(posed_b))
        for k in set(posed_a) & set(posed_b):
            sRT = float(np.abs(posed_a[k].sRT - posed_b[k].sRT).max())
            nocs = float(np.abs(posed_a[k].nocs - posed_b[k].nocs).max())
            worst["max_sRT_difference"] = max(worst["max_sRT_difference"], sRT)
            worst["max_nocs_difference"] = max(worst["max_nocs_difference"], nocs)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--data",
        type=Path,
        help="read the frames from this folder of NOCS-format frames with labels (the first FRAMES + 1 by path) "
        "instead of rendering them (rendering needs trimesh and embreex, which a GPU machine may lack)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument(
        "--object-buckets",
        type=int,
        nargs="+",
        help="pad each frame's objects to these counts (PoseEstimator(object_buckets=...)); with --cuda-graphs the "
        "default is pipeline.OBJECT_BUCKETS",
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="replay the device step from CUDA graphs (CUDA only); the frames are run once untimed first (the "
        "captures), and the poses are compared with an eager estimator's",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/estimator.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    estimator = PoseEstimator(
        args.model,
        device=args.device,
        precision=args.precision,
        object_buckets=None if args.object_buckets is None else tuple(args.object_buckets),
        cuda_graphs=args.cuda_graphs,
    )
    static = estimator.object_buckets is not None
    if args.data is not None:
        prefixes = nocs_format.list_frames(args.data)[: args.frames + 1]
        if len(prefixes) < 2:
            raise SystemExit(f"{args.data}: fewer than 2 NOCS-format frames")
        frames = [nocs_format.read_frame(prefix, with_coord=False) for prefix in prefixes]
    else:
        from acr_pose_core.synth.generate import GenerateConfig, scene_frame  # needs trimesh and embreex

        frames = [scene_frame(GenerateConfig(out=Path("."), split="test", seed=s)) for s in range(args.frames + 1)]
    rows = {}
    modes = (["segmenter"] if estimator.mask_source is not None else []) + ["true masks"]
    against_eager = None
    if static:  # every object count seen once (graphs captured), and the poses against the eager estimator's
        eager = PoseEstimator(args.model, device=args.device, precision=args.precision)
        against_eager = compare(estimator, eager, frames)
        print(
            f"against the eager estimator (true masks, {against_eager['objects']} objects): max |ΔsRT| "
            f"{against_eager['max_sRT_difference']:.2e}, max |Δnocs| {against_eager['max_nocs_difference']:.2e}, "
            f"{against_eager['status_differs']} posed/dropped differently"
        )
    for mode in modes:
        seconds, objects = [], []
        for i, frame in enumerate(frames):
            masks = detections_from_frame(frame) if mode == "true masks" else None
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = estimator.estimate(frame.color, frame.depth, frame.label.intrinsics, masks=masks)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:  # frame 0 warms up
                seconds.append(time.perf_counter() - start)
                objects.append(len(result.objects))
        rows[mode] = {"median_s": float(np.median(seconds)), "p90_s": float(np.percentile(seconds, 90)),
                      "objects_per_frame": float(np.mean(objects)), "frames": len(seconds)}  # fmt: skip
    print(f"{'masks':<12} {'median (s)':>10} {'p90 (s)':>8} {'objects/frame':>14}")
    for mode, row in rows.items():
        print(f"{mode:<12} {row['median_s']:>10.3f} {row['p90_s']:>8.3f} {row['objects_per_frame']:>14.1f}")
    stages = stage_times(estimator, frames, args.device)
    print("\nstages (median ms): " + ", ".join(f"{name} {ms:.1f}" for name, ms in stages.items()))
    write_result(args.out, {"model": str(estimator.model.path), "device": args.device, "precision": args.precision,
                            "object_buckets": estimator.object_buckets, "cuda_graphs": estimator.cuda_graphs,
                            "against_eager": against_eager, "frames_from": str(args.data or "rendered"),
                            "threads": torch.get_num_threads(), "rows": rows, "stages_ms": stages})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
