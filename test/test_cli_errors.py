"""The `acr-pose` command on bad input: one table of (command, files, expected message), each a one-line error that
names the file or setting, exit status 2, nothing written (issue 22's crash cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acr_pose_core.cli.main import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")
DETECTOR = str(REPO / "config" / "detector_default_cpu.yaml")

FILES = {"list.yaml": "- a\n- b\n", "scalar.yaml": "3\n", "cam.json": '{"fx": 500, "fy": 500, "cx": 2, "cy": 2}'}

CASES = [
    (["train", "--config", "list.yaml"], "list.yaml: expected a mapping of TrainConfig fields, got list"),
    (["train", "--config", "scalar.yaml"], "scalar.yaml: expected a mapping of TrainConfig fields, got int"),
    (["train", "--config", TINY, "--set", "lr_reconstructor=[1"], "the value is not valid YAML"),
    (["train", "--config", TINY, "--set", "lr_reconstructor=.inf"], "lr_reconstructor: expected a finite number"),
    (["train", "--config", TINY, "--set", "dataset.shift_range=.nan"], "shift_range: expected a finite number"),
    (["train", "--config", TINY, "--set", "samples_per_epoch=1e12"], "samples_per_epoch: expected int"),
    (["train", "--config", TINY, "--set", "no_such_key=1"], "unknown key(s) ['no_such_key']"),
    (["train", "--config", "missing.yaml"], "missing.yaml: no such configuration file"),
    (["train-detector", "--config", "list.yaml"], "expected a mapping of DetectorTrainConfig fields"),
    (["train-detector", "--config", DETECTOR, "--set", "lr=.inf"], "lr: expected a finite number"),
    (["infer", "--rgb", "none.png", "--depth", "none_depth.png", "--intrinsics", "cam.json"], "none.png: no such file"),
    (["evaluate-model", "--data", "nowhere"], "nowhere"),
    (["demo", "--device", "bogus"], "bogus"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(Path(a).name for a in c[0][:3]) for c in CASES])
def test_bad_input_is_one_clear_error(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    before = set(tmp_path.iterdir())
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 3, err  # a message, not a report
    assert set(tmp_path.iterdir()) == before  # nothing written
