"""Data: procedural objects, scenes, rendering, the NOCS on-disk format, datasets and shape priors.

- :mod:`~acr_pose_core.data.shapes`: procedural mesh families of the six NOCS categories and distractors.
- :mod:`~acr_pose_core.data.materials`, :mod:`~acr_pose_core.data.scene`, :mod:`~acr_pose_core.data.render`,
  :mod:`~acr_pose_core.data.sensor`: tabletop scenes ray-cast to RGB-D, masks and NOCS maps, with sensor models.
- :mod:`~acr_pose_core.data.nocs_format`: the one reader and writer of the NOCS on-disk layout (ours and the real
  NOCS-CAMERA / NOCS-REAL data sets).
- :mod:`~acr_pose_core.data.generate`: ``acr-pose generate``, parallel, deterministic and resumable.

Submodules are imported where used; importing this package loads nothing heavy.
"""
