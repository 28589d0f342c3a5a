"""``acr-pose evaluate``: NOCS metrics of a prediction set, as a table, ``metrics.json`` and AP-curve plots.

Examples::

    acr-pose evaluate results/ --format spd --iou legacy --out eval_spd     # a published method's pickles
    acr-pose evaluate preds/ --out eval                                     # our own npz/JSON files
    acr-pose evaluate --example --out runs/example                          # a generated example set

``--example`` writes a synthetic prediction set with known ground truth (see
:mod:`acr_pose_core.evaluation.examples`) to ``OUT/example_predictions`` in our own format, then evaluates it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "NOCS 3D IoU and pose mAP of a prediction set: table, metrics.json and AP-curve plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_dir", nargs="?", type=Path, help="directory of prediction files (one per frame)")
    parser.add_argument(
        "--format",
        choices=("acr", "spd"),
        default="acr",
        help="acr: our .npz/.json files; spd: the community's results_*.pkl pickles (default: acr)",
    )
    parser.add_argument(
        "--iou",
        choices=("corrected", "legacy"),
        default="corrected",
        help="3D IoU: corrected (default) or legacy, the reference code's, in which published numbers were computed",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--example",
        type=int,
        nargs="?",
        const=200,
        metavar="FRAMES",
        help="generate an example prediction set of FRAMES frames (default 200) and evaluate it",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the example set (default 0)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _write_example(out: Path, frames_count: int, seed: int) -> Path:
    from tqdm.auto import tqdm

    from acr_pose_core.evaluation.examples import make_example_frames
    from acr_pose_core.evaluation.results_io import save_frame

    if frames_count < 1:
        raise ValueError(f"--example needs at least 1 frame, got {frames_count}")
    pred_dir = out / "example_predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    for stale in pred_dir.glob("*.npz"):  # a previous example of another size or seed must not mix in
        stale.unlink()
    frames = make_example_frames(frames_count, seed=seed)
    for frame in tqdm(frames, desc="writing example", unit="frame", disable=None):
        save_frame(pred_dir / f"{frame.name}.npz", frame)
    return pred_dir


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.evaluation.metrics import evaluate_frames
    from acr_pose_core.evaluation.report import format_table, plot_ap_curves, write_metrics_json
    from acr_pose_core.evaluation.results_io import load_results

    out: Path = args.out
    if args.example is not None:
        if args.pred_dir is not None:
            raise ValueError("give either PRED_DIR or --example, not both")
        out.mkdir(parents=True, exist_ok=True)
        pred_dir, fmt = _write_example(out, args.example, args.seed), "acr"
        print(f"[evaluate] wrote an example prediction set of {args.example} frames to {pred_dir}")
    elif args.pred_dir is None:
        raise ValueError("give PRED_DIR (a directory of prediction files) or --example")
    else:
        pred_dir, fmt = args.pred_dir, args.format
        if out.resolve() == pred_dir.resolve():
            # metrics.json would land among the predictions, and the next evaluation would read it as a frame
            raise ValueError(f"--out {out} is the prediction folder; write the evaluation to another folder")

    frames = load_results(pred_dir, fmt)
    start = time.perf_counter()
    metrics = evaluate_frames(frames, iou_mode=args.iou, progress=None)
    seconds = time.perf_counter() - start
    title = f"{pred_dir} ({fmt} format), evaluated in {seconds:.1f} s"
    table = format_table(metrics, title=title) + "\n\n" + format_table(metrics, accuracy=True)
    print(table)

    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(table + "\n", encoding="utf-8")
    written = [out / "table.txt", write_metrics_json(metrics, out / "metrics.json")]
    if not args.no_plots:
        written.append(plot_ap_curves(metrics, out / "ap_curves.png"))
    print("\n[evaluate] wrote " + ", ".join(str(p) for p in written))
    return 0
