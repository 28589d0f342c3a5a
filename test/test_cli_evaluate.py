"""``acr-pose evaluate`` end to end: files written, numbers equal to the library's, both input formats, errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from acr_pose_core.cli.main import main
from acr_pose_core.evaluation import evaluate_frames, make_example_frames
from acr_pose_core.evaluation.results_io import frame_to_dict


def test_example_evaluation_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--example", "30", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mAP (%)" in printed and "accuracy (%)" in printed and "corrected" in printed
    assert len(list((out / "example_predictions").glob("*.npz"))) == 30
    table = (out / "table.txt").read_text()
    assert "IoU50" in table and "10°5cm" in table
    assert (out / "ap_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((out / "metrics.json").read_text())
    direct = evaluate_frames(make_example_frames(30, seed=3))
    assert written["iou_mode"] == "corrected"
    for name, values in direct.summary().items():
        assert written["ap"][name]["mean"] == pytest.approx(values["mean"]), name


@pytest.mark.parametrize("mode", ["corrected", "legacy"])
def test_spd_pickles_and_acr_files_give_the_same_numbers(tmp_path, mode):
    frames = make_example_frames(12, seed=5)
    spd = tmp_path / "spd"
    spd.mkdir()
    for f in frames:
        with open(spd / f"results_{f.name}.pkl", "wb") as fh:
            pickle.dump(frame_to_dict(f), fh, protocol=2)
    assert main(["evaluate", str(spd), "--format", "spd", "--iou", mode, "--out", str(tmp_path / "a")]) == 0
    assert main(["evaluate", "--example", "12", "--seed", "5", "--iou", mode, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["iou_mode"] == b["iou_mode"] == mode
    np.testing.assert_allclose(
        np.array(a["curves"]["pose_ap"], dtype=float), np.array(b["curves"]["pose_ap"], dtype=float), equal_nan=True
    )
    assert a["ap"] == b["ap"]


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["evaluate", "--out", str(tmp_path / "o")]) == 2
    assert "PRED_DIR" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", str(empty), "--format", "spd", "--out", str(tmp_path / "o")]) == 2
    assert "results_*.pkl" in capsys.readouterr().err


def test_writing_the_evaluation_into_the_prediction_folder_is_refused(tmp_path, capsys):
    assert main(["evaluate", "--example", "3", "--out", str(tmp_path / "ex")]) == 0
    pred = tmp_path / "ex" / "example_predictions"
    before = sorted(p.name for p in pred.iterdir())
    capsys.readouterr()
    assert main(["evaluate", str(pred), "--out", str(pred / "." / ""), "--no-plots"]) == 2
    assert "is the prediction folder" in capsys.readouterr().err
    assert sorted(p.name for p in pred.iterdir()) == before  # nothing written among the predictions
    assert main(["evaluate", str(pred), "--out", str(tmp_path / "elsewhere"), "--no-plots"]) == 0
