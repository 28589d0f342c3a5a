"""Data: the NOCS on-disk format, model inputs, datasets, shape priors and the detections record.

- :mod:`~acr_pose_core.data.nocs_format`: the one reader and writer of the NOCS on-disk layout (ours and the real
  NOCS-CAMERA / NOCS-REAL data sets).
- :mod:`~acr_pose_core.data.instance`: an object in a frame → the Reconstructor's inputs.
- :mod:`~acr_pose_core.data.dataset`, :mod:`~acr_pose_core.data.detection_frames`: the training datasets.
- :mod:`~acr_pose_core.data.priors`, :mod:`~acr_pose_core.data.frame_files`: shape priors, a user's frame files.

The synthetic world that writes our data sets is :mod:`acr_pose_core.synth`. Submodules are imported where used;
importing this package loads nothing heavy.
"""
