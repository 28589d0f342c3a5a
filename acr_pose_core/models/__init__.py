"""Models: pure ``nn.Module``s (no file access, no device choice inside ``forward``).

- :mod:`~acr_pose_core.models.prior_autoencoder`: the point-cloud autoencoder whose mean category codes decode to the
  shape priors.
"""
