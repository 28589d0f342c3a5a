"""``acr-pose export``: a training run's checkpoint → a model folder that ``PoseEstimator`` loads.

Example::

    acr-pose export --run runs/paper --out models/paper            # newest complete checkpoint, float16 weights
    acr-pose export --run runs/paper/step_000144000.json --out models/paper --dtype float32
    acr-pose export --run runs/default --detector-run runs/detector --out models/default   # with the segmenter
    acr-pose export --model models/default --detector-run runs/detector_ft --out models/new  # a new segmenter only
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "turn a training run's checkpoint into a model folder (weights, configuration, priors) for inference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder (its newest checkpoint) or checkpoint")
    source.add_argument(
        "--model", type=Path, help="a model folder whose Reconstructor is kept (with --detector-run: a new segmenter)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--detector-run", type=Path, help="a segmenter run (acr-pose train-detector) to include")
    parser.add_argument(
        "--score-threshold", type=float, help="the segmenter's operating threshold (default: its run's configuration)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        default="float16",
        help="stored weight type (default float16: half the size)",
    )


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.training.export import export_checkpoint

    if args.score_threshold is not None and args.detector_run is None:
        raise ValueError("--score-threshold applies to the segmenter: give --detector-run")
    if args.model is not None:
        from acr_pose_core.training.export import export_with_segmenter

        if args.detector_run is None:
            raise ValueError("--model keeps a folder's Reconstructor to add a segmenter: give --detector-run")
        out = export_with_segmenter(args.model, args.detector_run, args.out, args.score_threshold, args.dtype)
        print(f"[export] wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
        return 0
    out = export_checkpoint(args.run, args.out, args.dtype, detector_run=args.detector_run,
                            score_threshold=args.score_threshold)  # fmt: skip
    print(f"[export] wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0
