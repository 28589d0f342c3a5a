"""Export: a training run's checkpoint (and a segmenter run's) → a model folder (:mod:`acr_pose_core.model_folder`),
what ``acr-pose export`` runs."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from acr_pose_core.data.priors import load_priors
from acr_pose_core.model_folder import save_model_folder
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.models.segmenter import build_segmenter
from acr_pose_core.training.checkpoint import checkpoint_json, load_module_weights
from acr_pose_core.training.config import load_train_config

__all__ = ["export_checkpoint"]


def export_checkpoint(
    run: str | os.PathLike,
    out: str | os.PathLike,
    weights_dtype: str = "float16",
    extra: dict | None = None,
    detector_run: str | os.PathLike | None = None,
    score_threshold: float | None = None,
) -> Path:
    """A training run's newest complete checkpoint (``run`` a run folder or its ``checkpoints/``; or the checkpoint
    file ``run`` names) → a model folder.

    The priors are the run's (``priors`` setting, resampled to the model's M as the trainer does); ``source``
    records the run, step, epoch, commit, configuration and the checkpoint's metadata (validation metrics), plus
    ``extra``. ``detector_run``: a segmenter run (``acr-pose train-detector``) whose newest checkpoint goes in too;
    ``score_threshold`` replaces its operating threshold (the score from which a detection is returned), which is a
    deployment choice rather than a training one.
    """
    json_path = checkpoint_json(Path(run))
    segmenter = segmenter_config = segmenter_source = None
    if detector_run is not None:
        from acr_pose_core.training.detector import load_detector_config

        seg_json = checkpoint_json(Path(detector_run))
        seg_document = json.loads(seg_json.read_text(encoding="utf-8"))
        segmenter_config = load_detector_config(tree=seg_document["config"], where=str(seg_json)).segmenter
        if score_threshold is not None:
            segmenter_config = replace(segmenter_config, score_threshold=score_threshold)
        segmenter = build_segmenter(segmenter_config)
        load_module_weights(seg_json, segmenter, "segmenter")
        segmenter_source = {
            "checkpoint": str(seg_json),
            "step": seg_document.get("step"),
            "metadata": seg_document.get("metadata", {}),
            "train_config": seg_document["config"],
        }
    document = json.loads(json_path.read_text(encoding="utf-8"))
    config = load_train_config(None, [], tree=document["config"], where=str(json_path))
    model = Reconstructor(config.model)
    load_module_weights(json_path, model)
    priors = load_priors(config.priors).resampled(config.model.prior_points)
    source = {
        "checkpoint": str(json_path),
        "step": document.get("step"),
        "epoch": document.get("epoch"),
        "metadata": document.get("metadata", {}),
        "train_config": document["config"],
        **(extra or {}),
    }
    return save_model_folder(out, model, priors, source, weights_dtype, segmenter, segmenter_config, segmenter_source)
