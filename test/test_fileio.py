"""Strict JSON and atomic writes (acr_pose_core.fileio)."""

from __future__ import annotations

import math

from conftest import strict_json

from acr_pose_core.fileio import finite_or_none, json_text, write_atomically


def test_json_text_writes_non_finite_numbers_as_null_at_any_depth():
    value = {"a": float("nan"), "b": [1.0, float("inf"), (float("-inf"), 2)], "c": {"d": math.nan}, "e": "NaN"}
    text = json_text(value, indent=1)
    assert strict_json(text) == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": None}, "e": "NaN"}
    assert finite_or_none(3.5) == 3.5 and finite_or_none(True) is True and finite_or_none(None) is None


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    write_atomically(path, json_text({"v": 1}))
    write_atomically(path, json_text({"v": float("nan")}))
    assert strict_json(path.read_text()) == {"v": None}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
