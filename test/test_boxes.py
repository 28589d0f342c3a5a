"""3D IoU of NOCS boxes in both modes, with hand-worked answers and a slow per-corner version."""

from __future__ import annotations

import numpy as np
import pytest
from _nocs_reference import iou as slow_iou

from acr_pose_core.geometry import box_corners, compose_sRT, iou_3d, random_rotations, rotation_about_y

UNIT = np.ones(3)


def at(scale, t=(0.0, 0.0, 2.0), R=None):
    return compose_sRT(scale, np.eye(3) if R is None else R, np.asarray(t, dtype=np.float64))


def test_corners_span_the_box():
    c = box_corners(np.array([0.2, 0.4, 0.6]))
    assert c.shape == (8, 3)
    np.testing.assert_allclose(c.min(0), [-0.1, -0.2, -0.3])
    np.testing.assert_allclose(c.max(0), [0.1, 0.2, 0.3])
    assert len({tuple(p) for p in c}) == 8


@pytest.mark.parametrize("mode", ["corrected", "legacy"])
def test_box_with_itself_is_one(mode):
    rng = np.random.default_rng(0)
    for R in random_rotations(5, rng):
        sRT = at(0.3, (0.1, -0.05, 0.9), R)
        size = np.array([0.5, 0.7, 0.5]) / np.linalg.norm([0.5, 0.7, 0.5])
        assert iou_3d(sRT, size, sRT, size, mode=mode) == pytest.approx(1.0)


def test_corrected_scaled_and_shifted_copies():
    # a cube against itself scaled by 0.8 about its centre: (0.8)^3
    assert iou_3d(at(0.8), UNIT, at(1.0), UNIT) == pytest.approx(0.512)
    # shifted by half its width along x: overlap 0.5, union 1.5
    assert iou_3d(at(1.0, (0.5, 0, 2)), UNIT, at(1.0), UNIT) == pytest.approx(1 / 3)
    # disjoint
    assert iou_3d(at(1.0, (1.5, 0, 2)), UNIT, at(1.0), UNIT) == 0.0


def test_legacy_scaled_copy_hand_worked():
    """Unit cube 2 m ahead (z = 2) against itself scaled by 0.8, in the reference code's reduction.

    Corner (a, b, c)·s/2 + (0, 0, 2) has "extent" [min(a, b)·s/2, 2 + c·s/2] across its own x, y, z.
    Overlaps per corner: m = min(a, b) = 1 (1 corner pair) or −1 (3), c = ±1:
    (m=1, c=1) 2.4 − 0.5 = 1.9; (1, −1) 1.5 − 0.5 = 1.0; (−1, 1) 2.4 + 0.4 = 2.8 ×3; (−1, −1) 1.5 + 0.4 = 1.9 ×3.
    Volumes: s = 1: 2 · 1 · 3³ · 2³ = 432; s = 0.8: 2 · 1.2 · 2.8³ · 2³ = 421.4784.
    """
    inter = 1.9 * 1.0 * 2.8**3 * 1.9**3
    expected = inter / (432 + 421.4784 - inter)
    assert expected == pytest.approx(0.5042, abs=1e-4)
    assert iou_3d(at(0.8), UNIT, at(1.0), UNIT, mode="legacy") == pytest.approx(expected, rel=1e-12)
    # the legacy value depends on where the box is; the corrected one does not
    far = iou_3d(at(0.16, (0.1, 0.05, 0.8)), UNIT, at(0.2, (0.1, 0.05, 0.8)), UNIT, mode="legacy")
    assert abs(far - 0.512) > 0.1
    assert iou_3d(at(0.16, (0.1, 0.05, 0.8)), UNIT, at(0.2, (0.1, 0.05, 0.8)), UNIT) == pytest.approx(0.512)


def test_legacy_shifted_copy_hand_worked():
    """Unit cube at z = 2 against a copy shifted by +0.5 in z: per-corner intervals [min(a,b)/2, 2 + c/2 (+0.5)]."""
    # box 1 extents: m=1: [0.5, 2.5] / [0.5, 1.5]; m=−1: [−0.5, 2.5] / [−0.5, 1.5]  (c = +1 / −1)
    # box 2 (z + 0.5): hi grows by 0.5: [.., 3.0] / [.., 2.0]; lo unchanged
    # overlaps: m=1: 2.0, 1.0; m=−1 (×3): 3.0, 2.0 → inter = 2 · 1 · 27 · 8 = 432
    # volumes: box 1: 2 · 1 · 3³ · 2³ = 432; box 2: 2.5 · 1.5 · 3.5³ · 2.5³ = 2512.3...
    inter = 2.0 * 1.0 * 3.0**3 * 2.0**3
    v2 = 2.5 * 1.5 * 3.5**3 * 2.5**3
    expected = inter / (432 + v2 - inter)
    assert iou_3d(at(1.0, (0, 0, 2.5)), UNIT, at(1.0), UNIT, mode="legacy") == pytest.approx(expected)


def test_symmetric_objects_take_the_best_turn_about_y():
    size = np.array([0.4, 0.8, 0.2])
    size /= np.linalg.norm(size)
    gt = at(0.2, (0.0, 0.0, 1.0))
    turned = at(0.2, (0.0, 0.0, 1.0), rotation_about_y(np.radians(90)))  # a flat box turned a quarter
    plain = iou_3d(turned, size, gt, size)
    assert plain < 0.6
    assert iou_3d(turned, size, gt, size, y_symmetric=True) == pytest.approx(1.0)
    # broadcast over pairs with per-pair symmetry flags
    out = iou_3d(np.stack([turned, turned]), size, gt, size, y_symmetric=np.array([False, True]))
    np.testing.assert_allclose(out, [plain, 1.0])


@pytest.mark.parametrize("mode", ["corrected", "legacy"])
def test_iou_matches_slow_per_corner_version(mode):
    rng = np.random.default_rng(3)
    R1, R2 = random_rotations(12, rng), random_rotations(12, rng)
    for k in range(12):
        s1, s2 = rng.uniform(0.1, 0.3, 2)
        t1 = rng.normal(0, 0.05, 3) + [0, 0, 1]
        t2 = t1 + rng.normal(0, 0.03, 3)
        z1, z2 = rng.uniform(0.2, 1, 3), rng.uniform(0.2, 1, 3)
        sym = bool(k % 2)
        fast = iou_3d(compose_sRT(s1, R1[k], t1), z1, compose_sRT(s2, R2[k], t2), z2, y_symmetric=sym, mode=mode)
        slow = slow_iou(compose_sRT(s1, R1[k], t1), z1, compose_sRT(s2, R2[k], t2), z2, sym, mode == "legacy")
        assert fast == pytest.approx(slow, rel=1e-9, abs=1e-12)


def test_iou_rejects_unknown_mode():
    with pytest.raises(ValueError, match="corrected"):
        iou_3d(at(1), UNIT, at(1), UNIT, mode="strict")
