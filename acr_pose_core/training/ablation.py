"""The paper's ablation study (Table 3): one training configuration, the designs added back one by one.

Table 3 replaces every novel part of ACR-Pose by an MLP and then adds the parts back, cumulatively. :data:`ROWS` holds
the runs, in the table's order, as ``--set`` overrides of one base configuration (``config/train_paper.yaml`` for the
paper's numbers):

==============  ================================================================================
row             what is on
==============  ================================================================================
baseline        MLPs everywhere: no PIM, no relational graph, no Discriminator
+instance       the relational instance graph (RRM graph 1)
+PIM            and the Pose-Irrelevant Module
+adversarial    and the Discriminator (adversarial training)
+deformation    and the relational deformation graph (RRM graph 2)
full            and the relational assignment graph (RRM graph 3): ACR-Pose
==============  ================================================================================

:func:`run_ablation` trains each row into ``out/<row>/`` (a normal run folder: checkpoints, logs, TensorBoard) and
writes ``out/<row>/result.json`` with the row's last validation metrics and its whole configuration when the run is
complete. A row with a ``result.json`` is not trained again, and an interrupted row resumes from its newest
checkpoint, so the whole study can be stopped and restarted. Both are keyed to the row's configuration: a finished
or started row whose settings differ from the ones asked for now is an error listing the differences, never reused.
:func:`ablation_table` formats the results like the paper's table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from acr_pose_core.evaluation.metrics import SUMMARY_METRICS
from acr_pose_core.fileio import json_text, write_atomically
from acr_pose_core.settings import config_to_dict
from acr_pose_core.training.checkpoint import latest_checkpoint
from acr_pose_core.training.config import TrainConfig, config_changes, load_train_config

__all__ = ["PAPER_TABLE_3", "ROWS", "TABLE_METRICS", "ablation_table", "paper_results", "run_ablation"]

_OFF = {
    "model.pose_irrelevant": "false",
    "model.relational_instance": "false",
    "model.relational_deformation": "false",
    "model.relational_assignment": "false",
    "adversarial": "false",
}
_ADDED = [  # (row, the switch it turns on), cumulative
    ("baseline", None),
    ("+instance", "model.relational_instance"),
    ("+PIM", "model.pose_irrelevant"),
    ("+adversarial", "adversarial"),
    ("+deformation", "model.relational_deformation"),
    ("full", "model.relational_assignment"),
]


def _rows() -> dict[str, list[str]]:
    switches, rows = dict(_OFF), {}
    for name, added in _ADDED:
        if added is not None:
            switches[added] = "true"
        rows[name] = [f"{key}={value}" for key, value in switches.items()]
    return rows


ROWS: dict[str, list[str]] = _rows()
"""Row name → the ``KEY=VALUE`` overrides that make its configuration, in Table 3's order."""

TABLE_METRICS: tuple[str, ...] = ("IoU50", "IoU75", "5°2cm", "5°5cm", "10°2cm", "10°5cm")
"""The columns of Table 3 (mean AP over the categories)."""


PAPER_TABLE_3: dict[str, tuple[float, ...]] = {
    "baseline": (93.3, 86.7, 58.6, 63.3, 76.4, 84.2),
    "+instance": (93.8, 84.6, 62.4, 67.0, 78.8, 85.7),
    "+PIM": (93.4, 88.9, 65.5, 69.2, 79.7, 85.2),
    "+adversarial": (93.7, 84.0, 67.4, 71.0, 81.2, 86.3),
    "+deformation": (93.7, 89.3, 68.4, 72.1, 81.9, 87.0),
    "full": (93.8, 89.9, 70.4, 74.1, 82.6, 87.8),
}
"""The paper's Table 3: NOCS-CAMERA val, mAP in % (the reference code's legacy 3D IoU), columns
:data:`TABLE_METRICS`."""


def paper_results() -> dict[str, dict[str, Any]]:
    """:data:`PAPER_TABLE_3` in the form :func:`run_ablation` returns (fractions), for :func:`ablation_table`."""
    return {
        row: {"row": row, "step": "", "metrics": {m: v / 100 for m, v in zip(TABLE_METRICS, values, strict=True)}}
        for row, values in PAPER_TABLE_3.items()
    }


def run_ablation(
    config: str | os.PathLike,
    out: str | os.PathLike,
    overrides: Sequence[str] = (),
    rows: Iterable[str] | None = None,
    progress: bool | None = None,
    max_steps: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Train the rows of Table 3 from the base configuration file ``config``; returns ``{row: result}``.

    Args:
        config: the base training configuration (YAML); it must name validation data, which the table reports on.
        out: the study's folder; row ``r`` trains into ``out/<r>/``.
        overrides: ``KEY=VALUE`` settings applied to every row before the row's own switches.
        rows: the rows to run (default all, in :data:`ROWS` order).
        progress: show the trainer's progress bars (None: the trainer's default).
        max_steps: stop each row after this many steps (a smoke test; the row is then not marked complete).

    Each result is ``{"row", "overrides", "step", "metrics"}``, ``metrics`` the last validation pass's mean APs.
    """
    from acr_pose_core.training.trainer import Trainer  # torch is imported only when a study runs

    names = list(ROWS) if rows is None else list(rows)
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; the rows are {list(ROWS)}")
    out = Path(out)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        folder = out / name
        done = folder / "result.json"
        row_config = load_train_config(config, [*overrides, *ROWS[name]])
        if not row_config.val:
            raise ValueError(f"{config}: the ablation reports validation metrics; the configuration names no val data")
        if done.is_file():
            results[name] = _finished_row(done, row_config)
            continue
        started = latest_checkpoint(folder / "checkpoints") is not None  # a resumed row refuses other settings
        trainer = Trainer(
            row_config, folder, resume=started, overwrite=not started, progress=progress, max_steps=max_steps
        )
        run = trainer.run()
        metrics = run["metrics"] or trainer.validate()  # a run stopped by max_steps has not validated yet
        result = {
            "row": name,
            "overrides": ROWS[name],
            "step": run["step"],
            "metrics": metrics,
            "config": config_to_dict(row_config),
        }
        complete = trainer.state.epoch >= row_config.schedule.epochs
        if trainer.is_main and complete:
            write_atomically(done, json_text(result, indent=2) + "\n")
        results[name] = result
    return results


def _finished_row(done: Path, config: TrainConfig) -> dict[str, Any]:
    """A finished row's result, if it was trained with exactly ``config``; otherwise a :class:`ValueError` that lists
    the differences (a row's result is keyed to its whole configuration: a study never mixes settings)."""
    result = json.loads(done.read_text(encoding="utf-8"))
    stored = result.get("config")
    if not isinstance(stored, dict):  # written before results recorded their configuration: ask the checkpoint
        checkpoint = latest_checkpoint(done.parent / "checkpoints")
        stored = json.loads(checkpoint.read_text(encoding="utf-8"))["config"] if checkpoint else None
    if not isinstance(stored, dict):
        raise ValueError(f"{done}: no record of the settings this row was trained with; delete {done.parent} to rerun")
    changes = config_changes(stored, config, where=str(done))
    if changes:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        raise ValueError(
            f"{done}: row {result.get('row', done.parent.name)!r} was trained with other settings ({listed}); "
            f"use another --out for these settings, or delete {done.parent} to retrain the row"
        )
    return result


def ablation_table(results: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """A Markdown table of the rows' mean APs in percent, rows in :data:`ROWS` order (missing values blank)."""
    for metric in metrics:
        if metric not in SUMMARY_METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {list(SUMMARY_METRICS)}")
    lines = ["| row | " + " | ".join(metrics) + " | steps |", "|---" * (len(metrics) + 2) + "|"]
    order = [name for name in ROWS if name in results] + [name for name in results if name not in ROWS]
    for name in order:
        values = results[name].get("metrics", {})
        cells = [f"{100 * values[m]:.1f}" if isinstance(values.get(m), (int, float)) else "" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {results[name].get('step', '')} |")
    return "\n".join(lines) + "\n"
