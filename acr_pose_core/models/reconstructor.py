"""The ACR-Pose Reconstructor (§3.1–3.4): RGB crop, observed points and category prior → NOCS reconstruction.

    image encoder (PSPNet, ResNet-18)  rgb (B, 3, S, S) → (B, C, S, S) → f_I (B, N, C) at the points' pixels
    point encoder (PIM)                points (B, N, 3) metres → f_p (B, N, C), rotation and translation invariant
    shape-prior encoder                prior (B, M, 3) → f_c (B, M, C)
    relational reconstruction (RRM)    (f_p, f_I, f_c) → f_d (B, M, C), f_a (B, N, C)
    shape prior deformation            M_d (B, M, 3), M_a (B, N, M);  P_nocs = M_a (P_c + M_d)

Under bf16 autocast the layers run in bf16; the geometry, the k-NN graphs and the outputs stay float32
(:mod:`acr_pose_core.models.precision`). Pose then follows by aligning ``P_nocs`` with the observed points (Umeyama in
a RANSAC; not a module). Everything here is a pure ``nn.Module``: no file access (but the optional local backbone
weights), no device choice.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.deformation import AssignmentHead, DeformationHead, PriorEncoder, reconstruct_nocs
from acr_pose_core.models.image_encoder import ImageEncoder, gather_pixels
from acr_pose_core.models.pim import make_point_encoder
from acr_pose_core.models.precision import full_precision, full_precision_region
from acr_pose_core.models.rrm import RelationalReconstruction

__all__ = ["Reconstructor", "ReconstructorOutput"]


class ReconstructorOutput(NamedTuple):
    """What the Reconstructor predicts for B objects.

    Attributes:
        nocs: (B, N, 3) reconstructed NOCS coordinates of the observed points, ``M_a (P_c + M_d)``.
        assignment: (B, N, M) M_a, rows are softmax distributions over the prior points.
        assignment_logits: (B, N, M) before the softmax.
        deformation: (B, M, 3) M_d.
        deformed_prior: (B, M, 3) ``P_c + M_d``, the reconstructed canonical instance shape.
    """

    nocs: torch.Tensor
    assignment: torch.Tensor
    assignment_logits: torch.Tensor
    deformation: torch.Tensor
    deformed_prior: torch.Tensor

    @property
    def size(self) -> torch.Tensor:
        """(B, 3) NOCS-unit box extents of the reconstructed shape, ``2 · max_m |P_c + M_d|`` (as SPD)."""
        return 2 * self.deformed_prior.abs().amax(dim=1)


class Reconstructor(nn.Module):
    """The Reconstructor; ``config`` sizes it and holds the ablation switches of Table 3."""

    def __init__(self, config: ReconstructorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ReconstructorConfig()
        self.image_encoder = ImageEncoder(config)
        self.point_encoder = make_point_encoder(config)
        self.prior_encoder = PriorEncoder(config)
        self.rrm = RelationalReconstruction(config)
        self.deformation_head = DeformationHead(config)
        self.assignment_head = AssignmentHead(config)

    def forward(
        self,
        points: torch.Tensor,
        rgb: torch.Tensor,
        choose: torch.Tensor,
        category: torch.Tensor,
        prior: torch.Tensor,
        check_inputs: bool = True,
    ) -> ReconstructorOutput:
        """Reconstruct the NOCS coordinates of B objects.

        Args:
            points: (B, N, 3) observed points, camera frame, metres.
            rgb: (B, 3, S, S) normalised colour crops.
            choose: (B, N) int64 pixel of each point in the crop, ``row · S + col``.
            category: (B,) int64 category index 0..5 (class id − 1).
            prior: (B, M, 3) the categories' shape priors, NOCS units.
            check_inputs: raise ``IndexError`` for a ``choose`` outside the crop or a ``category`` outside 0..5.
                These checks read the indices on the host; a caller whose inputs are valid by construction (the
                estimator) passes False, and then nothing in the forward waits for the device (tested with
                :func:`acr_pose_core.host_sync.forbid_host_sync`), as CUDA graphs require.
        """
        B, N, _ = points.shape
        if rgb.shape[0] != B or choose.shape != (B, N) or category.shape != (B,) or prior.shape[0] != B:
            raise ValueError(
                f"batch shapes disagree: points {tuple(points.shape)}, rgb {tuple(rgb.shape)}, "
                f"choose {tuple(choose.shape)}, category {tuple(category.shape)}, prior {tuple(prior.shape)}"
            )
        if prior.shape[1] != self.config.prior_points:
            raise ValueError(f"prior has {prior.shape[1]} points, the model expects {self.config.prior_points}")
        f_img = gather_pixels(self.image_encoder(rgb), choose, check_inputs)  # (B, N, C)
        f_p = self.point_encoder(points)  # (B, N, C)
        f_c = self.prior_encoder(prior)  # (B, M, C)
        f_d, f_a = self.rrm(f_p, f_img, f_c)  # (B, M, C), (B, N, C)
        deformation = self.deformation_head(f_d, category, check_inputs)  # (B, M, 3)
        logits = self.assignment_head(f_a, category, check_inputs)  # (B, N, M)
        with full_precision_region(points):  # the outputs in full precision, also under autocast
            logits, deformation = full_precision(logits), full_precision(deformation)
            assignment = torch.softmax(logits, dim=-1)  # (B, N, M)
            nocs = reconstruct_nocs(assignment, full_precision(prior), deformation)  # (B, N, 3)
        return ReconstructorOutput(nocs, assignment, logits, deformation, prior + deformation)
