"""One object of a frame → model inputs (acr_pose_core.data.instance): built on a hand-made frame, then checked."""

from __future__ import annotations

import numpy as np
import pytest

from acr_pose_core.data.instance import crop_window, instance_inputs
from acr_pose_core.geometry import CameraIntrinsics, backproject

CAMERA = CameraIntrinsics(fx=500.0, fy=510.0, cx=79.5, cy=59.5, width=160, height=120)


def frame(seed: int = 0):
    """A 160×120 frame: a slanted plate (rows 30–70, columns 40–100) 0.6–0.8 m away, a few pixels without depth."""
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    depth = np.zeros((120, 160), dtype=np.uint16)
    mask = np.zeros((120, 160), dtype=bool)
    mask[30:70, 40:100] = True
    depth[mask] = (600 + 3 * np.arange(60))[None].repeat(40, 0).ravel()  # millimetres, rising to the right
    depth[35, 50] = depth[60, 90] = 0  # holes
    depth[0:10, 0:10] = 900  # background
    return color, depth, mask


def test_points_are_the_back_projected_object_pixels_and_choose_maps_into_the_crop():
    color, depth, mask = frame()
    bbox = (30, 40, 70, 100)
    out = instance_inputs(color, depth, mask, bbox, CAMERA, num_points=256, image_size=32, rng=np.random.default_rng(1))
    every, pixels = backproject(depth / 1000.0, CAMERA, mask)  # the obvious way, all object pixels with depth
    assert out.num_valid == len(every) == 40 * 60 - 2
    assert out.window == crop_window(bbox, (120, 160))
    flat = out.rows * 160 + out.cols
    assert len(np.unique(flat)) == 256 and np.all(np.diff(flat) > 0)  # drawn without replacement, pixel order
    np.testing.assert_allclose(out.points, every[np.searchsorted(pixels, flat)], rtol=0, atol=1e-12)
    rmin, rmax, cmin, cmax = out.window
    ratio = 32 / (rmax - rmin)
    np.testing.assert_array_equal(
        out.choose, np.floor((out.rows - rmin) * ratio) * 32 + np.floor((out.cols - cmin) * ratio)
    )
    assert out.rgb.shape == (32, 32, 3) and out.rgb.dtype == np.uint8


def test_metres_with_nan_equal_millimetres_and_few_pixels_repeat():
    color, depth, mask = frame()
    metres = (depth / 1000.0).astype(np.float32)
    metres[depth == 0] = np.nan  # a 32FC1 camera marks missing depth with NaN
    metres[45, 45] = np.inf
    depth[45, 45] = 0
    bbox = (30, 40, 70, 100)
    mm = instance_inputs(color, depth, mask, bbox, CAMERA, 64, 32, np.random.default_rng(2))
    m = instance_inputs(color, metres, mask, bbox, CAMERA, 64, 32, np.random.default_rng(2), depth_units_per_metre=1)
    assert mm.num_valid == m.num_valid == 40 * 60 - 3
    np.testing.assert_array_equal(mm.rows, m.rows)
    np.testing.assert_allclose(m.points, mm.points, rtol=1e-6)  # float32 metres against exact millimetres
    small = np.zeros_like(mask)
    small[50, 60:65] = True  # five pixels for 8 points: repeated cyclically
    few = instance_inputs(color, depth, small, (50, 60, 51, 65), CAMERA, 8, 16, np.random.default_rng(0))
    assert few.num_valid == 5 and list(few.cols) == [60, 61, 62, 63, 64, 60, 61, 62]


def test_an_object_without_depth_gets_zeros_and_bad_sizes_are_refused():
    color, depth, mask = frame()
    hole = np.zeros_like(mask)
    hole[35, 50] = True  # its only pixel has no depth
    out = instance_inputs(color, depth, hole, (35, 50, 36, 51), CAMERA, 16, 16, np.random.default_rng(0))
    assert out.num_valid == 0 and not out.points.any() and not out.choose.any()
    with pytest.raises(ValueError, match="same H×W"):
        instance_inputs(color[:, :100], depth, mask, (30, 40, 70, 100), CAMERA, 16, 16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="the camera is 120x160, the images 60x80"):
        instance_inputs(color[::2, ::2], depth[::2, ::2], mask[::2, ::2], (0, 0, 10, 10), CAMERA, 16, 16,
                        np.random.default_rng(0))  # fmt: skip
