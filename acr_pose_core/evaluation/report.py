"""Reports of a :class:`~acr_pose_core.evaluation.metrics.NocsMetrics`: a text table, JSON and AP-curve plots.

- :func:`format_table`: the headline metrics laid out like the paper's Table 1 (mAP) or Table 4 (accuracy).
- :func:`metrics_to_dict` / :func:`metrics_from_dict` / :func:`write_metrics_json`: every number, JSON-ready.
- :func:`plot_ap_curves`: AP against 3D IoU, rotation and translation thresholds, like the paper's Figure 5.

Values in a ``NocsMetrics`` are fractions in [0, 1]; tables and plots show percent. A category without ground truth
has NaN values: ``-`` in tables, ``null`` in JSON, left out of plots.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.evaluation.metrics import SUMMARY_METRICS, NocsMetrics
from acr_pose_core.fileio import write_atomically

__all__ = ["format_table", "metrics_from_dict", "metrics_to_dict", "plot_ap_curves", "write_metrics_json"]

_IOU_MODE_NOTES = {
    "legacy": "legacy (the mode published papers' numbers use)",
    "corrected": "corrected (published papers' numbers use legacy)",
}
_CURVE_KEYS = ("iou_ap", "iou_acc", "pose_ap", "pose_acc")
_MAX_DEGREES_PLOTTED = 60.0
_MAX_CM_PLOTTED = 10.0


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100.0 * value:.1f}"


def format_table(metrics: NocsMetrics, title: str | None = None, accuracy: bool = False) -> str:
    """The headline metrics as a fixed-width text table, one row per category then ``mean``.

    Columns IoU25, IoU50, IoU75, 5°2cm, 5°5cm, 10°2cm, 10°5cm in percent with one decimal (``-`` for NaN). Above
    them: ``title`` if given, a line naming what is shown (mAP or accuracy) and the 3D IoU mode, and a line with the
    numbers of frames, ground-truth objects and predictions.

    Args:
        metrics: evaluation result.
        title: optional first line.
        accuracy: show accuracy (matched predictions / predictions, the paper's Table 4) instead of mAP.

    Returns:
        The table, lines joined by ``\\n``, without a trailing newline.
    """
    summary = metrics.summary(accuracy)
    columns = list(SUMMARY_METRICS)
    rows = metrics.row_names
    what = "accuracy" if accuracy else "mAP"
    mode = _IOU_MODE_NOTES.get(metrics.iou_mode, metrics.iou_mode)

    name_width = max(len("category"), *map(len, rows))
    widths = [max(len(c), 5) for c in columns]  # "100.0" is 5 wide
    lines = [] if title is None else [title]
    lines.append(f"{what} (%), 3D IoU: {mode}")
    lines.append(
        f"{metrics.num_frames} frames, {int(np.sum(metrics.num_gt))} ground-truth objects, "
        f"{int(np.sum(metrics.num_pred))} predictions"
    )
    header = "category".ljust(name_width) + "".join("  " + c.rjust(w) for c, w in zip(columns, widths, strict=True))
    lines += [header, "-" * len(header)]
    for row in rows:
        if row == "mean":
            lines.append("-" * len(header))
        cells = (_percent(summary[c][row]).rjust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(row.ljust(name_width) + "".join("  " + cell for cell in cells))
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Nested lists / dicts of plain Python numbers; non-finite floats become ``None``."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def metrics_to_dict(metrics: NocsMetrics) -> dict[str, Any]:
    """Every number of ``metrics`` as a JSON-ready dict (NaN → ``None``); values are fractions in [0, 1].

    Layout::

        iou_mode, num_frames,
        counts: {category: {num_gt, num_pred}} for the six categories,
        ap, accuracy: {metric name (IoU25 ... 10°5cm): {category or "mean": value}},
        curves: {row_names (6 categories + "mean"), iou_thresholds (S,) fractions, degree_thresholds (D,) degrees,
                 shift_thresholds (T,) cm, iou_ap / iou_acc (7, S), pose_ap / pose_acc (7, D, T)},
        units: what the numbers are in.
    """
    return _jsonable(
        {
            "iou_mode": metrics.iou_mode,
            "num_frames": int(metrics.num_frames),
            "counts": {
                name: {"num_gt": int(metrics.num_gt[i]), "num_pred": int(metrics.num_pred[i])}
                for i, name in enumerate(CATEGORIES)
            },
            "ap": metrics.summary(accuracy=False),
            "accuracy": metrics.summary(accuracy=True),
            "curves": {
                "row_names": metrics.row_names,
                "iou_thresholds": metrics.iou_thresholds,
                "degree_thresholds": metrics.degree_thresholds,
                "shift_thresholds": metrics.shift_thresholds,
                **{key: getattr(metrics, key) for key in _CURVE_KEYS},
            },
            "units": {
                "ap": "fraction in [0, 1]; null where a category has no ground truth",
                "accuracy": "matched predictions / predictions, fraction in [0, 1]",
                "iou_thresholds": "3D IoU fraction",
                "degree_thresholds": "degrees; the last (360) means no rotation limit",
                "shift_thresholds": "centimetres; the last (100) means no translation limit",
            },
        }
    )


def metrics_from_dict(d: Mapping[str, Any]) -> NocsMetrics:
    """Rebuild a :class:`NocsMetrics` from :func:`metrics_to_dict`'s output (``None`` → NaN).

    Raises:
        KeyError: a key of the layout is missing.
        ValueError: the curve arrays disagree with the threshold grids.
    """
    curves = d["curves"]

    def floats(value: Any) -> np.ndarray:
        return np.array(value, dtype=np.float64)  # None -> nan

    thresholds = {k: floats(curves[k]) for k in ("iou_thresholds", "degree_thresholds", "shift_thresholds")}
    arrays = {k: floats(curves[k]) for k in _CURVE_KEYS}
    rows = len(CATEGORIES) + 1
    s, dd, t = (len(thresholds[k]) for k in ("iou_thresholds", "degree_thresholds", "shift_thresholds"))
    for key, shape in (
        ("iou_ap", (rows, s)),
        ("iou_acc", (rows, s)),
        ("pose_ap", (rows, dd, t)),
        ("pose_acc", (rows, dd, t)),
    ):
        if arrays[key].shape != shape:
            raise ValueError(f"curves.{key} has shape {arrays[key].shape}, expected {shape}")
    counts = d["counts"]
    return NocsMetrics(
        iou_mode=str(d["iou_mode"]),
        **thresholds,
        **arrays,
        num_gt=np.array([counts[n]["num_gt"] for n in CATEGORIES], dtype=np.int64),
        num_pred=np.array([counts[n]["num_pred"] for n in CATEGORIES], dtype=np.int64),
        num_frames=int(d["num_frames"]),
    )


def write_metrics_json(metrics: NocsMetrics, path: str | os.PathLike) -> Path:
    """Write :func:`metrics_to_dict` to ``path`` as UTF-8 JSON (indent 2), atomically.

    The text goes to a temporary file in the same directory, which then replaces ``path``, so a reader never sees a
    half-written file. Missing parent directories are created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics_to_dict(metrics), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_atomically(path, text)


def _plot_rows(ax: Any, x: np.ndarray, curves: np.ndarray, names: list[str]) -> None:
    """One line per category row of ``curves`` (rows, len(x)) that is not all NaN; the mean (last row) thick black."""
    for i, name in enumerate(names):
        y = curves[i]
        if not np.any(np.isfinite(y)):
            continue
        if name == "mean":
            ax.plot(x, 100.0 * y, color="black", linewidth=3.0, label=name, zorder=3)
        else:
            ax.plot(x, 100.0 * y, color=f"C{i}", linewidth=1.5, label=name)


def plot_ap_curves(metrics: NocsMetrics, path: str | os.PathLike) -> Path:
    """Save a PNG with three panels of AP curves, like the paper's Figure 5.

    Panels: AP against 3D IoU threshold (0-100 %); against rotation error threshold (0-60°, at the last
    translation threshold, i.e. no translation limit); against translation error threshold (0-10 cm, at the last
    rotation threshold, i.e. no rotation limit). One line per category with ground truth, the mean in thick black.
    Uses matplotlib's object API only (no pyplot state), so it works headless and from threads.

    Args:
        metrics: evaluation result.
        path: PNG file to write; missing parent directories are created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    # Imported here: matplotlib takes a noticeable time to import and only this function needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = metrics.row_names
    degrees = np.asarray(metrics.degree_thresholds, dtype=np.float64)
    shifts = np.asarray(metrics.shift_thresholds, dtype=np.float64)
    on_degrees = degrees <= _MAX_DEGREES_PLOTTED
    on_shifts = shifts <= _MAX_CM_PLOTTED

    fig = Figure(figsize=(15.0, 4.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharey=True)
    panels = (
        (100.0 * np.asarray(metrics.iou_thresholds), metrics.iou_ap, "3D IoU threshold (%)", (0.0, 100.0), "3D IoU"),
        (
            degrees[on_degrees],
            metrics.pose_ap[:, on_degrees, -1],
            "rotation error threshold (°)",
            (0.0, 60.0),
            "Rotation",
        ),
        (
            shifts[on_shifts],
            metrics.pose_ap[:, -1, on_shifts],
            "translation error threshold (cm)",
            (0.0, 10.0),
            "Translation",
        ),
    )
    for ax, (x, curves, xlabel, xlim, panel_title) in zip(axes, panels, strict=True):
        _plot_rows(ax, x, np.asarray(curves, dtype=np.float64), names)
        ax.set_xlabel(xlabel)
        ax.set_xlim(*xlim)
        ax.set_ylim(0.0, 100.0)
        ax.set_title(panel_title)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("AP (%)")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="lower left", fontsize="small")
    fig.suptitle(f"Average precision, 3D IoU: {metrics.iou_mode}, {metrics.num_frames} frames")
    fig.savefig(path, format="png")
    return path
