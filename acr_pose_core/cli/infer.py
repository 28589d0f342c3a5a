"""``acr-pose infer``: poses of the objects in your RGB-D frames: a picture and a JSON file per frame.

Examples::

    acr-pose infer --rgb frame.png --depth frame_depth.png --intrinsics camera.json --out runs/infer
    acr-pose infer --folder recordings/ --intrinsics camera.json --out runs/infer     # *_color.* + *_depth.* pairs
    acr-pose infer --folder data/synth/val --masks gt --out runs/infer_val             # NOCS-format frames

Frames: one colour/depth pair, or every ``<name>_color.<ext>`` under ``--folder`` with its ``<name>_depth.<ext>``
(a NOCS-format frame, one with a ``_meta.txt``, is read with the NOCS reader, which also decodes NOCS-CAMERA's
3-channel depth). Depth: 16-bit PNG millimetres, or float metres (``.npy``, float TIFF); ``--depth-scale`` gives
metres per unit for other conventions. Intrinsics: ``--intrinsics`` (see :mod:`acr_pose_core.data.frame_files`);
our own generated frames carry theirs. Masks: the model folder's segmenter (``--masks model``, the default), the
frames' own (``--masks gt``, NOCS-format frames), or a folder of Mask R-CNN result pickles.

Writes ``OUT/<name>.png`` (boxes and axes over the image) and ``OUT/<name>.json`` (:meth:`FrameEstimate.to_dict`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "estimate the poses in RGB-D frames (files or a folder): a picture and a JSON file per frame"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rgb", type=Path, help="colour image of one frame")
    parser.add_argument("--depth", type=Path, help="depth image of that frame, aligned to the colour")
    parser.add_argument("--folder", type=Path, help="a folder of frames (searched recursively)")
    parser.add_argument("--intrinsics", type=Path, help="camera intrinsics file (JSON or text)")
    parser.add_argument("--depth-scale", type=float, help="metres per depth unit (default: 0.001 for 16-bit, 1 float)")
    parser.add_argument("--model", type=Path, help="model folder (default: the shipped default model)")
    parser.add_argument("--masks", default="model", help="model (default), gt, or a folder of result pickles")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="torch device (default auto)")


def _pairs(folder: Path) -> list[tuple[str, Path, Path | None]]:
    """``(name, colour file, depth file or None for NOCS-format frames)`` under ``folder``, sorted; the name (the
    path below ``folder`` joined by ``_``) names the outputs, so two frames with one name are refused."""
    found = []
    for color in sorted(folder.rglob("*_color.*")):
        prefix = color.with_name(color.name[: -len("_color" + color.suffix)])
        name = "_".join(prefix.relative_to(folder).parts)
        if prefix.with_name(prefix.name + "_meta.txt").is_file():
            found.append((name, prefix, None))
            continue
        depths = sorted(prefix.parent.glob(prefix.name + "_depth.*"))
        if not depths:
            raise FileNotFoundError(f"{color}: no {prefix.name}_depth.* beside it")
        if len(depths) > 1:
            raise ValueError(
                f"{color}: {len(depths)} depth files beside it ({', '.join(d.name for d in depths)}); keep one"
            )
        found.append((name, color, depths[0]))
    seen: dict[str, Path] = {}
    for name, path, _ in found:  # sub/a_color.png and sub_a_color.png would both write OUT/sub_a.json
        if name in seen:
            raise ValueError(f"{seen[name]} and {path} would both be written as {name}.json: rename one of them")
        seen[name] = path
    return found


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from tqdm.auto import tqdm

    from acr_pose_core.data import nocs_format
    from acr_pose_core.data.frame_files import read_color_file, read_depth_file, read_intrinsics_file
    from acr_pose_core.detection import detections_from_frame, mask_results_file, read_mask_results
    from acr_pose_core.evaluation.draw import CATEGORY_COLOURS, BoxDrawing, draw_boxes
    from acr_pose_core.fileio import json_text, write_atomically
    from acr_pose_core.geometry.camera import CameraIntrinsics
    from acr_pose_core.pipeline import PoseEstimator

    if (args.rgb is None) != (args.depth is None):
        raise ValueError("give --rgb and --depth together")
    if (args.rgb is None) == (args.folder is None):
        raise ValueError("give one frame (--rgb and --depth) or a --folder of frames")
    if args.folder is not None and not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder}: no such folder")
    if args.rgb is not None:
        for path in (args.rgb, args.depth):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
        stem = args.rgb.stem
        frames = [(stem[: -len("_color")] if stem.endswith("_color") else stem, args.rgb, args.depth)]
    else:
        frames = _pairs(args.folder)
    if not frames:
        raise FileNotFoundError(f"{args.folder}: no *_color.* images")
    mask_folder = None if args.masks in ("model", "gt") else Path(args.masks)
    if mask_folder is not None and not mask_folder.is_dir():
        raise FileNotFoundError(f"--masks {args.masks}: expected model, gt or a folder of result pickles")
    estimator = PoseEstimator(args.model, device=args.device)
    if args.masks == "model" and estimator.mask_source is None:
        raise ValueError(
            f"the model folder {estimator.model.path} has no segmenter: use --masks gt (NOCS-format "
            "frames) or a folder of Mask R-CNN result pickles"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    posed = 0
    for name, color_path, depth_path in tqdm(frames, desc="frames", unit="frame", disable=len(frames) == 1 or None):
        frame = None
        if depth_path is None:  # a NOCS-format frame
            frame = nocs_format.read_frame(color_path, with_coord=False)
            rgb, depth = frame.color, frame.depth
        else:
            rgb, depth = read_color_file(color_path), read_depth_file(depth_path)
        H, W = depth.shape[:2]
        if args.intrinsics is not None:
            camera = read_intrinsics_file(args.intrinsics, W, H)
        elif frame is not None and frame.label is not None:
            camera = CameraIntrinsics.from_matrix(frame.label.intrinsics, W, H)
        else:
            raise ValueError(f"{color_path}: give --intrinsics (the frame carries no camera)")
        detections = None
        if args.masks == "gt":
            if frame is None:
                raise ValueError(f"{color_path}: --masks gt needs NOCS-format frames (a _mask.png and _meta.txt)")
            detections = detections_from_frame(frame)
        elif mask_folder is not None:
            detections = read_mask_results(mask_results_file(mask_folder, name, color_path))
        estimate = estimator.estimate(rgb, depth, camera, detections, args.depth_scale)  # rgb: RGB from either reader
        posed += len(estimate.objects)
        boxes = [
            BoxDrawing(o.sRT, o.size_nocs, f"{o.category} {o.score:.2f}", CATEGORY_COLOURS[o.category])
            for o in estimate.objects
        ]
        picture = draw_boxes(rgb, boxes, camera)
        ok, data = cv2.imencode(".png", np.ascontiguousarray(picture[..., ::-1]))
        if not ok:
            raise OSError(f"could not encode the picture of {name}")
        write_atomically(args.out / f"{name}.png", data.tobytes())
        document = {
            "frame": str(color_path),
            "intrinsics": camera.K.tolist(),
            "masks": args.masks,
            **estimate.to_dict(),
        }
        write_atomically(args.out / f"{name}.json", json_text(document, indent=2) + "\n")
    print(f"[infer] {len(frames)} frame(s), {posed} object(s) posed; wrote pictures and JSON to {args.out}")
    return 0
