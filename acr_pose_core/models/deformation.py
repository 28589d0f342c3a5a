"""Shape Prior Deformation (SPD, Tian et al. ECCV 2020; ACR-Pose §3.4) and the shape-prior encoder.

From the relational deformation features ``f_d (B, M, C)`` an MLP predicts a deformation field ``M_d (B, M, 3)``; from
the relational assignment features ``f_a (B, N, C)`` another predicts the assignment logits, and a softmax over the
prior points gives ``M_a (B, N, M)`` (rows sum to 1). Both heads end in one output group per category and keep the
object's own (as SPD). The reconstruction is

    P_nocs = M_a (P_c + M_d)        (N × M)(M × 3) → (N × 3)

and the object's NOCS size is read off the deformed prior: ``size = 2 · max_m |P_c + M_d|`` per axis.
"""

from __future__ import annotations

import torch
from torch import nn

from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.rrm import pointwise_mlp

__all__ = ["AssignmentHead", "DeformationHead", "PriorEncoder", "reconstruct_nocs"]


class PriorEncoder(nn.Module):
    """Shape-prior encoder: a shared MLP over the prior's points, ``(B, M, 3) → (B, M, C)``."""

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        self.mlp = pointwise_mlp([3, config.channels, config.channels])

    def forward(self, prior: torch.Tensor) -> torch.Tensor:
        return self.mlp(prior)


def _select_category(out: torch.Tensor, category: torch.Tensor, groups: int) -> torch.Tensor:
    """``out (B, L, groups·D)`` → ``(B, L, D)``, the group of each item's category (0-based, (B,))."""
    B, L, GD = out.shape
    out = out.view(B, L, groups, GD // groups)
    index = category.view(B, 1, 1, 1).expand(B, L, 1, GD // groups)
    return out.gather(2, index).squeeze(2)


class DeformationHead(nn.Module):
    """``f_d (B, M, C)`` → deformation field ``M_d (B, M, 3)`` (category-specific output layer, initialised near 0)."""

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        C, self.groups = config.channels, config.num_categories
        self.mlp = pointwise_mlp([C, 2 * C, C])
        self.out = nn.Linear(C, 3 * self.groups)
        nn.init.normal_(self.out.weight, std=1e-4)  # the prior starts undeformed (as SPD)
        nn.init.zeros_(self.out.bias)

    def forward(self, f_d: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return _select_category(self.out(self.mlp(f_d)), category, self.groups)


class AssignmentHead(nn.Module):
    """``f_a (B, N, C)`` → assignment logits ``(B, N, M)`` (category-specific output layer)."""

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        C, self.groups = config.channels, config.num_categories
        self.mlp = pointwise_mlp([C, 2 * C, 4 * C])
        self.out = nn.Linear(4 * C, config.prior_points * self.groups)

    def forward(self, f_a: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return _select_category(self.out(self.mlp(f_a)), category, self.groups)


def reconstruct_nocs(assignment: torch.Tensor, prior: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """``P_nocs = M_a (P_c + M_d)``: assignment (B, N, M), prior and deformation (B, M, 3) → (B, N, 3)."""
    return assignment @ (prior + deformation)
