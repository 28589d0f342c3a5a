"""``acr-pose train``: a placeholder until the ACR-Pose model and trainer land with their issue.

In this version training is NOT implemented: the command accepts the arguments it will keep (``--config``,
``--out``), prints that the trainer is not available yet and exits with status 2. It exists now so that the
command, the ``ros2 run acr_pose_core train`` executable (``scripts/ros/train``, which calls ``main``) and their
packaging are in place and tested.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import acr_pose_core

__all__ = ["HELP", "add_arguments", "main", "run"]

HELP = "train ACR-Pose (not implemented yet in this version)"

EXIT_NOT_IMPLEMENTED = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``acr-pose train`` to ``parser``."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="training configuration file")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output directory for checkpoints and logs")


def run(args: argparse.Namespace) -> int:
    """Say that training is not implemented in this version; return exit status 2."""
    print(
        f"acr-pose train: error: training is not implemented yet in acr-pose {acr_pose_core.__version__}; "
        "the ACR-Pose model and its trainer arrive in a later version.",
        file=sys.stderr,
    )
    return EXIT_NOT_IMPLEMENTED


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
    """Entry point of the ROS executable ``train``: parse ``argv`` (default ``sys.argv[1:]``) and ``run``."""
    argv = strip_ros_args(sys.argv[1:] if argv is None else list(argv))
    parser = argparse.ArgumentParser(prog="train", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
