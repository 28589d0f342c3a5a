"""Export: a training run's checkpoint (and a segmenter run's) → a model folder (:mod:`acr_pose_core.model_folder`),
what ``acr-pose export`` runs."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from acr_pose_core.data.priors import load_priors
from acr_pose_core.model_folder import load_model_folder, save_model_folder, write_size_calibration
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.models.segmenter import build_segmenter
from acr_pose_core.training.checkpoint import checkpoint_json, load_module_weights
from acr_pose_core.training.config import load_train_config

__all__ = ["export_checkpoint", "export_with_segmenter"]


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
        segmenter, segmenter_config, segmenter_source = _segmenter_of(Path(detector_run), score_threshold)
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


def _segmenter_of(detector_run: Path, score_threshold: float | None) -> tuple[Any, Any, dict[str, Any]]:
    """The segmenter of a train-detector run's newest checkpoint, its configuration (``score_threshold`` replacing
    its operating threshold) and where it came from."""
    from acr_pose_core.training.detector import load_detector_config

    seg_json = checkpoint_json(detector_run)
    seg_document = json.loads(seg_json.read_text(encoding="utf-8"))
    segmenter_config = load_detector_config(tree=seg_document["config"], where=str(seg_json)).segmenter
    if score_threshold is not None:
        segmenter_config = replace(segmenter_config, score_threshold=score_threshold)
    segmenter = build_segmenter(segmenter_config)
    load_module_weights(seg_json, segmenter, "segmenter")
    source = {
        "checkpoint": str(seg_json),
        "step": seg_document.get("step"),
        "metadata": seg_document.get("metadata", {}),
        "train_config": seg_document["config"],
    }
    return segmenter, segmenter_config, source


def export_with_segmenter(
    model: str | os.PathLike,
    detector_run: str | os.PathLike,
    out: str | os.PathLike,
    score_threshold: float | None = None,
    weights_dtype: str = "float16",
) -> Path:
    """A model folder's Reconstructor, priors and size calibration with the segmenter of ``detector_run`` → the
    model folder ``out`` (a new segmenter for a folder whose Reconstructor run is gone; ``out`` may be ``model``).
    Stored float16 weights round-trip exactly through float32."""
    loaded = load_model_folder(model)
    segmenter, config, source = _segmenter_of(Path(detector_run), score_threshold)
    info = loaded.info
    folder = save_model_folder(
        out, loaded.reconstructor, loaded.priors, info.get("source", {}), weights_dtype, segmenter, config, source
    )
    if loaded.size_factors is not None:
        write_size_calibration(folder, loaded.size_factors, info["size_calibration"].get("source", {}))
    return folder
