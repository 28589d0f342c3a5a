"""Training: the shape-prior autoencoder (:mod:`~acr_pose_core.training.priors`); the ACR-Pose trainer comes next."""
