"""The Discriminator of ACR-Pose (§3.5): is a NOCS point set a real one or a reconstruction?

A shared per-point MLP, a global max-pool and two fully connected layers; a sigmoid gives the probability that the
input ``(B, N, 3)`` is a ground-truth NOCS representation. Trained with least-squares adversarial losses
(:mod:`~acr_pose_core.models.losses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from acr_pose_core.models.rrm import pointwise_mlp

__all__ = ["Discriminator", "DiscriminatorConfig"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    point_channels: tuple[int, ...] = (64, 128, 256)  # the per-point MLP
    hidden: int = 128  # the first fully connected layer


class Discriminator(nn.Module):
    """``(B, N, 3)`` NOCS points → ``(B,)`` probability of being real."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.config = config
        self.points = pointwise_mlp([3, *config.point_channels])
        self.head = nn.Sequential(
            nn.Linear(config.point_channels[-1], config.hidden), nn.LeakyReLU(0.2), nn.Linear(config.hidden, 1)
        )

    def forward(self, nocs: torch.Tensor) -> torch.Tensor:
        if nocs.dim() != 3 or nocs.shape[-1] != 3:
            raise ValueError(f"the discriminator takes (B, N, 3) point sets, got {tuple(nocs.shape)}")
        pooled = self.points(nocs).amax(dim=1)  # (B, C) global max-pool over the points
        return torch.sigmoid(self.head(pooled)).squeeze(-1)  # (B,)
