"""Tests of acr_pose_core.evaluation.report: the table, JSON and the AP-curve plot of a hand-built NocsMetrics."""

from __future__ import annotations

import json
import math
import os
import stat
import threading

import numpy as np
import pytest

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.evaluation.metrics import (
    DEFAULT_DEGREE_THRESHOLDS,
    DEFAULT_IOU_THRESHOLDS,
    DEFAULT_SHIFT_THRESHOLDS,
    SUMMARY_METRICS,
    NocsMetrics,
)
from acr_pose_core.evaluation.report import (
    format_table,
    metrics_from_dict,
    metrics_to_dict,
    plot_ap_curves,
    write_metrics_json,
)

ROWS = [*CATEGORIES, "mean"]
MISSING = "camera"  # the category without ground truth in the hand-built metrics


def _iou_curve(row: int, iou: np.ndarray, acc: bool) -> np.ndarray:
    """(S,) AP = (1 - IoU) · (row + 1) / 8, accuracy half of it."""
    return (1.0 - iou) * (row + 1) / 8.0 * (0.5 if acc else 1.0)


def _pose_curve(row: int, deg: np.ndarray, cm: np.ndarray, acc: bool) -> np.ndarray:
    """(D, T) AP = min(deg, 60)/60 · min(cm, 10)/10 · (row + 1) / 8, accuracy half of it."""
    d = np.minimum(deg, 60.0)[:, None] / 60.0
    t = np.minimum(cm, 10.0)[None, :] / 10.0
    return d * t * (row + 1) / 8.0 * (0.5 if acc else 1.0)


def _metrics(iou_mode: str = "legacy") -> NocsMetrics:
    iou, deg, cm = DEFAULT_IOU_THRESHOLDS, DEFAULT_DEGREE_THRESHOLDS, DEFAULT_SHIFT_THRESHOLDS
    iou_ap = np.stack([_iou_curve(r, iou, False) for r in range(7)])
    iou_acc = np.stack([_iou_curve(r, iou, True) for r in range(7)])
    pose_ap = np.stack([_pose_curve(r, deg, cm, False) for r in range(7)])
    pose_acc = np.stack([_pose_curve(r, deg, cm, True) for r in range(7)])
    missing = CATEGORIES.index(MISSING)
    for a in (iou_ap, iou_acc, pose_ap, pose_acc):
        a[missing] = np.nan
    num_gt = np.array([10, 20, 0, 40, 50, 60])
    num_pred = np.array([11, 21, 5, 41, 51, 61])
    return NocsMetrics(
        iou_mode=iou_mode,
        iou_thresholds=iou,
        degree_thresholds=deg,
        shift_thresholds=cm,
        iou_ap=iou_ap,
        iou_acc=iou_acc,
        pose_ap=pose_ap,
        pose_acc=pose_acc,
        num_gt=num_gt,
        num_pred=num_pred,
        num_frames=42,
    )


def _expected(row: str, metric: str, acc: bool) -> float:
    """The value the formulas give, in [0, 1]; NaN for the missing category."""
    if row == MISSING:
        return math.nan
    r = ROWS.index(row)
    kind, a, b = SUMMARY_METRICS[metric]
    if kind == "iou":
        return float(_iou_curve(r, np.array([a]), acc)[0])
    return float(_pose_curve(r, np.array([a]), np.array([b]), acc)[0, 0])


def _parse_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header columns and {row name: cells} of a table from format_table."""
    lines = text.splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.startswith("category"))
    columns = lines[header_index].split()[1:]
    rows = {}
    for line in lines[header_index + 1 :]:
        parts = line.split()
        if parts and parts[0] in ROWS:
            rows[parts[0]] = parts[1:]
    return columns, rows


@pytest.mark.parametrize("accuracy", [False, True])
def test_table_values_in_place(accuracy: bool) -> None:
    text = format_table(_metrics(), title="my run", accuracy=accuracy)
    columns, rows = _parse_table(text)
    assert columns == list(SUMMARY_METRICS)
    assert list(rows) == ROWS
    for row in ROWS:
        assert len(rows[row]) == len(columns), row
        for metric, cell in zip(columns, rows[row], strict=True):
            expected = _expected(row, metric, accuracy)
            want = "-" if math.isnan(expected) else f"{100 * expected:.1f}"
            assert cell == want, (row, metric, cell, want)


def test_table_header() -> None:
    text = format_table(_metrics("legacy"), title="my run")
    lines = text.splitlines()
    assert lines[0] == "my run"
    assert "mAP" in lines[1] and "legacy" in lines[1] and "published" in lines[1]
    assert "42 frames" in text and "180 ground-truth objects" in text and "190 predictions" in text
    acc = format_table(_metrics("corrected"), accuracy=True)
    first = acc.splitlines()[0]
    assert first.startswith("accuracy") and "corrected" in first
    assert "mAP" not in acc


def test_table_row_order_and_mean_last() -> None:
    _, rows = _parse_table(format_table(_metrics()))
    assert list(rows)[-1] == "mean"
    # Spot-check one number by hand: mean (row 6) IoU50 AP = 0.5 * 7 / 8 = 43.75 % -> "43.8".
    assert rows["mean"][1] == "43.8"


def test_json_round_trip(tmp_path) -> None:
    metrics = _metrics()
    path = write_metrics_json(metrics, tmp_path / "sub" / "metrics.json")
    assert path.exists()
    assert not [p for p in path.parent.iterdir() if p.name != "metrics.json"], "temp file left behind"
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "5°2cm" in text
    d = json.loads(text)
    assert d["iou_mode"] == "legacy" and d["num_frames"] == 42
    assert d["counts"]["bowl"] == {"num_gt": 20, "num_pred": 21}
    assert d["ap"]["IoU50"][MISSING] is None
    assert d["ap"]["IoU50"]["bottle"] == pytest.approx(_expected("bottle", "IoU50", False))
    assert d["accuracy"]["10°5cm"]["mean"] == pytest.approx(_expected("mean", "10°5cm", True))
    curves = d["curves"]
    assert curves["row_names"] == ROWS
    assert np.array(curves["pose_ap"], dtype=float).shape == (7, len(DEFAULT_DEGREE_THRESHOLDS), 22)
    assert curves["iou_ap"][CATEGORIES.index(MISSING)][0] is None

    back = metrics_from_dict(d)
    for key in ("iou_thresholds", "degree_thresholds", "shift_thresholds", "iou_ap", "iou_acc", "pose_ap", "pose_acc"):
        np.testing.assert_array_equal(getattr(back, key), getattr(metrics, key), err_msg=key)  # NaN == NaN here
    np.testing.assert_array_equal(back.num_gt, metrics.num_gt)
    np.testing.assert_array_equal(back.num_pred, metrics.num_pred)
    assert (back.iou_mode, back.num_frames) == (metrics.iou_mode, metrics.num_frames)


def test_metrics_to_dict_is_strict_json() -> None:
    json.dumps(metrics_to_dict(_metrics()), allow_nan=False)  # raises if a NaN slipped through


def test_metrics_from_dict_shape_check() -> None:
    d = metrics_to_dict(_metrics())
    d["curves"]["iou_ap"] = d["curves"]["iou_ap"][:3]
    with pytest.raises(ValueError, match="iou_ap"):
        metrics_from_dict(d)


def _check_png(path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    h, w = image.shape[:2]
    assert 300 <= h <= 2000 and 800 <= w <= 4000, image.shape
    return image


def test_plot_ap_curves(tmp_path) -> None:
    path = plot_ap_curves(_metrics(), tmp_path / "plots" / "ap.png")
    image = _check_png(path)
    rgb = image[..., :3]
    assert rgb.std() > 0.05, "plot looks blank"
    # The thick black mean line: a fair number of (near) black pixels.
    assert np.count_nonzero(rgb.max(axis=-1) < 0.1) > 1000


def test_plot_all_nan_is_still_a_figure(tmp_path) -> None:
    metrics = _metrics()
    for key in ("iou_ap", "iou_acc", "pose_ap", "pose_acc"):
        getattr(metrics, key)[:] = np.nan
    _check_png(plot_ap_curves(metrics, tmp_path / "empty.png"))


def test_plot_from_threads(tmp_path) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            plot_ap_curves(_metrics(), tmp_path / f"ap{i}.png")
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(3):
        _check_png(tmp_path / f"ap{i}.png")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_json_gets_ordinary_permissions(tmp_path) -> None:
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    path = write_metrics_json(_metrics(), tmp_path / "m.json")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
