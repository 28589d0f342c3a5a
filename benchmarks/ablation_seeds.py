"""Table 3 over several seeds (not a test): mean ± spread of each row's metrics across ``acr-pose ablation`` studies.

Each study folder is one seed of the same configuration (``--set seed=S``); the rows' ``result.json`` files are read,
and every metric is reported as mean ± population standard deviation over the seeds that finished that row, with the
number of seeds. Prints a Markdown table and writes JSON.

Usage::

    python benchmarks/ablation_seeds.py runs/t3s0 runs/t3s1 runs/t3s2 [--out benchmarks/results/ablation_seeds.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.training.ablation import ROWS, TABLE_METRICS

METRICS = (*TABLE_METRICS, "val_correspondence")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", type=Path, nargs="+", help="ablation study folders, one per seed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation_seeds.json"))
    args = parser.parse_args(argv)
    table: dict[str, dict] = {}
    for row in ROWS:
        results = [
            json.loads(path.read_text(encoding="utf-8"))
            for study in args.studies
            if (path := study / row / "result.json").is_file()
        ]
        if not results:
            continue
        values = {m: np.array([r["metrics"][m] for r in results], dtype=np.float64) for m in METRICS}
        table[row] = {
            "seeds": len(results),
            "mean": {m: float(v.mean()) for m, v in values.items()},
            "std": {m: float(v.std()) for m, v in values.items()},
            "values": {m: v.tolist() for m, v in values.items()},
        }
    print("| row | seeds | " + " | ".join(METRICS[:-1]) + " | val. correspondence |")
    print("|---" * (len(METRICS) + 2) + "|")
    for row, entry in table.items():
        cells = [f"{100 * entry['mean'][m]:.1f} ± {100 * entry['std'][m]:.1f}" for m in METRICS[:-1]]
        corr = f"{entry['mean']['val_correspondence']:.3f} ± {entry['std']['val_correspondence']:.3f}"
        print(f"| {row} | {entry['seeds']} | " + " | ".join(cells) + f" | {corr} |")
    write_result(args.out, {"studies": [str(s) for s in args.studies], "rows": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
