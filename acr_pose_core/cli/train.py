"""``acr-pose train`` (and ``ros2 run acr_pose_core train``): train ACR-Pose from a configuration file.

Examples::

    acr-pose train --config config/train_paper.yaml --out runs/paper
    acr-pose train --config config/train_paper.yaml --out runs/paper --resume      # continue after an interruption
    acr-pose train --config config/train_paper.yaml --out runs/paper --overwrite   # start that run over
    acr-pose train --config config/train_tiny.yaml --out runs/tiny --set schedule.epochs=2 --set batch_size=4
    torchrun --nproc_per_node 4 -m acr_pose_core.cli.train --config config/train_paper.yaml --out runs/paper

``--set KEY=VALUE`` overrides one setting of the file (dotted keys, YAML values). See
:mod:`acr_pose_core.training.config` for every setting and :mod:`acr_pose_core.training.trainer` for what a run does
and writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["HELP", "add_arguments", "main", "run"]

HELP = "train ACR-Pose from a configuration file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``acr-pose train`` to ``parser``."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="training configuration (YAML, see config/)")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True, help="run folder: checkpoints and logs")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest complete checkpoint"
    )
    start.add_argument(
        "--overwrite", action="store_true", help="start over: delete the run already in --out (checkpoints, logs)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. schedule.epochs=2"
    )
    parser.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many steps in all")


def run(args: argparse.Namespace) -> int:
    """Train; print where the run went and its last losses and metrics."""
    from acr_pose_core.fileio import json_text
    from acr_pose_core.training.config import load_train_config
    from acr_pose_core.training.trainer import Trainer

    config = load_train_config(args.config, args.set)
    trainer = Trainer(
        config, args.out, resume=args.resume, progress=True, max_steps=args.max_steps, overwrite=args.overwrite
    )
    if trainer.resumed_from is not None and trainer.is_main:
        print(f"[train] resuming from {trainer.resumed_from} (step {trainer.state.step})")
    result = trainer.run()
    if trainer.is_main:
        print(f"[train] {args.out}: step {result['step']}, losses {json_text(result['losses'])}")
        if result["metrics"]:
            print(f"[train] validation {json_text(result['metrics'])}")
    return 0


def strip_ros_args(argv: list[str]) -> list[str]:
    """``argv`` without ROS arguments (``--ros-args ... [--]`` blocks), which ``ros2 run`` and launch files add.

    A stand-in for ``rclpy.utilities.remove_ros_args``, because ``acr_pose_core`` never imports ROS.
    """
    kept: list[str] = []
    in_ros_args = False
    for arg in argv:
        if arg == "--ros-args":
            in_ros_args = True
        elif in_ros_args and arg == "--":
            in_ros_args = False
        elif not in_ros_args:
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ROS executable ``train`` and of ``python -m acr_pose_core.cli.train`` (torchrun)."""
    from acr_pose_core.cli.main import main as acr_pose_main

    argv = strip_ros_args(sys.argv[1:] if argv is None else list(argv))
    return acr_pose_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
