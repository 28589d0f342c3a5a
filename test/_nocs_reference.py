"""A slow, loop-by-loop NOCS evaluation, written from the reference procedure's description, for tests only.

Every pair, threshold and prediction is handled in plain Python loops; nothing is shared with the fast code except
the frame container. The fast :func:`acr_pose_core.evaluation.metrics.evaluate_frames` must agree with it.
"""

from __future__ import annotations

import math

import numpy as np

SYMMETRIC = {1, 2, 4}  # bottle, bowl, can
MUG = 6


def corners(size):
    out = []
    for sx in (1, -1):
        for sy in (1, -1):
            for sz in (1, -1):
                out.append([sx * size[0] / 2, sy * size[1] / 2, sz * size[2] / 2])
    return np.array(out)  # (8, 3); order irrelevant for the extents


def apply(sRT, pts):
    return np.array([sRT[:3, :3] @ p + sRT[:3, 3] for p in pts])


def box_iou(sRT_1, size_1, sRT_2, size_2, legacy):
    c1, c2 = apply(sRT_1, corners(size_1)), apply(sRT_2, corners(size_2))
    if legacy:  # per corner, extent across its x, y, z: 8 "extents", the reference code's reduction
        lo1, hi1 = [min(p) for p in c1], [max(p) for p in c1]
        lo2, hi2 = [min(p) for p in c2], [max(p) for p in c2]
        # the reference pairs corners by index: the same corner order must be used for both boxes
    else:
        lo1, hi1 = [min(c1[:, a]) for a in range(3)], [max(c1[:, a]) for a in range(3)]
        lo2, hi2 = [min(c2[:, a]) for a in range(3)], [max(c2[:, a]) for a in range(3)]
    overlap = [min(h1, h2) - max(l1, l2) for l1, h1, l2, h2 in zip(lo1, hi1, lo2, hi2, strict=True)]
    inter = 0.0 if min(overlap) < 0 else math.prod(overlap)
    vol1 = math.prod(h - lo for lo, h in zip(lo1, hi1, strict=True))
    vol2 = math.prod(h - lo for lo, h in zip(lo2, hi2, strict=True))
    union = vol1 + vol2 - inter
    return inter / union


def symmetric(class_id, handle_visible):
    return class_id in SYMMETRIC or (class_id == MUG and not handle_visible)


def iou(pred_sRT, pred_size, gt_sRT, gt_size, sym, legacy):
    if not sym:
        return box_iou(pred_sRT, pred_size, gt_sRT, gt_size, legacy)
    best = 0.0
    for k in range(20):
        a = 2 * math.pi * k / 20
        turn = np.array(
            [[math.cos(a), 0, math.sin(a), 0], [0, 1, 0, 0], [-math.sin(a), 0, math.cos(a), 0], [0, 0, 0, 1]]
        )
        best = max(best, box_iou(pred_sRT @ turn, pred_size, gt_sRT, gt_size, legacy))
    return best


def errors(pred_sRT, gt_sRT, sym):
    R1 = pred_sRT[:3, :3] / np.cbrt(np.linalg.det(pred_sRT[:3, :3]))
    R2 = gt_sRT[:3, :3] / np.cbrt(np.linalg.det(gt_sRT[:3, :3]))
    if sym:
        y1, y2 = R1 @ [0, 1, 0], R2 @ [0, 1, 0]
        cos = y1 @ y2 / (np.linalg.norm(y1) * np.linalg.norm(y2))
    else:
        cos = (np.trace(R1 @ R2.T) - 1) / 2
    return math.degrees(math.acos(min(1.0, max(-1.0, cos)))), 100 * np.linalg.norm(pred_sRT[:3, 3] - gt_sRT[:3, 3])


def ap_and_acc(matches, scores, num_gt):
    order = np.argsort(np.array(scores, dtype=np.float64))[::-1]
    tp = [matches[i] for i in order]
    precisions, recalls, hits = [], [], 0
    for k, t in enumerate(tp):
        hits += t
        precisions.append(hits / (k + 1))
        recalls.append(float(np.float32(hits) / np.float32(num_gt)) if num_gt else float("nan"))
    p = [0.0, *precisions, 0.0]
    r = [0.0, *recalls, 1.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    ap = sum((r[i] - r[i - 1]) * p[i] for i in range(1, len(r)) if r[i] != r[i - 1])
    acc = sum(tp) / len(tp) if tp else float("nan")
    return (ap if num_gt else float("nan")), acc


def evaluate(frames, legacy, iou_thresholds, degree_thresholds, shift_thresholds, pose_iou=0.1):
    """Returns ``iou_ap (6, S), pose_ap (6, D, T)`` (rows: classes 1..6), and the accuracies likewise."""
    S, D, T = len(iou_thresholds), len(degree_thresholds), len(shift_thresholds)
    pose_s = [abs(t - pose_iou) < 1e-9 for t in iou_thresholds].index(True)
    iou_m = {c: [[] for _ in range(S)] for c in range(1, 7)}
    iou_sc = {c: [] for c in range(1, 7)}
    pose_m = {c: [[[] for _ in range(T)] for _ in range(D)] for c in range(1, 7)}
    pose_sc = {c: [] for c in range(1, 7)}
    n_gt = {c: 0 for c in range(1, 7)}
    n_pose_gt = {c: 0 for c in range(1, 7)}
    for f in frames:
        for c in range(1, 7):
            gts = [j for j in range(f.num_gt) if f.gt_class_ids[j] == c]
            preds = [i for i in range(f.num_pred) if f.pred_class_ids[i] == c]
            if not gts and not preds:
                continue
            if preds:
                order = np.argsort(f.pred_scores[preds])[::-1]
                preds = [preds[k] for k in order]
            sym = [symmetric(c, f.gt_handle_visible[j]) for j in gts]
            ov = [
                [
                    iou(f.pred_sRT[i], f.pred_size[i], f.gt_sRT[j], f.gt_size[j], sym[b], legacy)
                    for b, j in enumerate(gts)
                ]
                for i in preds
            ]
            pose_pred_ok, pose_gt_ok = None, None
            for s, thr in enumerate(iou_thresholds):
                gt_used = [-1] * len(gts)
                pred_hit = [-1] * len(preds)
                for a in range(len(preds)):
                    for b in np.argsort(np.array(ov[a], dtype=np.float64))[::-1]:
                        if gt_used[b] > -1:
                            continue
                        if ov[a][b] < thr:
                            break
                        if ov[a][b] > thr:
                            gt_used[b], pred_hit[a] = a, b
                            break
                iou_m[c][s].extend(h > -1 for h in pred_hit)
                if s == pose_s:
                    pose_pred_ok = [h > -1 for h in pred_hit]
                    pose_gt_ok = [u > -1 for u in gt_used]
            iou_sc[c].extend(f.pred_scores[i] for i in preds)
            n_gt[c] += len(gts)
            pp = [i for a, i in enumerate(preds) if pose_pred_ok[a]]
            gg = [b for b in range(len(gts)) if pose_gt_ok[b]]
            err = [[errors(f.pred_sRT[i], f.gt_sRT[gts[b]], sym[b]) for b in gg] for i in pp]
            for d, dthr in enumerate(degree_thresholds):
                for t, tthr in enumerate(shift_thresholds):
                    gt_used = [-1] * len(gg)
                    for a in range(len(pp)):
                        hit = -1
                        for b in np.argsort(np.array([e[0] + e[1] for e in err[a]], dtype=np.float64)):
                            if gt_used[b] > -1:
                                continue
                            if err[a][b][0] > dthr or err[a][b][1] > tthr:
                                continue
                            gt_used[b], hit = a, b
                            break
                        pose_m[c][d][t].append(hit > -1)
            pose_sc[c].extend(f.pred_scores[i] for i in pp)
            n_pose_gt[c] += len(gg)
    iou_ap, iou_acc = np.zeros((6, S)), np.zeros((6, S))
    pose_ap, pose_acc = np.zeros((6, D, T)), np.zeros((6, D, T))
    for c in range(1, 7):
        for s in range(S):
            iou_ap[c - 1, s], iou_acc[c - 1, s] = ap_and_acc(iou_m[c][s], iou_sc[c], n_gt[c])
        for d in range(D):
            for t in range(T):
                pose_ap[c - 1, d, t], pose_acc[c - 1, d, t] = ap_and_acc(pose_m[c][d][t], pose_sc[c], n_pose_gt[c])
    return iou_ap, iou_acc, pose_ap, pose_acc
