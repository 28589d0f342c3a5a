"""The configuration of the ACR-Pose Reconstructor (and Discriminator), one dataclass passed to every module.

Paper defaults (§4.2, appendix 6.1): C = 64 channels, 1024 observed and 1024 prior points, K = 36 neighbours in the
feature graphs, 192×192 crops, six categories. Every row of the paper's ablation (Table 3) is a switch here (plus
``TrainConfig.adversarial`` for the Discriminator): with all switches off the Reconstructor is the paper's
baseline, plain MLPs in place of PIM and of the three relational graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReconstructorConfig"]


@dataclass(frozen=True)
class ReconstructorConfig:
    """Sizes and switches of the Reconstructor. Letters: B objects, N observed points, M prior points, C channels."""

    num_points: int = 1024  # N, observed points per object
    prior_points: int = 1024  # M, points of a category prior
    channels: int = 64  # C
    graph_k: int = 36  # K of the k-NN graphs in feature space (RRM)
    pim_k: int = 20  # neighbours of a local group in the Rotation-Invariant Convolutions (our choice, see pim.py)
    pim_layers: int = 4  # rotation-invariant convolution layers (the paper's 4)
    image_size: int = 192  # crops are image_size × image_size
    num_categories: int = 6
    backbone: str = "resnet18"  # the image encoder's ResNet
    backbone_weights: str | None = None  # a local file of ImageNet weights for the backbone; never downloaded
    # ablation switches (Table 3); off = a plain MLP in the module's place
    pose_irrelevant: bool = True  # PIM: rotation-invariant convolutions on centred points
    pim_context: bool = False  # the PIM also sees where each point lies on the object (rotation-invariant, pim.py 6.)
    relational_instance: bool = True  # RRM graph 1
    relational_deformation: bool = True  # RRM graph 2
    relational_assignment: bool = True  # RRM graph 3

    def __post_init__(self) -> None:
        for name in ("num_points", "prior_points", "channels", "graph_k", "pim_k", "pim_layers", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.graph_k > min(self.num_points, self.prior_points):
            raise ValueError(f"graph_k = {self.graph_k} exceeds the number of points")
        if self.pim_k > self.num_points:
            raise ValueError(f"pim_k = {self.pim_k} exceeds num_points = {self.num_points}")

    @classmethod
    def tiny(cls, **overrides) -> ReconstructorConfig:
        """A small configuration for fast CPU tests: 16 channels, 128 points, small graphs, 64×64 crops."""
        values = dict(num_points=128, prior_points=128, channels=16, graph_k=8, pim_k=8, pim_layers=2, image_size=64)
        values.update(overrides)
        return cls(**values)
