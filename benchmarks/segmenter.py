"""Benchmark of the instance segmenter (not a test): recall and precision per category, prints tables, writes JSON.

A detection is right when its mask IoU with an object of its category is ≥ 0.5 (``evaluation.instance_ap.
recall_precision``). On the frames of ``--data`` (default: the model card's CAMERA-like val split): mask AP50 and AP,
box AP50 (every detection down to score 0.05), overall recall and precision at a sweep of score thresholds, the
per-category table at the operating threshold, and how many objects have a good mask at some score under any class
(found but misnamed). ``--choose-on DIR`` also runs the frames of another split and picks the threshold of highest
F1 there (the operating threshold must not be chosen on the split that reports the scores).

Usage::

    python benchmarks/segmenter.py [--model DIR | --detector-run RUN] [--data data/default/val] [--frames 100]
                                   [--threshold T] [--choose-on data/threshold/test] [--threads N]
                                   [--out benchmarks/results/segmenter.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import frame_objects
from acr_pose_core.evaluation.instance_ap import FrameInstances, instance_ap, mask_iou, recall_precision
from acr_pose_core.model_folder import load_model_folder
from acr_pose_core.models.segmenter import build_segmenter, predict_instances
from acr_pose_core.training.checkpoint import checkpoint_json, load_module_weights
from acr_pose_core.training.detector import load_detector_config

SWEEP = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SCORE = 0.05


def load(args):
    """(model, config, description) from a model folder or a detector run's newest checkpoint."""
    if args.detector_run:
        path = checkpoint_json(Path(args.detector_run))
        import json

        document = json.loads(path.read_text(encoding="utf-8"))
        config = load_detector_config(tree=document["config"], where=str(path)).segmenter
        model = build_segmenter(config)
        load_module_weights(path, model, "segmenter")
        return model.eval(), config, f"{path} (step {document.get('step')})"
    loaded = load_model_folder(args.model)
    if loaded.segmenter is None:
        raise SystemExit(f"error: {loaded.path} has no segmenter")
    return loaded.segmenter, loaded.segmenter_config, str(loaded.path)


@torch.no_grad()
def predict(model, config, root: Path, frames: int):
    """Predictions (score ≥ MIN_SCORE) and truths of ``frames`` frames spread evenly over the split (scenes differ
    more than their views), and the seconds a frame."""
    model.roi_heads.score_thresh = MIN_SCORE
    predictions, truths, seconds = [], [], []
    every = nocs_format.list_frames(root)
    picked = np.unique(np.linspace(0, len(every) - 1, min(frames, len(every))).round().astype(int)) if every else []
    for prefix in [every[i] for i in picked]:
        frame = nocs_format.read_frame(prefix, with_coord=False)
        _, class_ids, masks, boxes = frame_objects(frame)
        image = torch.from_numpy(np.ascontiguousarray(frame.color.transpose(2, 0, 1))).float() / 255
        start = time.perf_counter()
        predictions.append(predict_instances(model, image, config, MIN_SCORE))
        seconds.append(time.perf_counter() - start)
        truths.append(FrameInstances(class_ids, np.ones(len(class_ids)), boxes, masks))
    return predictions, truths, seconds


def found_any_class(predictions, truths) -> tuple[int, int]:
    """Objects with some detection (any class, any score ≥ MIN_SCORE) of mask IoU ≥ 0.5, and all objects."""
    found = total = 0
    for pred, gt in zip(predictions, truths, strict=True):
        total += len(gt.class_ids)
        if len(gt.class_ids) and len(pred.class_ids):
            found += int((mask_iou(pred.masks, gt.masks).max(0) >= 0.5).sum())
    return found, total


def f1(rates: dict) -> float:
    r, p = rates["recall"], rates["precision"]
    return 0.0 if not (r + p > 0) or np.isnan(r + p) else 2 * r * p / (r + p)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    source.add_argument("--detector-run", type=Path, default=None, help="a train-detector run (newest checkpoint)")
    parser.add_argument("--data", type=Path, default=Path("data/default/val"))
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=None, help="operating score (default: the model's)")
    parser.add_argument("--choose-on", type=Path, default=None, help="frames on which to choose the threshold")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/segmenter.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config, described = load(args)
    result: dict = {"model": described, "data": str(args.data)}

    chosen = None
    if args.choose_on is not None:
        predictions, truths, _ = predict(model, config, args.choose_on, args.frames)
        sweep = {t: recall_precision(predictions, truths, t)["all"] for t in SWEEP}
        chosen = max(SWEEP, key=lambda t: (f1(sweep[t]), t))
        result["choice"] = {"data": str(args.choose_on), "frames": len(truths), "threshold": chosen,
                            "sweep": {str(t): r for t, r in sweep.items()}}  # fmt: skip
        print(f"threshold of highest F1 on {args.choose_on} ({len(truths)} frames): {chosen}")
    threshold = (
        args.threshold if args.threshold is not None else chosen if chosen is not None else config.score_threshold
    )

    predictions, truths, seconds = predict(model, config, args.data, args.frames)
    if not truths:
        raise SystemExit(f"error: no frames under {args.data}")
    mask = instance_ap(predictions, truths, "mask")
    box = instance_ap(predictions, truths, "box")
    found, total = found_any_class(predictions, truths)
    sweep = {t: recall_precision(predictions, truths, t)["all"] for t in SWEEP}
    at = recall_precision(predictions, truths, threshold)
    result.update(
        frames=len(truths), objects=total, threshold=threshold,
        mask_AP50=mask["AP50"], mask_AP=mask["AP"], box_AP50=box["AP50"],
        per_category_mask_AP50={c: mask[f"{c}/AP50"] for c in CATEGORIES},
        good_mask_any_class=found, sweep={str(t): r for t, r in sweep.items()}, at_threshold=at,
        seconds_per_frame_median=float(np.median(seconds)), threads=torch.get_num_threads(),
    )  # fmt: skip

    print(f"\n{described} on {args.data}: {len(truths)} frames, {total} objects")
    print(f"mask AP50 {100 * mask['AP50']:.1f}, mask AP {100 * mask['AP']:.1f}, box AP50 {100 * box['AP50']:.1f}")
    print(f"objects with a mask of IoU >= 0.5 at some score (any class): {found} of {total}")
    print(f"segmenter {1000 * np.median(seconds):.0f} ms a frame (median, {torch.get_num_threads()} threads)\n")
    print("| score >= | recall % | precision % | F1 % | detections |")
    print("|---|---|---|---|---|")
    for t, r in sweep.items():
        rates = f"{100 * r['recall']:.1f} | {100 * r['precision']:.1f} | {100 * f1(r):.1f}"
        print(f"| {t:.2f} | {rates} | {r['detections']} |")
    print(f"\nat the operating threshold {threshold}:\n")
    print("| category | objects | recall % | precision % | mask AP50 % |")
    print("|---|---|---|---|---|")
    for name in (*CATEGORIES, "all"):
        r = at[name]
        ap = mask["AP50"] if name == "all" else mask[f"{name}/AP50"]
        print(f"| {name} | {r['objects']} | {100 * r['recall']:.1f} | {100 * r['precision']:.1f} | {100 * ap:.1f} |")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
