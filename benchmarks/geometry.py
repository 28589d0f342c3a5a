"""Benchmark of the geometry and evaluation core (not a test): prints a table and writes JSON.

Measures, on one CPU thread:

1. RANSAC-Umeyama for a frame of 6 objects × 1024 points at several outlier fractions, batched (all objects and
   hypotheses at once) against a loop of single-object RANSAC: the sequential reference loop (one hypothesis at a
   time, as the NOCS/SPD aligners run) and our batched function called once per object.
   Targets: batched under 5 ms per frame, and at least 20× faster than the sequential loop. "sync-free" is the
   GPU path's setting run here (all 128 hypotheses in one chunk, Horn's quaternion fits instead of SVDs). And the
   ATen operators a call dispatches (``benchmarks/_operators.py``), with the CPU's settings and a GPU's (run on the
   ``meta`` device, which takes the GPU's choices without a GPU).
2. The NOCS evaluation of 2,750 frames × 6 objects (the size of NOCS-REAL test) at the full threshold grid
   (101 IoU × 62 rotation × 22 translation thresholds), both IoU modes. Target: under 20 s.

Usage::

    python benchmarks/geometry.py [--out benchmarks/results/geometry.json] [--repeats 30] [--frames 2750]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _operators import count_operators  # benchmarks/_operators.py
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.evaluation import evaluate_frames, make_example_frames
from acr_pose_core.geometry import random_rotations, ransac_umeyama
from acr_pose_core.geometry.ransac import _ransac_umeyama_reference, draw_minimal_samples, ransac_uniforms


def make_frame(rng: np.random.Generator, outliers: float, B: int = 6, N: int = 1024):
    """NOCS points of B objects and their noisy camera-frame observations with a fraction of gross outliers."""
    R = random_rotations(B, rng)
    s = rng.uniform(0.1, 0.4, B)
    t = np.stack([rng.uniform(-0.3, 0.3, B), rng.uniform(-0.2, 0.2, B), rng.uniform(0.6, 1.2, B)], 1)
    nocs = rng.uniform(-0.5, 0.5, (B, N, 3))
    obs = s[:, None, None] * np.einsum("bij,bnj->bni", R, nocs) + t[:, None] + rng.normal(0, 0.003, (B, N, 3))
    bad = rng.random((B, N)) < outliers
    obs[bad] += rng.normal(0, 0.1, (int(bad.sum()), 3))
    return nocs.astype(np.float32), obs.astype(np.float32)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def bench_ransac(repeats: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for outliers in (0.1, 0.2, 0.4):
        nocs, obs = make_frame(rng, outliers)
        B, N, _ = nocs.shape
        batched = median_ms(lambda x=nocs, y=obs: ransac_umeyama(x, y, seed=0), repeats)
        # the GPU settings (one chunk of 128 hypotheses, quaternion fits: no host synchronisation) on the CPU
        sync_free = median_ms(
            lambda x=nocs, y=obs: ransac_umeyama(x, y, seed=0, chunk_size=None, solver="quaternion"), repeats
        )
        per_object = median_ms(
            lambda x=nocs, y=obs: [ransac_umeyama(x[b], y[b], seed=0) for b in range(len(x))], repeats
        )
        samples = draw_minimal_samples(torch.ones(B, N, dtype=torch.bool), ransac_uniforms(B, 0), 5)
        samples = samples.numpy()
        x64, y64 = nocs.astype(np.float64), obs.astype(np.float64)
        sequential = median_ms(
            lambda x=x64, y=y64, h=samples: [_ransac_umeyama_reference(x[b], y[b], h[b]) for b in range(len(x))],
            max(3, repeats // 5),
        )
        res = ransac_umeyama(nocs, obs, seed=0)
        # operators dispatched (views excluded): on the CPU with its settings, and with a GPU's choices (meta device:
        # one chunk, quaternion fits, parallel Jacobi), a lower bound of the kernels a GPU would launch
        x_t, y_t = torch.from_numpy(nocs), torch.from_numpy(obs)
        operators_cpu, _ = count_operators(lambda x=x_t, y=y_t: ransac_umeyama(x, y, seed=0))
        operators_gpu, _ = count_operators(lambda x=x_t, y=y_t: ransac_umeyama(x.to("meta"), y.to("meta"), seed=0))
        operators_cyclic, _ = count_operators(
            lambda x=x_t, y=y_t: ransac_umeyama(x, y, seed=0, chunk_size=None, solver="quaternion")
        )
        rows.append(
            {
                "outlier_fraction": outliers,
                "objects": B,
                "points": N,
                "hypotheses_mean": float(np.mean(res.num_hypotheses)),
                "batched_ms": batched,
                "sync_free_ms": sync_free,
                "operators_cpu_settings": operators_cpu,
                "operators_gpu_settings": operators_gpu,
                "operators_gpu_settings_cyclic_jacobi": operators_cyclic,
                "per_object_calls_ms": per_object,
                "sequential_loop_ms": sequential,
                "speedup_vs_sequential": sequential / batched,
                "speedup_vs_per_object_calls": per_object / batched,
            }
        )
    return rows


def bench_evaluation(frames_count: int) -> list[dict]:
    frames = make_example_frames(frames_count, seed=0, objects_per_frame=6)
    rows = []
    for mode in ("corrected", "legacy"):
        start = time.perf_counter()
        metrics = evaluate_frames(frames, iou_mode=mode)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "iou_mode": mode,
                "frames": frames_count,
                "ground_truth": int(metrics.num_gt.sum()),
                "predictions": int(metrics.num_pred.sum()),
                "seconds": seconds,
                "mean_IoU50": float(metrics.iou_at(0.5)[-1]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/geometry.json"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--frames", type=int, default=2750)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    ransac = bench_ransac(args.repeats)
    print("RANSAC-Umeyama, one frame of 6 objects x 1024 points, float32, 1 CPU thread (median)")
    print(
        f"{'outliers':>8} {'hyp/obj':>8} {'batched ms':>11} {'sync-free ms':>13} {'per-object calls ms':>20} "
        f"{'sequential ms':>14} "
        f"{'vs sequential':>14} {'vs per-object':>14}"
    )
    for r in ransac:
        print(
            f"{r['outlier_fraction']:>8.0%} {r['hypotheses_mean']:>8.1f} {r['batched_ms']:>11.2f} "
            f"{r['sync_free_ms']:>13.2f} "
            f"{r['per_object_calls_ms']:>20.2f} {r['sequential_loop_ms']:>14.1f} "
            f"{r['speedup_vs_sequential']:>13.1f}x {r['speedup_vs_per_object_calls']:>13.1f}x"
        )
    print("targets: batched < 5 ms; >= 20x faster than the sequential loop")
    print(
        "operators a call (views excluded; a GPU launches at least this many kernels): CPU settings "
        + " / ".join(str(r["operators_cpu_settings"]) for r in ransac)
        + ", GPU settings (meta device) "
        + " / ".join(str(r["operators_gpu_settings"]) for r in ransac)
        + ", GPU settings with the cyclic Jacobi "
        + " / ".join(str(r["operators_gpu_settings_cyclic_jacobi"]) for r in ransac)
        + "\n"
    )

    evaluation = bench_evaluation(args.frames)
    print("NOCS evaluation, full threshold grid (101 IoU x 62 rotation x 22 translation), 1 CPU thread")
    print(f"{'IoU mode':>10} {'frames':>7} {'objects':>8} {'predictions':>12} {'seconds':>8}")
    for r in evaluation:
        print(
            f"{r['iou_mode']:>10} {r['frames']:>7} {r['ground_truth']:>8} {r['predictions']:>12} {r['seconds']:>8.2f}"
        )
    print("target: < 20 s for 2,750 frames x 6 objects")

    result = {
        "ransac": ransac,
        "evaluation": evaluation,
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
