"""Point-cloud autoencoder for category shape priors (SPD, Tian et al. ECCV 2020, §3.2; ACR-Pose §3.1).

The encoder is a PointNet: shared per-point MLPs, a max-pooled global feature concatenated back onto every point,
more shared MLPs, a max-pool and a linear layer to a ``D``-dimensional code. The decoder is an MLP from the code to
``M × 3`` coordinates. Trained with the chamfer distance on the canonical (NOCS) point clouds of a category's
training instances, the prior of the category is the decoding of the mean of its instances' codes.

Shapes: B clouds, N input points, M decoded points, D code size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PriorAutoencoder", "PriorAutoencoderConfig"]


@dataclass(frozen=True)
class PriorAutoencoderConfig:
    """Sizes of the autoencoder. The defaults are SPD's (code 512, 1024 decoded points)."""

    num_points: int = 1024  # M, points of a decoded cloud (and of a prior)
    code_size: int = 512  # D
    local_channels: tuple[int, ...] = (64, 128)  # per-point MLP before the global feature
    global_channels: tuple[int, ...] = (256, 1024)  # per-point MLP after concatenating the global feature
    decoder_channels: tuple[int, ...] = (512, 1024)


def _pointwise(channels: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.Conv1d(c_in, c_out, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PriorAutoencoder(nn.Module):
    """PointNet encoder and MLP decoder of canonical point clouds."""

    def __init__(self, config: PriorAutoencoderConfig = PriorAutoencoderConfig()) -> None:
        super().__init__()
        self.config = config
        local = [3, *config.local_channels]
        self.local = _pointwise(local)
        self.global_ = _pointwise([2 * local[-1], *config.global_channels])
        self.to_code = nn.Linear(config.global_channels[-1], config.code_size)
        decoder: list[nn.Module] = []
        widths = [config.code_size, *config.decoder_channels]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            decoder += [nn.Linear(c_in, c_out), nn.ReLU(inplace=True)]
        decoder.append(nn.Linear(widths[-1], 3 * config.num_points))
        self.decoder = nn.Sequential(*decoder)

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` of clouds ``points (B, N, 3)`` (NOCS units)."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        x = self.local(points.transpose(1, 2))  # (B, C1, N)
        pooled = x.amax(dim=2, keepdim=True).expand_as(x)  # (B, C1, N) global feature on every point
        x = self.global_(torch.cat([x, pooled], dim=1))  # (B, C2, N)
        return self.to_code(x.amax(dim=2))  # (B, D)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Clouds ``(B, M, 3)`` from codes ``(B, D)``."""
        return self.decoder(code).view(code.shape[0], self.config.num_points, 3)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, M, 3)`` and code ``(B, D)`` of ``points (B, N, 3)``."""
        code = self.encode(points)
        return self.decode(code), code
