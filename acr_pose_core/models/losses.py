"""The six losses of ACR-Pose (§3.5–3.6, appendix 6.1).

    L = γ1·L_d + γ2·L_g + γ3·L_corr + γ4·L_cd + γ5·L_entro + γ6·L_reg,   γ = (0.1, 0.1, 1.0, 5.0, 0.0001, 0.01)

With alternating updates the Discriminator minimises γ1·L_d and the Reconstructor the other five terms.

- ``L_d = (D(P_gt) − 1)² + D(P̂)²`` and ``L_g = (D(P̂) − 1)²``: least-squares adversarial losses (means over the batch).
- ``L_corr``: smooth L1 between reconstructed and true NOCS coordinates, SPD's form: per coordinate
  ``e²/(2τ)`` below τ = 0.1 and ``e − τ/2`` above, summed over x, y, z and averaged over points and objects.
- ``L_cd``: chamfer distance (squared) between the deformed prior ``P_c + M_d`` and the instance's model points.
- ``L_entro``: mean entropy ``−Σ_m a log a`` of the assignment rows (peaky assignments are encouraged).
- ``L_reg``: mean L2 norm of the deformation vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from acr_pose_core.geometry.pointclouds import chamfer_distance

__all__ = [
    "LossWeights",
    "reconstruction_losses",
    "chamfer_loss",
    "correspondence_loss",
    "deformation_regulariser",
    "discriminator_loss",
    "entropy_loss",
    "generator_loss",
]


@dataclass(frozen=True)
class LossWeights:
    """γ1..γ6 of the paper (appendix 6.1)."""

    discriminator: float = 0.1
    generator: float = 0.1
    correspondence: float = 1.0
    chamfer: float = 5.0
    entropy: float = 0.0001
    regulariser: float = 0.01


def correspondence_loss(nocs: torch.Tensor, target: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Smooth L1 of ``nocs`` against ``target`` (both (B, N, 3)); see the module docstring."""
    err = (nocs - target).abs()
    per_coordinate = torch.where(err > threshold, err - threshold / 2, err.pow(2) / (2 * threshold))
    return per_coordinate.sum(-1).mean()


def chamfer_loss(deformed_prior: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
    """Mean over objects of the squared chamfer distance between (B, M, 3) and (B, M', 3)."""
    return chamfer_distance(deformed_prior, model, squared=True).mean()


def entropy_loss(assignment: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean entropy of the rows of ``assignment (B, N, M)`` (rows are distributions)."""
    return -(assignment * (assignment + eps).log()).sum(-1).mean()


def deformation_regulariser(deformation: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the deformation vectors ``(B, M, 3)``."""
    return deformation.norm(dim=-1).mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``L_d = mean((D(real) − 1)² + D(fake)²)`` for probabilities ``real, fake (B,)``."""
    return ((real - 1).pow(2) + fake.pow(2)).mean()


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """``L_g = mean((D(fake) − 1)²)``."""
    return (fake - 1).pow(2).mean()


def reconstruction_losses(
    nocs: torch.Tensor,
    deformed_prior: torch.Tensor,
    assignment: torch.Tensor,
    deformation: torch.Tensor,
    target_nocs: torch.Tensor,
    model_points: torch.Tensor,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """The Reconstructor's four non-adversarial terms and their weighted sum under ``"total"``.

    ``γ3·L_corr(nocs, target_nocs) + γ4·L_cd(deformed_prior, model_points) + γ5·L_entro(assignment)
    + γ6·L_reg(deformation)``; the generator term, which needs the Discriminator, is added by the caller.
    """
    terms = {
        "correspondence": correspondence_loss(nocs, target_nocs),
        "chamfer": chamfer_loss(deformed_prior, model_points),
        "entropy": entropy_loss(assignment),
        "regulariser": deformation_regulariser(deformation),
    }
    terms["total"] = (
        weights.correspondence * terms["correspondence"]
        + weights.chamfer * terms["chamfer"]
        + weights.entropy * terms["entropy"]
        + weights.regulariser * terms["regulariser"]
    )
    return terms
