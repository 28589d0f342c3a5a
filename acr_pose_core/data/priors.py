"""Category shape priors: the file that holds them, and the default shipped with the package.

A priors file is an ``.npz`` (read without pickle) with

- ``points``: (6, M, 3) float32, the prior of class id ``c`` in row ``c − 1``, canonical (NOCS) frame;
- ``categories``: (6,) the category names in that order (must equal :data:`acr_pose_core.categories.CATEGORIES`);
- ``info``: a JSON string saying how the priors were made (data, training, chamfer statistics).

``acr-pose priors`` writes one (see :mod:`acr_pose_core.training.priors`); :func:`load_priors` reads ours or one
that a user trained on real data. The package ships ``acr_pose_core/assets/shape_priors.npz``, learned from the
procedural training instances of :mod:`acr_pose_core.synth.shapes` (its ``info`` says how).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES
from acr_pose_core.fileio import json_text, write_atomically

__all__ = ["ShapePriors", "default_priors_path", "load_priors", "save_priors"]


@dataclass
class ShapePriors:
    """Priors of the six categories: ``points (6, M, 3)`` float32, row ``c − 1`` for class id ``c``."""

    points: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32)
        if self.points.ndim != 3 or self.points.shape[0] != NUM_CATEGORIES or self.points.shape[2] != 3:
            raise ValueError(f"priors must be ({NUM_CATEGORIES}, M, 3), got {self.points.shape}")
        if not np.isfinite(self.points).all():
            raise ValueError("priors contain non-finite coordinates")

    def resampled(self, num_points: int) -> ShapePriors:
        """The same priors with ``num_points`` points each: a fixed subset (the same one every time) when fewer."""
        M = self.points.shape[1]
        if num_points == M:
            return self
        if num_points > M:
            raise ValueError(f"the priors have {M} points; a model that needs {num_points} needs other priors")
        keep = np.sort(np.random.default_rng(0).choice(M, num_points, replace=False))
        return ShapePriors(self.points[:, keep], dict(self.info, resampled_to=num_points))

    def for_class(self, class_id: int) -> np.ndarray:
        """(M, 3) prior of class id 1..6."""
        if not 1 <= class_id <= NUM_CATEGORIES:
            raise ValueError(f"class id {class_id} is not 1..{NUM_CATEGORIES}")
        return self.points[class_id - 1]


def default_priors_path() -> Path:
    """Path of the priors shipped with the package."""
    return Path(str(resources.files("acr_pose_core") / "assets" / "shape_priors.npz"))


def save_priors(path: str | os.PathLike, priors: ShapePriors) -> Path:
    """Write ``priors`` to ``path`` (.npz) atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        points=priors.points,
        categories=np.array(CATEGORIES),
        info=np.array(json_text(priors.info, sort_keys=True)),
    )
    return write_atomically(path, buffer.getvalue())


def load_priors(path: str | os.PathLike | None = None) -> ShapePriors:
    """Read a priors file (default: the shipped one). Errors name the file."""
    path = default_priors_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such priors file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"points", "categories"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: not a priors file (missing {sorted(missing)})")
            categories = tuple(str(c) for c in data["categories"])
            points = data["points"]
            info = json.loads(str(data["info"])) if "info" in data.files else {}
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: unreadable priors file ({exc})") from exc
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {exc}") from exc
    if categories != CATEGORIES:
        raise ValueError(f"{path}: categories {categories} are not {CATEGORIES} in that order")
    try:
        return ShapePriors(points, info)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
