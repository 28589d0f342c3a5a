"""A user's camera file: every documented form gives the same camera; values that are not a pinhole camera's numbers
are refused naming the file, never reduced to four numbers."""

from __future__ import annotations

import json

import pytest

from acr_pose_core.data.frame_files import read_intrinsics_file

K = [[600.0, 0.0, 320.5], [0.0, 610.0, 240.25], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    "name, content",
    [
        ("cam.json", json.dumps({"fx": 600, "fy": 610.0, "cx": 320.5, "cy": 240.25, "width": 640, "height": 480})),
        ("cam.json", json.dumps({"K": K})),
        ("cam.json", json.dumps({"k": [v for row in K for v in row]})),  # camera_info's flat k
        ("cam.txt", "600 610 320.5 240.25"),
        ("cam.txt", "\n".join(", ".join(str(v) for v in row) for row in K)),
    ],
)
def test_every_documented_form_gives_the_same_camera(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    camera = read_intrinsics_file(tmp_path / name, 640, 480)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (600.0, 610.0, 320.5, 240.25)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("cam.json", json.dumps({"fx": True, "fy": 610, "cx": 320, "cy": 240}), "fx must be a number, got true"),
        ("cam.json", json.dumps({"fx": None, "fy": 610, "cx": 320, "cy": 240}), "fx must be a number, got null"),
        ("cam.json", json.dumps({"fx": [600], "fy": 610, "cx": 320, "cy": 240}), "fx must be a number"),
        ("cam.json", json.dumps({"fx": {"v": 1}, "fy": 610, "cx": 320, "cy": 240}), "fx must be a number"),
        ("cam.json", json.dumps({"fx": "600", "fy": 610, "cx": 320, "cy": 240}), "fx must be a number"),
        ("cam.json", json.dumps({"K": [[600, 2, 320], [0, 610, 240], [0, 0, 1]]}), "pinhole matrix"),  # skew
        ("cam.json", json.dumps({"K": [[600, 0, 320], [0, 610, 240], [0, 0, 2]]}), "pinhole matrix"),
        ("cam.json", json.dumps({"K": [[600, 0, 320], [0, 610, 240]]}), "K must be 9 numbers"),
        ("cam.json", json.dumps({"K": "600 0 320"}), "K must be 9 numbers"),
        ("cam.json", json.dumps({"K": [[600, 0, 320], [0, 610, None], [0, 0, 1]]}), "K must be a number"),
        ("cam.json", json.dumps({"fx": 1, "fy": 1, "cx": 1, "cy": 1, "width": 640.5, "height": 480}), "width must"),
        ("cam.json", json.dumps({"fx": 1, "fy": 1, "cx": 1, "cy": 1, "width": 320, "height": 240}), "is 320x240"),
        ("cam.txt", "600 0.5 320 0 610 240 0 0 1", "pinhole matrix"),
        ("cam.txt", "600 610 320", "got 3"),
        ("cam.json", "[1, 2]", "expected an object"),
    ],
)
def test_values_that_are_not_a_pinhole_camera_are_refused_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        read_intrinsics_file(tmp_path / name, 640, 480)


def test_a_binary_file_is_refused_naming_it(tmp_path):
    (tmp_path / "cam.txt").write_bytes(b"\xff\xfe\x00\x01" * 8)
    with pytest.raises(ValueError, match=r"cam\.txt: not a text file"):
        read_intrinsics_file(tmp_path / "cam.txt", 640, 480)
