"""``acr-pose priors``: learn the category shape priors from a data set's instance models.

Examples::

    acr-pose generate --split train --frames 10 --out data/synth      # also writes data/synth/obj_models/train.npz
    acr-pose priors --data data/synth --out priors.npz
    acr-pose priors --data /datasets/NOCS --models obj_models/camera_train.pkl --out priors_camera.npz

Instance models are read from ``DATA/obj_models/<split>.npz`` (ours) or the file given with ``--models`` (ours, or
SPD's ``obj_models/*.pkl``). Each model's category comes from its id where the id names it (our ids,
``<category>-<split>-<index>``), and otherwise from the ``_meta.txt`` files of the frames under ``DATA``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "learn the six category shape priors (autoencoder, decoded mean code) from instance models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data root (holds obj_models/ and the frames)")
    parser.add_argument("--out", type=Path, required=True, help="priors file to write (.npz)")
    parser.add_argument("--split", default="train", help="instance split whose models are used (default train)")
    parser.add_argument("--models", type=Path, help="instance model file (default DATA/obj_models/SPLIT.npz)")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs (default 300)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-points", type=int, default=1024, help="points fed to the encoder per cloud")
    parser.add_argument("--target-points", type=int, help="points per cloud the loss compares with (default all)")
    parser.add_argument(
        "--preset",
        choices=("spd", "cpu"),
        default="spd",
        help="network sizes: spd (SPD's: code 512, encoder up to 1024 channels) or cpu (encoder up to 512 channels)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--seed", type=int, default=0)


def model_classes(data: Path, model_ids: list[str]) -> dict[str, int]:
    """Class id of each model: from our id naming, else from the frames' meta files under ``data``."""
    from acr_pose_core.categories import CLASS_IDS
    from acr_pose_core.data import nocs_format

    classes = {m: CLASS_IDS[m.split("-")[0]] for m in model_ids if m.split("-")[0] in CLASS_IDS}
    unknown = set(model_ids) - set(classes)
    if unknown:
        for meta in sorted(data.rglob("*_meta.txt")):
            for line in nocs_format.read_meta(meta):
                if line.model_id in unknown and line.class_id > 0:
                    classes[line.model_id] = line.class_id
            unknown = set(model_ids) - set(classes)
            if not unknown:
                break
    if unknown:
        raise ValueError(f"category of {len(unknown)} model(s) unknown (e.g. {sorted(unknown)[:3]}): no meta line")
    return classes


def run(args: argparse.Namespace) -> int:
    from acr_pose_core.data import nocs_format
    from acr_pose_core.data.priors import save_priors
    from acr_pose_core.fileio import check_writable
    from acr_pose_core.models.prior_autoencoder import PriorAutoencoderConfig
    from acr_pose_core.training.priors import PriorTrainingConfig, train_priors

    network = PriorAutoencoderConfig()
    if args.preset == "cpu":
        network = PriorAutoencoderConfig(global_channels=(128, 512))
    config = PriorTrainingConfig(  # checked before anything is read or trained
        model=network,
        epochs=args.epochs,
        batch_size=args.batch_size,
        input_points=args.input_points,
        target_points=args.target_points,
        seed=args.seed,
        device=args.device,
    )
    check_writable(args.out)
    models_path = args.models or args.data / "obj_models" / f"{args.split}.npz"
    clouds = nocs_format.read_models(models_path)
    if not clouds:
        raise ValueError(f"{models_path}: no instance models")
    classes = model_classes(args.data, list(clouds))
    info = {"models": str(models_path), "split": args.split, "preset": args.preset, "instances": len(clouds)}
    result = train_priors(clouds, classes, config, progress=True, info=info)  # a bar in logs too
    save_priors(args.out, result.priors)
    print(f"[priors] {len(clouds)} instance models, {args.epochs} epochs, final chamfer {result.history[-1]:.2e}")
    for name, value in result.reconstruction_chamfer.items():
        print(f"[priors]   {name:<7} reconstruction chamfer {value:.2e}")
    print(f"[priors] wrote {args.out}")
    return 0
