"""The synthetic world: procedural objects of the six categories, tabletop scenes, ray-cast RGB-D with sensor
models, written in the NOCS on-disk format (:mod:`acr_pose_core.data.nocs_format`) so that the same readers take
them and the real data sets.

- :mod:`~acr_pose_core.synth.shapes`: procedural mesh families of the six NOCS categories and distractors (trimesh).
- :mod:`~acr_pose_core.synth.materials`, :mod:`~acr_pose_core.synth.scene`, :mod:`~acr_pose_core.synth.render`,
  :mod:`~acr_pose_core.synth.sensor`: tabletop scenes ray-cast to RGB-D, masks and NOCS maps (embreex), with sensor
  models.
- :mod:`~acr_pose_core.synth.generate`: ``acr-pose generate``, parallel, deterministic and resumable.

An optional part (``pip install "acr_pose_ros[render]"``: trimesh and embreex): the estimator and the node never
import it. Submodules are imported where used; importing this package loads nothing heavy.
"""
