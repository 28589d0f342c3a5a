"""Model folders: what :class:`~acr_pose_core.pipeline.PoseEstimator` loads and ``acr-pose export`` writes
(:func:`acr_pose_core.training.export.export_checkpoint`: a training run → a folder; this module reads and writes
folders and knows nothing of training).

A training run keeps everything needed to continue it (optimiser state, RNG, the whole configuration); a model
folder keeps what inference needs, in files a robot can read without the training code's history:

- ``model.json``: ``format`` (``"acr-pose-model"``), ``version``, ``reconstructor`` (the
  :class:`~acr_pose_core.models.config.ReconstructorConfig` fields: sizes and switches, hence N points and S×S
  crops), ``weights`` (file name, stored dtype, sha256), ``priors`` (file name, sha256), ``config_sha256`` (of the
  ``reconstructor`` and ``segmenter.config`` sections, so that an edit that keeps the weights' shapes, e.g.
  ``graph_k``, is refused) and ``source`` (where the weights came from: run, step, git commit, training
  configuration, validation metrics; free-form, for people). File names are plain names inside the folder.
  Version 1 folders (no priors or configuration hash) are read with a warning.
- ``reconstructor.safetensors``: the Reconstructor's state dict; floating tensors stored as ``weights_dtype``
  (float16 for the shipped default: half the bytes, and reconstructions within about 1e-3 NOCS units of float32,
  tested), integer buffers as they are. Loaded back as float32 (or the dtype asked for).
- ``segmenter.safetensors`` (optional): the instance segmenter's state dict
  (:func:`~acr_pose_core.models.segmenter.build_segmenter` of the ``segmenter`` section's configuration), stored
  like the Reconstructor's; the estimator's default mask source when present.
- ``priors.npz``: the (6, M, 3) category priors the model was trained with (:func:`~acr_pose_core.data.priors.
  save_priors`), so that a model never meets other priors than its own.
- ``size_calibration`` in ``model.json`` (optional): ``factors`` (one per category name, positive) and ``source``;
  the estimator multiplies each fitted scale by its category's factor, ``s' = f_c · s`` (the Reconstructor's NOCS
  points are pulled towards their centre, so Umeyama's scale comes out too large), written by
  :func:`write_size_calibration` (``acr-pose calibrate-size``, fitted on training frames only).
- anything else (``MODEL_CARD.md``, pictures) is documentation and ignored by the loader.

:func:`default_model_path` is the folder shipped inside the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from acr_pose_core.categories import CATEGORIES
from acr_pose_core.data.priors import ShapePriors, load_priors, save_priors
from acr_pose_core.fileio import json_text, write_atomically
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.models.segmenter import SegmenterConfig, build_segmenter
from acr_pose_core.settings import config_from_dict, config_to_dict

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "LoadedModel",
    "ModelFolderError",
    "default_model_path",
    "load_model_folder",
    "save_model_folder",
    "write_size_calibration",
]

MODEL_FORMAT = "acr-pose-model"
MODEL_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # 1: no hashes of the priors and the configuration (read with a warning)
_WEIGHTS = "reconstructor.safetensors"
_SEGMENTER = "segmenter.safetensors"
_PRIORS = "priors.npz"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class ModelFolderError(ValueError):
    """A model folder that cannot be used: missing files, an unknown format, weights that do not match."""


@dataclass
class LoadedModel:
    """A model folder in memory: the Reconstructor (eval mode, on its device), its priors and ``model.json``."""

    reconstructor: Reconstructor
    priors: ShapePriors  # (6, M, 3), M = reconstructor.config.prior_points
    info: dict[str, Any]
    path: Path
    segmenter: nn.Module | None = None  # Mask R-CNN (eval mode), when the folder has one
    segmenter_config: SegmenterConfig | None = None
    size_factors: np.ndarray | None = None  # (6,) per class id − 1, the scale's calibration; None: none


def default_model_path() -> Path:
    """The default model shipped with the package (``acr_pose_core/assets/default_model``)."""
    return Path(__file__).resolve().parent / "assets" / "default_model"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model_folder(
    out: str | os.PathLike,
    reconstructor: Reconstructor,
    priors: ShapePriors,
    source: dict[str, Any] | None = None,
    weights_dtype: str = "float16",
    segmenter: nn.Module | None = None,
    segmenter_config: SegmenterConfig | None = None,
    segmenter_source: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder (see the module docstring); existing model files in ``out`` are replaced.

    Raises:
        ValueError: an unknown ``weights_dtype``, or priors with another point count than the model's M.
    """
    if weights_dtype not in _DTYPES:
        raise ValueError(f"weights_dtype {weights_dtype!r}: expected one of {sorted(_DTYPES)}")
    config = reconstructor.config
    if priors.points.shape[1] != config.prior_points:
        raise ValueError(f"the priors have {priors.points.shape[1]} points, the model {config.prior_points}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (segmenter is None) != (segmenter_config is None):
        raise ValueError("give the segmenter together with its configuration")
    data = _tensor_bytes(reconstructor, _DTYPES[weights_dtype])
    write_atomically(out / _WEIGHTS, data)
    save_priors(out / _PRIORS, priors)
    document = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "reconstructor": asdict(config),
        "weights": {"file": _WEIGHTS, "dtype": weights_dtype, "sha256": _sha256(data)},
        "priors": {"file": _PRIORS, "sha256": _sha256((out / _PRIORS).read_bytes())},
        "source": source or {},
    }
    if segmenter is not None:
        seg_data = _tensor_bytes(segmenter, _DTYPES[weights_dtype])
        write_atomically(out / _SEGMENTER, seg_data)
        document["segmenter"] = {
            "config": config_to_dict(segmenter_config),
            "weights": {"file": _SEGMENTER, "dtype": weights_dtype, "sha256": _sha256(seg_data)},
            "source": segmenter_source or {},
        }
    elif (out / _SEGMENTER).exists():
        (out / _SEGMENTER).unlink()  # a folder rewritten without one must not keep an old one
    document["config_sha256"] = _config_sha256(document)
    write_atomically(out / "model.json", json_text(document, indent=2) + "\n")
    return out


def _config_sha256(document: dict[str, Any]) -> str:
    """sha256 of the sections that shape the models: ``reconstructor`` and ``segmenter.config`` (canonical JSON)."""
    segmenter = document.get("segmenter")
    shaped = {"reconstructor": document.get("reconstructor"), "segmenter": segmenter and segmenter.get("config")}
    return _sha256(json.dumps(shaped, sort_keys=True, separators=(",", ":")).encode())


def _member(path: Path, name: Any, what: str) -> Path:
    """``path / name`` for a plain file name; ModelFolderError for anything that could leave the folder."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ModelFolderError(f"{path}/model.json: {what} must be a file name inside the folder, got {name!r}")
    return path / name


def _tensor_bytes(module: nn.Module, dtype: torch.dtype) -> bytes:
    """A module's state dict as safetensors bytes, floating tensors in ``dtype``."""
    state = {
        key: (value.detach().to("cpu", dtype) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for key, value in module.state_dict().items()
    }
    return save_tensors(state)


def _load_weights(module: nn.Module, file: Path, sha256: Any, dtype: torch.dtype) -> None:
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing from the model folder")
    data = file.read_bytes()
    if _sha256(data) != sha256:
        raise ModelFolderError(f"{file}: sha256 differs from model.json's (a damaged or replaced file)")
    try:
        state = load_tensors(data)
    except Exception as error:  # safetensors raises its own error types for malformed content
        raise ModelFolderError(f"{file}: not a readable safetensors file ({type(error).__name__}: {error})") from None
    expected = module.state_dict()
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    shapes = [k for k in state.keys() & expected.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:  # one line, not torch's list of every key
        raise ModelFolderError(
            f"{file}: does not fit the configuration in model.json ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(shapes)} of another shape, e.g. {(missing + unexpected + sorted(shapes))[:3]})"
        )
    module.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})


def _read_info(path: Path) -> dict[str, Any]:
    info_path = path / "model.json"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    if not info_path.is_file():
        raise ModelFolderError(
            f"{path}: not a model folder (no model.json; a training run is exported with "
            "`acr-pose export --run RUN --out FOLDER`)"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{info_path}: not valid JSON ({error})") from None
    if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
        raise ModelFolderError(f"{info_path}: format is not {MODEL_FORMAT!r}")
    if info.get("version") not in _READABLE_VERSIONS:
        raise ModelFolderError(
            f"{info_path}: version {info.get('version')!r}; this acr-pose reads {list(_READABLE_VERSIONS)}"
        )
    return info


def load_model_folder(
    path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """Load a model folder (None: the shipped default) onto ``device`` in ``dtype``, in eval mode.

    Raises:
        FileNotFoundError: no such folder (or a file it names is missing).
        ModelFolderError: not a model folder, an unknown version, a weights file whose sha256 differs from the
            recorded one, or weights that do not fit the recorded configuration.
    """
    path = Path(default_model_path() if path is None else path)
    info = _read_info(path)
    try:
        config = config_from_dict(ReconstructorConfig, info["reconstructor"], f"{path}/model.json: reconstructor")
        weights = _member(path, info["weights"]["file"], "weights.file")
        priors_path = _member(path, info["priors"]["file"], "priors.file")
        priors_sha = info["priors"].get("sha256")
    except (KeyError, TypeError, AttributeError) as error:
        raise ModelFolderError(f"{path}/model.json: malformed ({type(error).__name__}: {error})") from None
    if not priors_path.is_file():
        raise FileNotFoundError(f"{priors_path}: missing from the model folder")
    if info["version"] == 1:
        warnings.warn(
            f"{path}: a version-1 model folder, whose priors and configuration are not hash-checked; re-export it "
            "(acr-pose export) to have them checked",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        if info.get("config_sha256") != _config_sha256(info):
            raise ModelFolderError(
                f"{path}/model.json: its reconstructor or segmenter configuration was changed after export "
                "(config_sha256 differs); the weights were trained for the recorded one"
            )
        if _sha256(priors_path.read_bytes()) != priors_sha:
            raise ModelFolderError(f"{priors_path}: sha256 differs from model.json's (a damaged or replaced file)")
    model = Reconstructor(config)
    _load_weights(model, weights, info["weights"].get("sha256"), dtype)
    segmenter, segmenter_config = None, None
    if info.get("segmenter") is not None:
        try:
            section = info["segmenter"]
            segmenter_config = config_from_dict(SegmenterConfig, section["config"], f"{path}/model.json: segmenter")
            seg_file = _member(path, section["weights"]["file"], "segmenter.weights.file")
            seg_sha = section["weights"].get("sha256")
        except (KeyError, TypeError) as error:
            raise ModelFolderError(f"{path}/model.json: malformed segmenter ({error})") from None
        segmenter = build_segmenter(segmenter_config)
        _load_weights(segmenter, seg_file, seg_sha, dtype)
        segmenter = segmenter.to(device=device, dtype=dtype).eval()
    priors = load_priors(priors_path)
    if priors.points.shape[1] != config.prior_points:
        raise ModelFolderError(
            f"{priors_path}: {priors.points.shape[1]} points a prior, the model needs {config.prior_points}"
        )
    model = model.to(device=device, dtype=dtype).eval()
    factors = None if info.get("size_calibration") is None else _size_factors(info["size_calibration"], path)
    return LoadedModel(model, priors, info, path, segmenter, segmenter_config, factors)


def _size_factors(section: Any, path: Path) -> np.ndarray:
    """(6,) factors from ``model.json``'s ``size_calibration`` section; ModelFolderError unless every category has
    a finite positive factor."""
    factors = section.get("factors") if isinstance(section, dict) else None
    if not isinstance(factors, dict) or set(factors) != set(CATEGORIES):
        raise ModelFolderError(f"{path}/model.json: size_calibration.factors must name each of {list(CATEGORIES)}")
    values = [factors[name] for name in CATEGORIES]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in values):
        raise ModelFolderError(f"{path}/model.json: size_calibration factors must be positive numbers, got {values}")
    return np.array(values, np.float64)


def write_size_calibration(
    path: str | os.PathLike, factors: np.ndarray | None, source: dict[str, Any] | None = None
) -> Path:
    """Record (or, with None, remove) the per-category scale factors ``(6,)`` in a model folder's ``model.json``."""
    path = Path(path)
    info = _read_info(path)
    if factors is None:
        info.pop("size_calibration", None)
    else:
        factors = np.asarray(factors, np.float64).reshape(-1)
        section = {"factors": {name: float(f) for name, f in zip(CATEGORIES, factors, strict=True)}}
        _size_factors(section, path)  # the same checks as the loader's
        info["size_calibration"] = {**section, "source": source or {}}
    write_atomically(path / "model.json", json_text(info, indent=2) + "\n")
    return path
