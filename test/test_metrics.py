"""NOCS metrics: hand-worked AP cases, and the fast evaluation against the slow loop-by-loop version."""

from __future__ import annotations

import numpy as np
import pytest
from _nocs_reference import evaluate as slow_evaluate

from acr_pose_core.categories import CLASS_IDS
from acr_pose_core.evaluation.examples import make_example_frames
from acr_pose_core.evaluation.metrics import average_precision, chamfer_by_category, evaluate_frames
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.geometry import compose_sRT, rotation_about_y

# ---------------------------------------------------------------- AP by hand


def test_ap_hand_worked_with_false_positive_and_miss():
    # 3 ground-truth objects; ranked predictions TP, FP, TP, FP.
    # precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3; envelope 1, 2/3, 2/3, 1/2
    # AP = 1/3 · 1 + 1/3 · 2/3 = 5/9; one object never found.
    ap, acc = average_precision(np.array([True, False, True, False]), np.array([0.9, 0.8, 0.7, 0.6]), num_gt=3)
    assert ap == pytest.approx(5 / 9, abs=1e-7)
    assert acc == pytest.approx(0.5)


def test_ap_ranks_by_score_not_by_input_order():
    ap, _ = average_precision(np.array([False, True]), np.array([0.1, 0.9]), num_gt=1)
    assert ap == pytest.approx(1.0)
    ap, _ = average_precision(np.array([True, False]), np.array([0.1, 0.9]), num_gt=1)
    assert ap == pytest.approx(0.5)


def test_ap_ties_resolve_as_the_reference_reversed_argsort():
    # Equal scores: the reference ranks by np.argsort(scores)[::-1], which puts the later of two tied
    # predictions first. Later one a false positive: precision 0 then 1/2 → AP 1/2.
    ap, _ = average_precision(np.array([True, False]), np.array([0.5, 0.5]), num_gt=1)
    assert ap == pytest.approx(0.5)
    ap, _ = average_precision(np.array([False, True]), np.array([0.5, 0.5]), num_gt=1)
    assert ap == pytest.approx(1.0)


def test_ap_edge_cases_and_many_thresholds_at_once():
    ap, acc = average_precision(np.zeros((2, 0), bool), np.zeros(0), num_gt=4)  # nothing predicted
    np.testing.assert_array_equal(ap, [0.0, 0.0])
    assert np.isnan(acc).all()
    ap, acc = average_precision(np.array([False]), np.array([0.3]), num_gt=0)  # no ground truth
    assert np.isnan(ap) and acc == 0.0
    matched = np.array([[True, True], [True, False], [False, False]])  # three thresholds
    ap, acc = average_precision(matched, np.array([0.9, 0.1]), num_gt=4)
    np.testing.assert_allclose(ap, [0.5, 0.25, 0.0], atol=1e-7)
    np.testing.assert_allclose(acc, [1.0, 0.5, 0.0])


# ---------------------------------------------------------------- whole evaluation by hand

MUG, BOTTLE, LAPTOP = CLASS_IDS["mug"], CLASS_IDS["bottle"], CLASS_IDS["laptop"]
SIZE = np.array([0.6, 0.5, 0.62])


def frame(gt_cls, gt_sRT, pred_cls, pred_sRT, scores, handle=None, pred_size=None):
    g, p = len(gt_cls), len(pred_cls)
    return FrameResult(
        gt_class_ids=gt_cls,
        gt_sRT=np.reshape(gt_sRT, (g, 4, 4)),
        gt_size=np.tile(SIZE, (g, 1)),
        gt_handle_visible=np.ones(g, bool) if handle is None else handle,
        pred_class_ids=pred_cls,
        pred_sRT=np.reshape(pred_sRT, (p, 4, 4)),
        pred_size=np.tile(SIZE, (p, 1)) if pred_size is None else pred_size,
        pred_scores=scores,
    )


def test_perfect_predictions_score_one_and_absent_categories_are_nan():
    pose = compose_sRT(0.2, np.eye(3), [0.0, 0.0, 1.0])
    m = evaluate_frames([frame([LAPTOP], pose, [LAPTOP], pose, [0.9])], iou_mode="legacy")
    row = LAPTOP - 1
    assert m.iou_at(0.75)[row] == pytest.approx(1.0)
    assert m.pose_at(5, 2)[row] == pytest.approx(1.0)
    others = [i for i in range(6) if i != row]
    assert np.isnan(m.iou_ap[others]).all()
    assert m.iou_at(0.5)[-1] == pytest.approx(1.0)  # the mean ignores categories without ground truth
    assert m.num_gt[row] == 1 and m.num_frames == 1


def test_pose_thresholds_and_symmetry_in_the_evaluation():
    gt = compose_sRT(0.2, np.eye(3), [0.0, 0.0, 1.0])
    turned = compose_sRT(0.2, rotation_about_y(np.radians(7)), [0.0, 0.03, 1.0])  # 7° about y, 3 cm off
    # a laptop: 7° and 3 cm → inside 10°5cm only
    m = evaluate_frames([frame([LAPTOP], gt, [LAPTOP], turned, [0.9])])
    r = LAPTOP - 1
    assert m.pose_at(10, 5)[r] == 1.0
    assert m.pose_at(5, 5)[r] == 0.0 and m.pose_at(10, 2)[r] == 0.0
    # a bottle is symmetric about y: the 7° turn does not count
    m = evaluate_frames([frame([BOTTLE], gt, [BOTTLE], turned, [0.9])])
    assert m.pose_at(5, 5)[BOTTLE - 1] == 1.0
    # a mug: symmetric only when its handle is hidden
    m = evaluate_frames([frame([MUG], gt, [MUG], turned, [0.9], handle=np.array([True]))])
    assert m.pose_at(5, 5)[MUG - 1] == 0.0
    m = evaluate_frames([frame([MUG], gt, [MUG], turned, [0.9], handle=np.array([False]))])
    assert m.pose_at(5, 5)[MUG - 1] == 1.0


def test_pose_ap_only_counts_pairs_matched_at_iou_0_1():
    gt = compose_sRT(0.2, np.eye(3), [0.0, 0.0, 1.0])
    # Right pose, absurd size: IoU < 0.1, so the pose metrics see neither the prediction nor the object.
    m = evaluate_frames([frame([LAPTOP], gt, [LAPTOP], gt, [0.9], pred_size=np.array([[0.05, 0.05, 0.05]]))])
    r = LAPTOP - 1
    assert m.iou_at(0.1)[r] == 0.0
    assert np.isnan(m.pose_at(10, 5)[r])  # no matched ground truth: undefined, not 1


def test_duplicate_detections_count_once():
    gt = compose_sRT(0.2, np.eye(3), [0.0, 0.0, 1.0])
    m = evaluate_frames([frame([LAPTOP], gt, [LAPTOP, LAPTOP], np.stack([gt, gt]), [0.9, 0.8])])
    r = LAPTOP - 1
    assert m.iou_at(0.5)[r] == pytest.approx(1.0)  # the first is found first: AP 1
    assert m.iou_at(0.5, accuracy=True)[r] == pytest.approx(0.5)  # but one of two is a false positive


# ---------------------------------------------------------------- fast vs slow

IOU = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9]
DEG = [0.0, 5.0, 10.0, 20.0, 360.0]
CM = [0.0, 2.0, 5.0, 10.0, 100.0]


@pytest.mark.parametrize("mode", ["corrected", "legacy"])
def test_fast_evaluation_equals_slow_version(mode):
    frames = make_example_frames(25, seed=4, miss_rate=0.2, false_positive_rate=0.4, confusion_rate=0.1)
    for f in frames[::3]:  # ties in scores, and duplicate detections of one object
        f.pred_scores = np.round(f.pred_scores, 1)
        if f.num_pred:
            for name in ("pred_class_ids", "pred_sRT", "pred_size", "pred_scores"):
                setattr(f, name, np.concatenate([getattr(f, name), getattr(f, name)[:1]]))
    frames.append(frame([], np.zeros((0, 4, 4)), [], np.zeros((0, 4, 4)), []))  # an empty frame
    fast = evaluate_frames(frames, mode, IOU, DEG, CM)
    iou_ap, iou_acc, pose_ap, pose_acc = slow_evaluate(frames, mode == "legacy", IOU, DEG, CM)
    np.testing.assert_allclose(fast.iou_ap[:6], iou_ap, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fast.iou_acc[:6], iou_acc, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fast.pose_ap[:6], pose_ap, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fast.pose_acc[:6], pose_acc, atol=1e-12, equal_nan=True)
    assert 0.2 < np.nanmean(fast.iou_ap[:6, 3]) < 0.99  # a non-trivial case: neither all hits nor all misses
    np.testing.assert_allclose(fast.iou_ap[6], np.nanmean(iou_ap, axis=0))


def test_threshold_grid_must_hold_the_pose_iou():
    with pytest.raises(ValueError, match="0.1"):
        evaluate_frames([], "corrected", [0.25, 0.5], DEG, CM)


def test_chamfer_by_category():
    a = np.array([[0, 0, 0], [1, 0, 0.0]])
    b = np.array([[0, 0, 0.5]])
    out = chamfer_by_category(np.array([1, 1, 3]), [a, a, b], [b, b, b])
    assert out[0] == pytest.approx(1.0)  # (0.25 + 1.25) / 2 + 0.25
    assert out[2] == pytest.approx(0.0)
    assert np.isnan(out[1]) and out[-1] == pytest.approx(0.5)
