"""Learning the category shape priors, as SPD and ACR-Pose do.

An autoencoder (:class:`~acr_pose_core.models.prior_autoencoder.PriorAutoencoder`) is trained with the chamfer
distance on the canonical point clouds of the training instances of all six categories; the prior of a category is
the decoding of the mean of its instances' codes (1024 points).

Each step feeds every cloud of a batch as a fresh random subset of its points (``input_points``) and compares the
reconstruction with the whole cloud. Adam, step decay of the learning rate. Seeded; no global RNG is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES
from acr_pose_core.data.priors import ShapePriors
from acr_pose_core.geometry.pointclouds import chamfer_distance
from acr_pose_core.models.prior_autoencoder import PriorAutoencoder, PriorAutoencoderConfig

__all__ = ["PriorTrainingConfig", "PriorTrainingResult", "train_priors"]


@dataclass(frozen=True)
class PriorTrainingConfig:
    """How the prior autoencoder is trained."""

    model: PriorAutoencoderConfig = field(default_factory=PriorAutoencoderConfig)
    epochs: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    decay_epochs: tuple[float, ...] = (0.6, 0.85)  # fractions of the run at which the rate halves
    input_points: int = 1024  # points fed to the encoder per cloud and step
    target_points: int | None = None  # points of each cloud the chamfer loss compares with (None: all)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.input_points < 1:
            raise ValueError(
                f"epochs ({self.epochs}), batch_size ({self.batch_size}) and input_points ({self.input_points}) "
                "must be at least 1"
            )
        if self.target_points is not None and self.target_points < 1:
            raise ValueError(f"target_points must be at least 1 (or unset), got {self.target_points}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclass
class PriorTrainingResult:
    """The priors, the trained autoencoder, the mean chamfer distance per epoch (squared, NOCS units²) and the final
    per-category reconstruction chamfer distance."""

    priors: ShapePriors
    model: PriorAutoencoder
    history: list[float]
    reconstruction_chamfer: dict[str, float]


def _stack_clouds(clouds: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(K, P, 3) float32, every cloud resampled to the size of the smallest (without replacement)."""
    sizes = [len(c) for c in clouds.values()]
    p = min(sizes)
    out = np.empty((len(clouds), p, 3), dtype=np.float32)
    for k, cloud in enumerate(clouds.values()):
        out[k] = cloud if len(cloud) == p else cloud[rng.choice(len(cloud), p, replace=False)]
    return out


def train_priors(
    clouds: Mapping[str, np.ndarray],
    class_ids: Mapping[str, int],
    config: PriorTrainingConfig = PriorTrainingConfig(),
    progress: bool | None = None,
    info: Mapping[str, object] | None = None,
) -> PriorTrainingResult:
    """Train the autoencoder on ``clouds`` (model id → (P, 3) canonical points) and decode the six category priors.

    Args:
        clouds: the training instances' canonical point clouds (NOCS units).
        class_ids: model id → class id 1..6, for every key of ``clouds``.
        config: training settings.
        progress: progress bar (``None``: only on a terminal).
        info: what to record in the priors file about the data (merged with the training settings and results).
    """
    missing = [m for m in clouds if m not in class_ids]
    if missing:
        raise ValueError(f"no class id for model(s) {missing[:5]}")
    labels = np.array([class_ids[m] for m in clouds])
    absent = [CATEGORIES[c - 1] for c in range(1, NUM_CATEGORIES + 1) if not (labels == c).any()]
    if absent:
        raise ValueError(f"no training instance of {absent}: every category needs at least one")
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    data = torch.from_numpy(_stack_clouds(clouds, rng)).to(device)  # (K, P, 3)
    K, P, _ = data.shape
    n_in = min(config.input_points, P)

    with torch.random.fork_rng(devices=[]):  # weights from our seed, the caller's RNG state untouched
        torch.manual_seed(config.seed)
        model = PriorAutoencoder(config.model).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    milestones = [max(1, int(f * config.epochs)) for f in config.decay_epochs]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.5)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    bar = tqdm(range(config.epochs), desc="priors", unit="epoch", disable=None if progress is None else not progress)
    for _ in bar:
        model.train()
        order = torch.randperm(K, generator=gen)
        total = 0.0
        for start in range(0, K, config.batch_size):
            batch = data[order[start : start + config.batch_size].to(device)]  # (B, P, 3)
            pick = torch.rand(len(batch), P, generator=gen).argsort(1)[:, :n_in].to(device)  # (B, n_in)
            inputs = torch.gather(batch, 1, pick[..., None].expand(-1, -1, 3))
            target = batch
            if config.target_points is not None and config.target_points < P:
                keep = torch.rand(len(batch), P, generator=gen).argsort(1)[:, : config.target_points].to(device)
                target = torch.gather(batch, 1, keep[..., None].expand(-1, -1, 3))
            recon, _ = model(inputs)
            loss = chamfer_distance(recon, target).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        history.append(total / K)
        bar.set_postfix(chamfer=f"{history[-1]:.2e}")

    model.eval()
    with torch.no_grad():
        codes = torch.cat([model.encode(data[i : i + 64, :n_in]) for i in range(0, K, 64)])  # (K, D)
        recon = torch.cat([model.decode(codes[i : i + 64]) for i in range(0, K, 64)])
        per_instance = chamfer_distance(recon, data).cpu().numpy()
        labels_t = torch.from_numpy(labels).to(device)
        means = torch.stack([codes[labels_t == c].mean(0) for c in range(1, NUM_CATEGORIES + 1)])  # (6, D)
        points = model.decode(means).cpu().numpy()  # (6, M, 3)
    reconstruction = {CATEGORIES[c - 1]: float(per_instance[labels == c].mean()) for c in range(1, 7)}
    record = {
        "data": dict(info or {}),
        "instances": {CATEGORIES[c - 1]: int((labels == c).sum()) for c in range(1, 7)},
        "training": {**asdict(config), "final_chamfer": history[-1] if history else math.nan},
        "reconstruction_chamfer": reconstruction,
        "method": "decoded mean code per category of a PointNet autoencoder trained with the chamfer distance",
    }
    return PriorTrainingResult(ShapePriors(points, record), model, history, reconstruction)
