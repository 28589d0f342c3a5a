"""Probe of the point branch alone (issue: a PIM that helps): how well each point encoder lets the model regress NOCS.

The real Reconstructor (tiny configuration) with the image features replaced by zeros and the three relational graphs
off, trained on the correspondence loss only (Adam 1e-3, ``--steps`` steps of batch 16) on the objects of generated
tabletop frames (partial views, 128 points each, no augmentation) and validated on the objects of other frames with
other instances. Each point encoder (``--encoders``) and seed (``--seeds``) is one run; the table gives the mean
validation correspondence loss (smooth L1, lower is better) overall and per category, beside the loss of predicting
zero everywhere. Frames are generated once into ``--data`` (an ignored folder) and reused.

Encoders: ``mlp`` (PointMLP, centred points plus a pooled global feature; not rotation invariant), ``pim`` (the PIM
without context), ``pim+context`` (the PIM with its rotation-invariant global context, ``model.pim_context``).

Usage::

    python benchmarks/pim_probe.py [--seeds 0 1] [--steps 800] [--encoders mlp pim pim+context]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)
from torch import nn

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.data.dataset import DatasetConfig, PoseDataset
from acr_pose_core.data.priors import load_priors
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.losses import correspondence_loss
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.synth.generate import GenerateConfig, generate

ENCODERS = {
    "mlp": dict(pose_irrelevant=False, pim_context=False),
    "pim": dict(pose_irrelevant=True, pim_context=False),
    "pim+context": dict(pose_irrelevant=True, pim_context=True),
}
KEYS = ("points", "rgb", "choose", "category", "prior")


class _NoImage(nn.Module):
    """Stands in for the image encoder: zero features, so only the point branch carries information."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.new_zeros(rgb.shape[0], self.channels, *rgb.shape[2:])


def load_items(data: Path, split: str, frames: int, seed: int, config: ReconstructorConfig) -> dict[str, torch.Tensor]:
    """Every object of ``frames`` generated frames of ``split`` as one batch of tensors (generated if missing)."""
    generate(GenerateConfig(out=data, split=split, frames=frames, frames_per_scene=2, seed=seed), progress=False)
    priors = load_priors().resampled(config.prior_points).points
    dataset_config = DatasetConfig(num_points=config.num_points, model_points=256, image_size=config.image_size)
    dataset = PoseDataset(data / split, priors, dataset_config)
    items = [dataset[i] for i in range(len(dataset))]
    items = [item for item in items if int(item["valid_points"]) >= 3]
    return {k: torch.stack([item[k] for item in items]) for k in (*KEYS, "nocs")}


def run(encoder: str, seed: int, train: dict, val: dict, steps: int, config: ReconstructorConfig) -> dict:
    config = replace(config, **ENCODERS[encoder])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Reconstructor(config)
    model.image_encoder = _NoImage(config.channels)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        pick = torch.from_numpy(rng.choice(len(train["points"]), 16, replace=False))
        out = model(*(train[k][pick] for k in KEYS))
        loss = correspondence_loss(out.nocs, train["nocs"][pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        per_item = []
        for i in range(0, len(val["points"]), 64):
            out = model(*(val[k][i : i + 64] for k in KEYS))
            per_item += [float(correspondence_loss(out.nocs[j : j + 1], val["nocs"][i + j : i + j + 1]))
                         for j in range(len(out.nocs))]  # fmt: skip
    per_item = np.array(per_item)
    category = val["category"].numpy()
    by_category = {CATEGORIES[c]: float(per_item[category == c].mean()) for c in np.unique(category)}
    return {"encoder": encoder, "seed": seed, "val_correspondence": float(per_item.mean()),
            "by_category": by_category, "train_seconds": seconds}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--encoders", nargs="+", choices=list(ENCODERS), default=list(ENCODERS))
    parser.add_argument("--data", type=Path, default=Path("data/pim_probe"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pim_probe.json"))
    args = parser.parse_args(argv)
    config = ReconstructorConfig.tiny(relational_instance=False, relational_deformation=False,
                                      relational_assignment=False)  # fmt: skip
    train = load_items(args.data, "train", 40, 31, config)
    val = load_items(args.data, "val", 24, 32, config)
    zero = float(np.mean([float(correspondence_loss(torch.zeros_like(n[None]), n[None])) for n in val["nocs"]]))
    print(f"{len(train['points'])} training objects, {len(val['points'])} validation objects; predicting 0: {zero:.3f}")
    rows = []
    for encoder in args.encoders:
        for seed in args.seeds:
            rows.append(run(encoder, seed, train, val, args.steps, config))
            r = rows[-1]
            print(f"{encoder:>12} seed {seed}: val correspondence {r['val_correspondence']:.4f} "
                  f"({r['train_seconds']:.0f} s)", flush=True)  # fmt: skip
    names = sorted({c for r in rows for c in r["by_category"]}, key=CATEGORIES.index)
    print("\n| encoder | seeds | mean val. correspondence | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 3) + "|")
    for encoder in args.encoders:
        mine = [r for r in rows if r["encoder"] == encoder]
        values = [r["val_correspondence"] for r in mine]
        cells = [f"{np.mean([r['by_category'][c] for r in mine]):.3f}" for c in names]
        spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
        print(f"| {encoder} | {len(mine)} | {np.mean(values):.3f}{spread} | " + " | ".join(cells) + " |")
    print(f"| predict 0 | | {zero:.3f} | |")
    write_result(args.out, {"zero_prediction": zero, "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
