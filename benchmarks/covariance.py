"""Benchmark of the pose covariance (not a test): are the published covariances the size of the real errors?

Runs the estimator over a labelled split with the true masks (so every pose has its object) and compares each
pose's error with its :attr:`~acr_pose_core.pipeline.ObjectPose.covariance`: the squared Mahalanobis distance
``d² = eᵀ Σ⁻¹ e`` of the translation error (3 numbers) and, for the categories that are not y-symmetric, of the
rotation error (the rotation vector of ``R_est R_trueᵀ``). For a covariance of the right size ``d²`` follows χ²
with 3 degrees of freedom: median 2.37, 95 % of the objects inside the ellipsoid ``d² < 7.81``. The covariance
scales as ``1 / EFFECTIVE_POINTS``, so the value that would make the median translation ``d²`` right is printed
too (``pipeline.EFFECTIVE_POINTS`` is set from it).

Usage::

    python benchmarks/covariance.py [--model DIR] [--data data/default/val] [--frames 100] [--threads N]
                                    [--out benchmarks/results/covariance.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)
from scipy.spatial.transform import Rotation

from acr_pose_core.categories import Y_SYMMETRIC
from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import frame_objects
from acr_pose_core.detection import detections_from_frame
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.pipeline import EFFECTIVE_POINTS, PoseEstimator

CHI2_3_MEDIAN = 2.366
CHI2_3_95 = 7.815


def mahalanobis(error: np.ndarray, cov: np.ndarray) -> float:
    return float(error @ np.linalg.solve(cov, error))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="data/default/val")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/covariance.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    estimator = PoseEstimator(args.model, device="cpu")
    rows = []
    for prefix in nocs_format.list_frames(Path(args.data))[: args.frames]:
        frame = nocs_format.read_frame(prefix, with_coord=False)
        inst_ids = frame_objects(frame)[0]
        truth = {i.inst_id: i for i in frame.label.instances}
        H, W = frame.image_size
        camera = CameraIntrinsics.from_matrix(frame.label.intrinsics, W, H)
        estimate = estimator.estimate(frame.color, frame.depth, camera, masks=detections_from_frame(frame))
        for obj in estimate.objects:
            if not np.isfinite(obj.covariance).all():
                continue
            inst = truth[int(inst_ids[obj.detection])]
            R_true = inst.sRT[:3, :3] / np.cbrt(np.linalg.det(inst.sRT[:3, :3]))
            row = {
                "category": obj.category,
                "translation_error_m": float(np.linalg.norm(obj.translation - inst.sRT[:3, 3])),
                "d2_translation": mahalanobis(obj.translation - inst.sRT[:3, 3], obj.covariance[:3, :3]),
                "sigma_translation_m": float(np.sqrt(np.trace(obj.covariance[:3, :3]))),
            }
            if obj.category not in Y_SYMMETRIC:
                theta = Rotation.from_matrix(obj.rotation @ R_true.T).as_rotvec()
                row["rotation_error_deg"] = float(np.degrees(np.linalg.norm(theta)))
                row["d2_rotation"] = mahalanobis(theta, obj.covariance[3:, 3:])
                row["sigma_rotation_deg"] = float(np.degrees(np.sqrt(np.trace(obj.covariance[3:, 3:]))))
            rows.append(row)

    def summary(selected: list[dict]) -> dict:
        out = {"objects": len(selected)}
        for part in ("translation", "rotation"):
            d2 = np.array([r[f"d2_{part}"] for r in selected if f"d2_{part}" in r])
            if len(d2):
                unit = "m" if part == "translation" else "deg"
                out[part] = {
                    "median_d2": float(np.median(d2)),
                    "inside_95": float(np.mean(d2 < CHI2_3_95)),
                    f"median_error_{unit}": float(np.median([r[f"{part}_error_{unit}"] for r in selected
                                                             if f"d2_{part}" in r])),
                    f"median_sigma_{unit}": float(np.median([r[f"sigma_{part}_{unit}"] for r in selected
                                                             if f"d2_{part}" in r])),
                }  # fmt: skip
        return out

    categories = sorted({r["category"] for r in rows})
    table = {"all": summary(rows), **{c: summary([r for r in rows if r["category"] == c]) for c in categories}}
    print(f"{args.data}: {len(rows)} posed objects, true masks, EFFECTIVE_POINTS = {EFFECTIVE_POINTS:g}")
    print(f"{'':10s} {'n':>4s} | {'t: med d²':>9s} {'in 95%':>7s} {'med err':>8s} {'med σ':>8s} | "
          f"{'R: med d²':>9s} {'in 95%':>7s} {'med err':>8s} {'med σ':>8s}")  # fmt: skip
    for name, s in table.items():
        t, r = s.get("translation", {}), s.get("rotation")
        line = (f"{name:10s} {s['objects']:4d} | {t['median_d2']:9.2f} {100 * t['inside_95']:6.1f}% "
                f"{100 * t['median_error_m']:6.2f}cm {100 * t['median_sigma_m']:6.2f}cm |")  # fmt: skip
        if r:
            line += (f" {r['median_d2']:9.2f} {100 * r['inside_95']:6.1f}% {r['median_error_deg']:7.1f}° "
                     f"{r['median_sigma_deg']:7.1f}°")  # fmt: skip
        print(line)
    suggested = EFFECTIVE_POINTS * CHI2_3_MEDIAN / table["all"]["translation"]["median_d2"]
    print(f"(χ²₃: median 2.37, 95 % inside) EFFECTIVE_POINTS giving the χ² median for translation: {suggested:.1f}")
    write_result(
        args.out,
        {"data": args.data, "effective_points": EFFECTIVE_POINTS, "suggested_effective_points": suggested,
         "table": table},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
