"""A user's camera file: every documented form gives the same camera; values that are not a pinhole camera's numbers
are refused naming the file, never reduced to four numbers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from acr_pose_core.data.frame_files import MAX_IMAGE_SIDE, read_color_file, read_depth_file, read_intrinsics_file
from acr_pose_core.detection import InputError
from acr_pose_core.pipeline import check_frame

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


def test_a_truncated_jpeg_is_refused_and_a_whole_one_read(tmp_path):
    y, x = np.mgrid[0:240, 0:320]
    bgr = np.stack([np.full_like(x, 200), y, x // 2], -1).astype(np.uint8)  # smooth ramps survive JPEG
    cv2.imwrite(str(tmp_path / "whole.jpg"), bgr)
    data = (tmp_path / "whole.jpg").read_bytes()
    rgb = read_color_file(tmp_path / "whole.jpg")
    assert rgb.shape == (240, 320, 3) and np.abs(rgb.astype(int) - bgr[..., ::-1]).mean() < 5  # lossy, RGB order
    (tmp_path / "cut.jpg").write_bytes(data[: 3 * len(data) // 4])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # OpenCV alone decodes it, grey-filled
    with pytest.raises(ValueError, match="cut.jpg: a truncated JPEG"):
        read_color_file(tmp_path / "cut.jpg")


def test_images_larger_than_the_limit_are_refused_before_decoding(tmp_path):
    wide = np.zeros((2, MAX_IMAGE_SIDE + 1, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    with pytest.raises(ValueError, match=f"wide.png: {MAX_IMAGE_SIDE + 1}x2 pixels, larger than {MAX_IMAGE_SIDE}"):
        read_color_file(tmp_path / "wide.png")
    cv2.imwrite(str(tmp_path / "tall_depth.png"), np.zeros((MAX_IMAGE_SIDE + 1, 2), np.uint16))
    with pytest.raises(ValueError, match="tall_depth.png: 2x4097 pixels"):
        read_depth_file(tmp_path / "tall_depth.png")
    np.save(tmp_path / "tall.npy", np.zeros((MAX_IMAGE_SIDE + 1, 2), np.float32))
    with pytest.raises(ValueError, match="tall.npy: 2x4097 pixels"):
        read_depth_file(tmp_path / "tall.npy")
    cv2.imwrite(str(tmp_path / "edge.png"), np.zeros((2, MAX_IMAGE_SIDE, 3), np.uint8))  # at the limit: read
    assert read_color_file(tmp_path / "edge.png").shape == (2, MAX_IMAGE_SIDE, 3)
    K = np.array([[500.0, 0, 10], [0, 500, 10], [0, 0, 1]])
    with pytest.raises(InputError, match="larger than 4096 on a side"):
        check_frame(np.zeros((2, MAX_IMAGE_SIDE + 1, 3), np.uint8), np.zeros((2, MAX_IMAGE_SIDE + 1), np.uint16), K)
