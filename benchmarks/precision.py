"""What bf16 costs in accuracy and gains in time (not a test): prints a table and writes JSON.

The same model folder (default: the shipped default) evaluated twice on the same NOCS-format frames with their own
masks (``acr-pose evaluate-model --masks gt``), once in float32 and once with the Reconstructor under bf16 autocast
(``PoseEstimator(precision="bfloat16")``: the layers in bf16, the geometry, graphs and outputs in float32). Reports
the NOCS metrics of both, the seconds per frame, and, object by object, how far the bf16 pose moved from the float32
one: rotation (degrees; about the y axis ignored for bottle, bowl and can), translation (cm), relative scale and
size change.

Usage::

    python benchmarks/precision.py --data data/default/val [--model DIR] [--device cpu|cuda] [--max-frames N]
                                   [--out benchmarks/results/precision_<device>.json]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.categories import is_y_symmetric
from acr_pose_core.cli.evaluate_model import evaluate_model
from acr_pose_core.evaluation.metrics import SUMMARY_METRICS
from acr_pose_core.evaluation.results_io import load_results
from acr_pose_core.geometry.rotations import decompose_sRT, pose_errors
from acr_pose_core.pipeline import PRECISIONS, PoseEstimator

METRICS = tuple(SUMMARY_METRICS)  # IoU25 ... 10°5cm


def pose_changes(reference: list, other: list) -> dict[str, np.ndarray]:
    """Per object (matched by frame and order; both runs pose the same detections), how far ``other`` moved."""
    rotation, translation, scale, size = [], [], [], []
    for a, b in zip(reference, other, strict=True):
        if a.name != b.name or not np.array_equal(a.pred_class_ids, b.pred_class_ids):
            raise ValueError(f"{a.name}: the two runs posed different objects")
        for class_id, sRT_a, sRT_b, size_a, size_b in zip(
            a.pred_class_ids, a.pred_sRT, b.pred_sRT, a.pred_size, b.pred_size, strict=True
        ):
            deg, cm = pose_errors(sRT_b, sRT_a, y_symmetric=bool(is_y_symmetric(np.array([class_id]))[0]))
            s_a, s_b = decompose_sRT(sRT_a)[0], decompose_sRT(sRT_b)[0]
            rotation.append(deg)
            translation.append(cm)
            scale.append(abs(s_b / s_a - 1))
            size.append(np.abs(size_b / size_a - 1).max())
    changes = {"rotation_deg": rotation, "translation_cm": translation, "scale_rel": scale, "size_rel": size}
    return {k: np.asarray(v, dtype=np.float64) for k, v in changes.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NOCS-format frames with labels")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path(f"benchmarks/results/precision_{torch.device(args.device).type}.json")

    runs, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in PRECISIONS:
            estimator = PoseEstimator(args.model, device=args.device, precision=precision)
            folder = Path(tmp) / precision
            summary = evaluate_model(estimator, args.data, "gt", folder, args.max_frames, plots=False)
            runs[precision] = {
                "seconds_per_frame": summary["seconds_per_frame"],
                "objects_posed": summary["objects_posed"],
                "ap_corrected": {m: summary["metrics"]["corrected"]["ap"][m]["mean"] for m in METRICS},
            }
            results[precision] = load_results(folder / "predictions", "acr")
    changes = pose_changes(results["float32"], results["bfloat16"])

    frames = len(results["float32"])
    print(f"{args.data}: {frames} frames, true masks, {args.device}; mean AP (corrected IoU), %")
    print(f"{'precision':<10} {'s/frame':>8} {'posed':>6} " + " ".join(f"{m:>7}" for m in METRICS))
    for precision, run in runs.items():
        aps = " ".join(f"{100 * run['ap_corrected'][m]:>7.1f}" for m in METRICS)
        print(f"{precision:<10} {run['seconds_per_frame']:>8.3f} {run['objects_posed']:>6} {aps}")
    print(f"\nbf16 against float32, per object ({len(changes['rotation_deg'])} objects): median / max")
    for key, values in changes.items():
        print(f"  {key:<15} {np.median(values):>10.4f} / {values.max():.4f}")
    result = {
        "data": str(args.data),
        "frames": frames,
        "device": args.device,
        "runs": runs,
        "bf16_vs_float32": {k: {"median": float(np.median(v)), "max": float(v.max())} for k, v in changes.items()},
    }
    write_result(out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
