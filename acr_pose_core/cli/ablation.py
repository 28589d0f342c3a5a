"""``acr-pose ablation``: rerun the paper's ablation study (Table 3) and print its table.

Examples::

    acr-pose ablation --config config/train_paper.yaml --out runs/table3          # the six paper-size runs
    acr-pose ablation --config config/train_paper.yaml --out runs/table3 --rows baseline full
    acr-pose ablation --config config/train_tiny.yaml --out runs/t3_tiny --set schedule.epochs=20

Each row trains into ``OUT/<row>/``; a finished row is kept, an interrupted one resumes, so the same command continues
a stopped study. The table is printed and written to ``OUT/table3.md`` and ``OUT/table3.json``. The rows and what each
switches on: :mod:`acr_pose_core.training.ablation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["HELP", "add_arguments", "run"]

HELP = "rerun the paper's ablation (Table 3): the same training with the designs added one by one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``acr-pose ablation`` to ``parser``."""
    parser.add_argument("--config", type=Path, metavar="FILE", required=True, help="base training configuration")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True, help="study folder: one run folder per row")
    parser.add_argument("--rows", nargs="+", metavar="ROW", help="rows to run (default: all six, in order)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting for every row"
    )
    parser.add_argument("--max-steps", type=int, help="stop each row after this many steps (a smoke test)")


def run(args: argparse.Namespace) -> int:
    """Run the study; print and write the table."""
    from acr_pose_core.fileio import json_text, write_atomically
    from acr_pose_core.training.ablation import ablation_table, paper_results, run_ablation

    if not args.config.is_file():
        raise FileNotFoundError(f"configuration file not found: {args.config}")
    results = run_ablation(args.config, args.out, args.set, args.rows, progress=True, max_steps=args.max_steps)
    table = ablation_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    paper = ablation_table(paper_results())
    document = (
        f"# Ablation (Table 3) of {args.config}\n\nMean AP in % on the validation data (corrected 3D IoU):\n\n{table}\n"
        f"The paper's Table 3 (NOCS-CAMERA val, legacy 3D IoU, 50 epochs at batch 96):\n\n{paper}"
    )
    write_atomically(args.out / "table3.md", document)
    write_atomically(args.out / "table3.json", json_text(results, indent=2) + "\n")
    print(table, end="")
    print(f"[ablation] wrote {args.out / 'table3.md'} and {args.out / 'table3.json'}")
    return 0
