"""``acr-pose evaluate-model``: the whole pipeline over a NOCS-format split, scored with the NOCS metrics.

Examples::

    acr-pose evaluate-model --data data/synth/val --masks gt --out runs/eval_val_gt
    acr-pose evaluate-model --data data/synth/val --out runs/eval_val                   # the model's segmenter
    acr-pose evaluate-model --data /datasets/NOCS/real_test --masks /datasets/mrcnn_results/real_test --out ev

For every frame under ``--data`` (ours, NOCS-CAMERA or NOCS-REAL): masks from the model folder's segmenter
(``--masks model``, the default), the frame's ground truth (``--masks gt``) or a folder of Mask R-CNN result
pickles (``results_*_<scene>_<frame>.pkl``, SPD's ``mrcnn_results`` layout); the estimator's poses against every
labelled instance. Writes ``OUT/predictions/`` (our format, one ``.npz`` per frame) and ``OUT/predictions_spd/``
(the community's ``results_*.pkl``), both readable by ``acr-pose evaluate``; ``OUT/table.txt`` with the metrics in
both IoU modes (corrected, and legacy: the mode of published numbers), ``OUT/metrics_corrected.json``,
``OUT/metrics_legacy.json``, ``OUT/ap_curves.png`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "run the pose pipeline over a NOCS-format split and score it with the NOCS metrics (both IoU modes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder of NOCS-format frames (searched recursively)")
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped default model)")
    parser.add_argument(
        "--masks",
        default="model",
        help="model (the model folder's segmenter, default), gt (the frames' own masks), or a "
        "folder of Mask R-CNN result pickles",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--max-frames", type=int, help="only the first N frames (sorted by path)")
    parser.add_argument("--device", default="auto", help="torch device (default auto)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def frame_name(root: Path, prefix: Path) -> str:
    """``scene_1/0000`` under ``root`` → ``scene_1_0000`` (the community's result-file naming)."""
    return "_".join(prefix.relative_to(root).parts)


def _mask_file(folder: Path, name: str) -> Path:
    found = sorted(folder.glob(f"results_*{name}.pkl")) or sorted(folder.glob(f"*{name}.pkl"))
    if not found:
        raise FileNotFoundError(f"{folder}: no Mask R-CNN results file for frame {name} (results_*_{name}.pkl)")
    return found[0]


def run(args: argparse.Namespace) -> int:
    import pickle

    from tqdm.auto import tqdm

    from acr_pose_core.data import nocs_format
    from acr_pose_core.detection import detections_from_frame, read_mask_results
    from acr_pose_core.evaluation.metrics import evaluate_frames
    from acr_pose_core.evaluation.report import format_table, plot_ap_curves, write_metrics_json
    from acr_pose_core.evaluation.results_io import frame_to_dict, save_frame
    from acr_pose_core.fileio import json_text, write_atomically
    from acr_pose_core.geometry.camera import CameraIntrinsics
    from acr_pose_core.pipeline import PoseEstimator, frame_result

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    prefixes = nocs_format.list_frames(args.data)[: args.max_frames]
    if not prefixes:
        raise FileNotFoundError(f"{args.data}: no NOCS-format frames (*_color.png)")
    masks = args.masks
    mask_folder = None if masks in ("model", "gt") else Path(masks)
    if mask_folder is not None and not mask_folder.is_dir():
        raise FileNotFoundError(f"--masks {masks}: expected model, gt or a folder of result pickles")
    estimator = PoseEstimator(args.model, device=args.device)
    if masks == "model" and estimator.mask_source is None:
        raise ValueError(
            f"the model folder {estimator.model.path} has no segmenter: use --masks gt or a folder of "
            "Mask R-CNN result pickles"
        )
    predictions, spd = args.out / "predictions", args.out / "predictions_spd"
    predictions.mkdir(parents=True, exist_ok=True)
    spd.mkdir(parents=True, exist_ok=True)
    results, seconds = [], []
    for prefix in tqdm(prefixes, desc="frames", unit="frame", disable=None):
        frame = nocs_format.read_frame(prefix, with_coord=False)
        if frame.label is None:
            raise ValueError(f"{prefix}: no ground-truth label (a _label.json or _label.pkl) to evaluate against")
        name = frame_name(args.data, prefix)
        detections = None
        if masks == "gt":
            detections = detections_from_frame(frame)
        elif mask_folder is not None:
            detections = read_mask_results(_mask_file(mask_folder, name))
        H, W = frame.image_size
        start = time.perf_counter()
        estimate = estimator.estimate(
            frame.color, frame.depth, CameraIntrinsics.from_matrix(frame.label.intrinsics, W, H), masks=detections
        )
        seconds.append(time.perf_counter() - start)
        result = frame_result(frame, estimate, name)
        save_frame(predictions / f"{name}.npz", result)
        write_atomically(spd / f"results_{name}.pkl", pickle.dumps(frame_to_dict(result), protocol=4))
        results.append(result)

    sections, summary = [], {}
    for mode in ("corrected", "legacy"):
        metrics = evaluate_frames(results, iou_mode=mode)
        title = f"{args.data}: {len(results)} frames, masks {masks}, IoU {mode}"
        sections.append(format_table(metrics, title=title) + "\n\n" + format_table(metrics, accuracy=True))
        write_metrics_json(metrics, args.out / f"metrics_{mode}.json")
        if mode == "corrected" and not args.no_plots:
            plot_ap_curves(metrics, args.out / "ap_curves.png")
    table = "\n\n".join(sections)
    print(table)
    write_atomically(args.out / "table.txt", table + "\n")
    summary = {
        "data": str(args.data),
        "frames": len(results),
        "model": str(estimator.model.path),
        "masks": masks,
        "device": str(estimator.device),
        "seconds_per_frame": sum(seconds) / len(seconds),
        "objects_posed": sum(r.num_pred for r in results),
        "objects_labelled": sum(r.num_gt for r in results),
    }
    write_atomically(args.out / "summary.json", json_text(summary, indent=2) + "\n")
    print(
        f"\n[evaluate-model] {summary['objects_posed']} poses for {summary['objects_labelled']} labelled objects, "
        f"{summary['seconds_per_frame']:.2f} s a frame; wrote {args.out}"
    )
    return 0
