"""``acr-pose calibrate-size``: fit a model folder's per-category size factors on training frames and record them.

Example::

    acr-pose calibrate-size --model acr_pose_core/assets/default_model --data data/default/train --frames 60
    acr-pose calibrate-size --model models/mine --remove      # back to the fitted scale as it is

The factors (``acr_pose_core.calibration``: the geometric median of the true-to-estimated box-volume ratios, cube
root, with the true masks) go into the folder's ``model.json``; ``PoseEstimator`` applies them from then on. Fit on
training frames: the split that reports the scores must not choose them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fit and record a model folder's per-category size calibration (on training frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="model folder to calibrate (rewritten in place)")
    parser.add_argument("--data", type=Path, help="NOCS-format training frames (e.g. data/default/train)")
    parser.add_argument("--frames", type=int, default=60, help="frames spread over --data (default 60)")
    parser.add_argument("--min-objects", type=int, default=5, help="a category with fewer posed objects keeps 1")
    parser.add_argument("--remove", action="store_true", help="remove the folder's calibration instead")


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.categories import CATEGORIES
    from acr_pose_core.model_folder import write_size_calibration

    if args.remove:
        write_size_calibration(args.model, None)
        print(f"[calibrate-size] removed the size calibration of {args.model}")
        return 0
    if args.data is None:
        raise ValueError("give --data (training frames) or --remove")
    if args.frames < 1 or args.min_objects < 1:
        raise ValueError("--frames and --min-objects must be at least 1")
    from acr_pose_core.calibration import calibrate_model_folder

    fit = calibrate_model_folder(args.model, args.data, args.frames, args.min_objects, progress=True)
    print("| category | objects | factor |\n|---|---|---|")
    for name, n, f in zip(CATEGORIES, fit.objects, fit.factors, strict=True):
        print(f"| {name} | {n} | {f:.3f} |")
    print(f"[calibrate-size] recorded in {args.model}/model.json")
    return 0
