"""The ``acr-pose`` command: one entry point that dispatches to one module per subcommand.

Usage::

    acr-pose [--debug] COMMAND [ARGS...]
    acr-pose --version
    acr-pose COMMAND --help

A subcommand is a module in this package that exposes

- ``HELP``: a one-line string for ``acr-pose --help``;
- ``add_arguments(parser: argparse.ArgumentParser) -> None``;
- ``run(args: argparse.Namespace) -> int``: the exit status.

``SUBCOMMANDS`` maps each name to its module. Only the module of the command being run is imported; for the
listing in ``acr-pose --help`` the ``HELP`` strings of the others are read from their source with ``ast``, so the
help is fast and imports neither torch nor anything else a subcommand needs.

Errors the user caused end with ``acr-pose COMMAND: error: MESSAGE`` on stderr and exit status 2: bad arguments
(argparse), and a ``FileNotFoundError`` or ``ValueError`` raised by a subcommand. ``--debug`` lets those exceptions
through with their traceback. Any other exception is a bug and always shows its traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from types import ModuleType

import acr_pose_core

__all__ = ["SUBCOMMANDS", "main"]

PROG = "acr-pose"

SUBCOMMANDS: dict[str, str] = {
    "generate": "acr_pose_core.cli.generate",
    "priors": "acr_pose_core.cli.priors",
    "evaluate": "acr_pose_core.cli.evaluate",
    "train": "acr_pose_core.cli.train",
    "ablation": "acr_pose_core.cli.ablation",
    "train-detector": "acr_pose_core.cli.train_detector",
    "export": "acr_pose_core.cli.export",
    "train-default": "acr_pose_core.cli.train_default",
    "demo": "acr_pose_core.cli.demo",
    "infer": "acr_pose_core.cli.infer",
    "evaluate-model": "acr_pose_core.cli.evaluate_model",
    "calibrate-size": "acr_pose_core.cli.calibrate_size",
    # ROS bags are ROS knowledge, so the module lives in acr_pose_ros (named here as a string: nothing is imported
    # unless the command runs; it needs rosbags, not rclpy).
    "bag": "acr_pose_ros.bag",
}
"""Subcommand name -> module path, in the order ``acr-pose --help`` lists them."""

USER_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)
"""Exceptions from a subcommand reported as ``error: message`` (exit status 2) rather than as a traceback."""

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _static_help(module_path: str) -> str:
    """The ``HELP`` string of a subcommand module, read from its source without importing it ("" if unknown)."""
    try:
        spec = importlib.util.find_spec(module_path)  # imports the parent packages only
    except (ImportError, ValueError):
        return ""
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ""
    try:
        with open(spec.origin, encoding="utf-8") as source:
            tree = ast.parse(source.read(), filename=spec.origin)
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "HELP" for target in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return ""


def _load(name: str) -> ModuleType:
    """Import the module of subcommand ``name`` and check that it has the subcommand interface."""
    module = importlib.import_module(SUBCOMMANDS[name])
    missing = [attr for attr in ("HELP", "add_arguments", "run") if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"subcommand module {module.__name__} lacks {', '.join(missing)}")
    return module


def _requested_command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: the first argument that is not an option (top-level options take none)."""
    remaining = iter(argv)
    for arg in remaining:
        if arg == "--":  # what follows "--" is positional: its first argument is the command
            arg = next(remaining, "")
        elif arg.startswith("-"):
            continue
        return arg if arg in SUBCOMMANDS else None
    return None


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None, ModuleType | None]:
    """The root parser for ``argv``, the parser of the subcommand it names and that subcommand's module.

    Only the named subcommand gets its arguments (``add_arguments``); its parser and module are None when ``argv``
    names no known subcommand. Subcommands must not define ``--debug``: it is shared by all of them.
    """
    # --debug is accepted before and after the subcommand; SUPPRESS keeps a subparser from resetting it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks instead of error messages"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ACR-Pose: category-level 6D object pose estimation.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.",
        parents=[debug],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {acr_pose_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    requested = _requested_command(argv)
    module = _load(requested) if requested is not None else None
    requested_parser = None
    for name, module_path in SUBCOMMANDS.items():
        help_text = module.HELP if name == requested else _static_help(module_path)
        subparser = commands.add_parser(name, help=help_text, description=help_text, parents=[debug])
        if name == requested:
            module.add_arguments(subparser)
            requested_parser = subparser
    return parser, requested_parser, module


def _exit_status(exc: SystemExit) -> int:
    """The exit status that ``sys.exit`` would give for ``exc``."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def main(argv: list[str] | None = None) -> int:
    """Run ``acr-pose`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser, subparser, module = build_parser(argv)
    except ModuleNotFoundError as exc:
        command = _requested_command(argv)
        if command is None or exc.name != SUBCOMMANDS[command]:
            raise
        # A registered command whose module is not installed: a packaging problem, not the user's.
        print(f"{PROG} {command}: error: not available in this installation ({exc})", file=sys.stderr)
        return 1
    try:
        args, unknown = parser.parse_known_args(argv)
        if subparser is None or module is None:  # not reached: argparse requires a known command
            raise RuntimeError(f"{PROG}: the command in {argv} was parsed but not loaded")
        if unknown:  # reported by the subcommand's parser, so the message shows its usage and name
            subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version and argument errors end parsing this way
        return _exit_status(exc)

    debug = getattr(args, "debug", False)
    try:
        status = module.run(args)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
