"""``acr-pose demo``: estimate the poses in a generated scene with known ground truth and draw them.

Example::

    acr-pose demo                                 # scene 0 of the test split (instances never trained on)
    acr-pose demo --seed 3 --profile real --out runs/demo3
    acr-pose demo --rgb shot.png --depth shot_depth.png --intrinsics camera.json   # your frame (as acr-pose infer)

Renders one frame (:func:`acr_pose_core.synth.generate.scene_frame`), runs the
:class:`~acr_pose_core.pipeline.PoseEstimator` with the model folder given (default: the shipped one) with its
segmenter's masks (``--masks gt``: the frame's true masks; the default for a folder without a segmenter), matches
each estimate to the true object whose mask overlaps its mask most (IoU ≥ 0.5, same category), prints each
object's category, pose and size with its error against the truth, and writes ``OUT/demo.png`` (estimated boxes
and axes over the image, true boxes in white), ``OUT/demo.json`` (the estimates, the truth, the errors, the timing)
and ``OUT/input_color.png`` / ``OUT/input_depth.png`` (the frame).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "estimate the poses of the objects in a generated scene with known ground truth, print and draw them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped default model)")
    parser.add_argument(
        "--profile",
        choices=("camera", "real"),
        default="camera",
        help="camera: NOCS-CAMERA-like rendering (default); real: with a depth-sensor model",
    )
    parser.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help="instance split of the objects (default test: never seen in training)",
    )
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--view", type=int, default=0, help="which of the scene's 10 views (default 0)")
    parser.add_argument("--device", default="auto", help="torch device (default auto: CUDA when available)")
    parser.add_argument(
        "--masks",
        choices=("model", "gt"),
        help="model: the model folder's segmenter (the default when it has one); gt: the true masks",
    )
    parser.add_argument("--rgb", type=Path, help="your own frame instead of a generated one: its colour image ...")
    parser.add_argument("--depth", type=Path, help="... its depth image (16-bit mm PNG or float metres) ...")
    parser.add_argument("--intrinsics", type=Path, help="... and its camera (see acr-pose infer --help)")


def run(args: argparse.Namespace) -> int:
    if args.rgb is not None or args.depth is not None or args.intrinsics is not None:
        from acr_pose_core.cli import infer  # your own frame: no truth to compare with, so it is what infer does

        if args.intrinsics is None:
            raise ValueError("give --rgb, --depth and --intrinsics together")
        return infer.run(argparse.Namespace(
            rgb=args.rgb, depth=args.depth, folder=None, intrinsics=args.intrinsics, depth_scale=None,
            model=args.model, masks=args.masks or "model", out=args.out, device=args.device))  # fmt: skip
    import cv2
    import numpy as np

    from acr_pose_core.categories import category_name, is_y_symmetric
    from acr_pose_core.data.detection_frames import frame_objects
    from acr_pose_core.detection import detections_from_frame
    from acr_pose_core.evaluation.draw import CATEGORY_COLOURS, BoxDrawing, draw_boxes
    from acr_pose_core.evaluation.instance_ap import mask_iou
    from acr_pose_core.fileio import json_text, write_atomically
    from acr_pose_core.geometry import iou_3d, pose_errors
    from acr_pose_core.geometry.camera import CameraIntrinsics
    from acr_pose_core.pipeline import PoseEstimator
    from acr_pose_core.synth.generate import GenerateConfig, scene_frame

    config = GenerateConfig(out=Path("."), profile=args.profile, split=args.split, seed=args.seed)
    started = time.perf_counter()
    estimator = PoseEstimator(args.model, device=args.device)
    load_seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)  # once the model and device are good: a refusal writes nothing
    print(f"[demo] model {estimator.model.path} on {estimator.device} ({load_seconds:.1f} s to load)")

    started = time.perf_counter()
    frame = scene_frame(config, scene_index=0, frame_index=args.view)
    render_seconds = time.perf_counter() - started
    label = frame.label
    H, W = frame.image_size
    camera = CameraIntrinsics.from_matrix(label.intrinsics, W, H)
    inst_ids, _, true_masks, _ = frame_objects(frame)  # the visible instances, in meta order
    labels = {inst.inst_id: inst for inst in label.instances}
    truth = [labels[int(i)] for i in inst_ids]
    masks = args.masks or ("model" if estimator.mask_source is not None else "gt")
    if masks == "model" and estimator.mask_source is None:
        raise ValueError(f"the model folder {estimator.model.path} has no segmenter: use --masks gt")
    detections = detections_from_frame(frame) if masks == "gt" else None

    started = time.perf_counter()
    result = estimator.estimate(frame.color, frame.depth, camera, masks=detections)
    estimate_seconds = time.perf_counter() - started

    rows, boxes = [], [BoxDrawing(t.sRT, t.size, colour=(255, 255, 255), thickness=1, axes=False) for t in truth]
    for obj in result.objects:
        overlap = mask_iou(obj.mask[None], true_masks)[0] if len(truth) else np.zeros(0)  # (G,)
        if not len(truth) or overlap.max() < 0.5 or truth[int(overlap.argmax())].class_id != obj.class_id:
            rows.append({**obj.to_dict(), "truth": None})  # a false detection: no object of its class there
            boxes.append(BoxDrawing(obj.sRT, obj.size_nocs, f"{obj.category}?", CATEGORY_COLOURS[obj.category]))
            continue
        gt = truth[int(overlap.argmax())]
        symmetric = bool(is_y_symmetric(np.array([gt.class_id]), np.array([gt.handle_visible]))[0])
        deg, cm = pose_errors(obj.sRT, gt.sRT, symmetric)
        iou = iou_3d(obj.sRT, obj.size_nocs, gt.sRT, gt.size, symmetric)
        rows.append(
            {
                **obj.to_dict(),
                "error_deg": float(deg),
                "error_cm": float(cm),
                "iou_3d": float(iou),
                "truth": {
                    "inst_id": gt.inst_id,
                    "sRT": gt.sRT.tolist(),
                    "size_nocs": gt.size.tolist(),
                    "scale": gt.scale,
                },
            }
        )
        boxes.append(
            BoxDrawing(
                obj.sRT, obj.size_nocs, f"{obj.category} {deg:.0f}deg {cm:.1f}cm", CATEGORY_COLOURS[obj.category]
            )
        )

    print(
        f"[demo] scene seed {args.seed} ({args.profile}, {args.split} split), view {args.view}: {len(truth)} "
        f"objects, masks: {'ground truth' if masks == 'gt' else 'the segmenter'}"
    )
    print(f"{'category':<8} {'t (m)':>22} {'size (cm)':>17} {'rot err':>8} {'trans err':>9} {'IoU':>5}")
    for row in rows:
        t = " ".join(f"{v:+.3f}" for v in row["translation_m"])
        size = " ".join(f"{100 * v:.1f}" for v in row["size_m"])
        if row["truth"] is None:
            print(f"{row['category']:<8} {t:>22} {size:>17}   no such object there (a false detection)")
            continue
        print(
            f"{row['category']:<8} {t:>22} {size:>17} {row['error_deg']:>6.1f}° {row['error_cm']:>6.1f} cm "
            f"{row['iou_3d']:>5.2f}"
        )
    for dropped in result.dropped:
        print(f"{dropped.category:<8} dropped: {dropped.reason}")
    found = {row["truth"]["inst_id"] for row in rows if row["truth"] is not None}
    missed = [t for t in truth if t.inst_id not in found]
    dropped_ids = {int(inst_ids[d.detection]) for d in result.dropped} if masks == "gt" else set()
    for t in missed:
        if t.inst_id not in dropped_ids:
            print(f"{category_name(t.class_id):<8} not detected")
    within = sum(r["truth"] is not None and r["error_deg"] <= 10 and r["error_cm"] <= 5 for r in rows)
    print(
        f"[demo] {within} of {len(truth)} objects within 10°/5 cm; estimate {estimate_seconds:.2f} s "
        f"(render {render_seconds:.1f} s)"
    )
    if masks == "model" and missed:
        print(
            f"[demo] {len(missed)} not detected: --masks gt gives the Reconstructor the true masks, to tell the "
            "segmenter's misses from the Reconstructor's errors"
        )

    picture = draw_boxes(frame.color, boxes, camera)
    for name, image in (
        ("demo.png", picture[..., ::-1]),
        ("input_color.png", frame.color[..., ::-1]),
        ("input_depth.png", frame.depth),
    ):
        ok, data = cv2.imencode(".png", np.ascontiguousarray(image))
        if not ok:
            raise OSError(f"could not encode {name}")
        write_atomically(args.out / name, data.tobytes())
    document = {
        "model": str(estimator.model.path),
        "scene": {"profile": args.profile, "split": args.split, "seed": args.seed, "view": args.view},
        "intrinsics": label.intrinsics.tolist(),
        "masks": masks,
        "objects": rows,
        "dropped": [d.to_dict() for d in result.dropped],
        "within_10deg_5cm": within,
        "not_detected": [{"inst_id": t.inst_id, "category": category_name(t.class_id)} for t in missed],
        "num_truth": len(truth),
        "seconds": {"load": load_seconds, "render": render_seconds, "estimate": estimate_seconds},
    }
    write_atomically(args.out / "demo.json", json_text(document, indent=2) + "\n")
    print(f"[demo] wrote {args.out / 'demo.png'} and {args.out / 'demo.json'}")
    return 0
