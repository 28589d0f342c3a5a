"""Models: pure ``nn.Module``s (no device choice inside ``forward``), named after the paper's parts.

- :mod:`~acr_pose_core.models.config`: :class:`ReconstructorConfig`, sizes and the ablation switches of Table 3.
- :mod:`~acr_pose_core.models.image_encoder`: PSPNet on a dilated ResNet-18, per-pixel features of the crop.
- :mod:`~acr_pose_core.models.pim`: the Pose-Irrelevant Module (rotation-invariant convolutions) and its MLP ablation.
- :mod:`~acr_pose_core.models.rrm`: the Relational Reconstruction Module (three EdgeConv feature graphs).
- :mod:`~acr_pose_core.models.deformation`: the shape-prior encoder and Shape Prior Deformation heads.
- :mod:`~acr_pose_core.models.reconstructor`: the whole Reconstructor.
- :mod:`~acr_pose_core.models.discriminator`: the Discriminator of adversarial training.
- :mod:`~acr_pose_core.models.losses`: the six losses and their weights.
- :mod:`~acr_pose_core.models.prior_autoencoder`: the autoencoder behind the category shape priors.

The only file access is optional: local ImageNet weights for the backbone (``ReconstructorConfig.backbone_weights``),
read once when the image encoder is built.
"""
