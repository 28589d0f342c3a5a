"""Mask sources: the objects of a frame as masks, classes and scores (see :mod:`.sources`)."""

from acr_pose_core.detection.sources import (
    Detections,
    InputError,
    MaskSource,
    as_mask_source,
    detections_from_frame,
    mask_results_file,
    read_mask_results,
)

__all__ = [
    "Detections",
    "InputError",
    "MaskSource",
    "as_mask_source",
    "detections_from_frame",
    "mask_results_file",
    "read_mask_results",
]
