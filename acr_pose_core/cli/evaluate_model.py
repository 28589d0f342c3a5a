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
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="the Reconstructor's layers in float32 (default) or under bf16 autocast",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def frame_name(root: Path, prefix: Path) -> str:
    """``scene_1/0000`` under ``root`` → ``scene_1_0000`` (the community's result-file naming)."""
    return "_".join(prefix.relative_to(root).parts)


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.pipeline import PoseEstimator

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    estimator = PoseEstimator(args.model, device=args.device, precision=args.precision)
    summary = evaluate_model(estimator, args.data, args.masks, args.out, args.max_frames, not args.no_plots)
    print(summary["table"])
    print(
        f"\n[evaluate-model] {summary['objects_posed']} poses for {summary['objects_labelled']} labelled objects, "
        f"{summary['seconds_per_frame']:.2f} s a frame; wrote {args.out}"
    )
    return 0


def evaluate_model(
    estimator,
    data: Path,
    masks: str,
    out: Path,
    max_frames: int | None = None,
    plots: bool = True,
    progress: bool | None = None,
) -> dict:
    """Run ``estimator`` over the frames under ``data`` and write everything into ``out`` (module docstring);
    returns the summary (also ``out/summary.json``) with ``metrics`` (``{"corrected": ..., "legacy": ...}``, as in
    the metrics files) and the text ``table``."""
    import pickle

    from tqdm.auto import tqdm

    from acr_pose_core.data import nocs_format
    from acr_pose_core.detection import detections_from_frame, mask_results_file, read_mask_results
    from acr_pose_core.evaluation.metrics import evaluate_frames
    from acr_pose_core.evaluation.report import format_table, metrics_to_dict, plot_ap_curves, write_metrics_json
    from acr_pose_core.evaluation.results_io import frame_to_dict, save_frame
    from acr_pose_core.fileio import json_text, write_atomically
    from acr_pose_core.geometry.camera import CameraIntrinsics
    from acr_pose_core.pipeline import frame_result

    data, out = Path(data), Path(out)
    prefixes = nocs_format.list_frames(data)[:max_frames]
    if not prefixes:
        raise FileNotFoundError(f"{data}: no NOCS-format frames (*_color.png)")
    mask_folder = None if masks in ("model", "gt") else Path(masks)
    if mask_folder is not None and not mask_folder.is_dir():
        raise FileNotFoundError(f"--masks {masks}: expected model, gt or a folder of result pickles")
    if masks == "model" and estimator.mask_source is None:
        raise ValueError(
            f"the model folder {estimator.model.path} has no segmenter: use --masks gt or a folder of "
            "Mask R-CNN result pickles"
        )
    predictions, spd = out / "predictions", out / "predictions_spd"
    predictions.mkdir(parents=True, exist_ok=True)
    spd.mkdir(parents=True, exist_ok=True)
    results, seconds = [], []
    for prefix in tqdm(prefixes, desc="frames", unit="frame", disable=None if progress is None else not progress):
        frame = nocs_format.read_frame(prefix, with_coord=False)
        if frame.label is None:
            raise ValueError(f"{prefix}: no ground-truth label (a _label.json or _label.pkl) to evaluate against")
        name = frame_name(data, prefix)
        detections = None
        if masks == "gt":
            detections = detections_from_frame(frame)
        elif mask_folder is not None:
            detections = read_mask_results(mask_results_file(mask_folder, name, prefix))
        H, W = frame.image_size
        camera = CameraIntrinsics.from_matrix(frame.label.intrinsics, W, H)
        start = time.perf_counter()
        estimate = estimator.estimate(frame.color, frame.depth, camera, masks=detections)
        seconds.append(time.perf_counter() - start)
        result = frame_result(frame, estimate, name)
        save_frame(predictions / f"{name}.npz", result)
        write_atomically(spd / f"results_{name}.pkl", pickle.dumps(frame_to_dict(result), protocol=4))
        results.append(result)

    sections, metrics = [], {}
    for mode in ("corrected", "legacy"):
        scored = evaluate_frames(results, iou_mode=mode)
        title = f"{data}: {len(results)} frames, masks {masks}, IoU {mode}"
        sections.append(format_table(scored, title=title) + "\n\n" + format_table(scored, accuracy=True))
        write_metrics_json(scored, out / f"metrics_{mode}.json")
        metrics[mode] = metrics_to_dict(scored)
        if mode == "corrected" and plots:
            plot_ap_curves(scored, out / "ap_curves.png")
    table = "\n\n".join(sections)
    write_atomically(out / "table.txt", table + "\n")
    summary = {
        "data": str(data),
        "frames": len(results),
        "model": str(estimator.model.path),
        "masks": masks,
        "device": str(estimator.device),
        "seconds_per_frame": sum(seconds) / len(seconds),
        "objects_posed": sum(r.num_pred for r in results),
        "objects_labelled": sum(r.num_gt for r in results),
    }
    write_atomically(out / "summary.json", json_text(summary, indent=2) + "\n")
    return {**summary, "metrics": metrics, "table": table}
