"""numpy ↔ torch plumbing shared by the geometry functions: compute once in torch, answer in the caller's type."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def to_torch(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """A tensor view of ``x`` (no copy for a contiguous numpy array); float dtype of ``like`` if given."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        t = torch.as_tensor(np.ascontiguousarray(x))
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype if t.is_floating_point() else t.dtype)
    return t


def as_float_tensor(x: Any) -> torch.Tensor:
    """Tensor of a floating dtype: float32/float64 kept, anything else (ints, bools) becomes float64."""
    t = to_torch(x)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
