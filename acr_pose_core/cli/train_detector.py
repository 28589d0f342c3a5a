"""``acr-pose train-detector``: train the instance segmenter (Mask R-CNN) from scratch on NOCS-format frames.

Examples::

    acr-pose train-detector --config config/detector_default_cpu.yaml --out runs/detector
    acr-pose train-detector --config config/detector_default_cpu.yaml --out runs/detector --resume
    acr-pose train-detector --config config/detector_paper.yaml --out runs/detector_r50 --set steps=40000

The run folder holds ``config.json``, ``log.jsonl`` (losses; mask and box AP at each validation),
``checkpoints/`` and ``tensorboard/``. ``acr-pose export --detector-run`` puts the result into a model folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train the instance segmenter (Mask R-CNN, from scratch) on NOCS-format frames"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="YAML configuration (see config/detector_*.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    group.add_argument("--overwrite", action="store_true", help="delete the run in --out and start over")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps in all (for smoke runs)")


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.training.detector import DetectorTrainer, load_detector_config

    config = load_detector_config(args.config, args.set)
    trainer = DetectorTrainer(
        config, args.out, resume=args.resume, overwrite=args.overwrite, progress=True, max_steps=args.max_steps
    )
    result = trainer.run()
    metrics = result["metrics"]
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in metrics.items() if k in ("mask_AP50", "mask_AP", "box_AP50") and v is not None
    )
    print(f"[train-detector] step {result['step']}: {shown or 'no validation'}; run in {args.out}")
    return 0
