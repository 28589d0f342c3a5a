"""numpy ↔ torch plumbing shared by the geometry functions: compute once in torch, answer in the caller's type."""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

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


_HALF = (torch.float16, torch.bfloat16)


class PointPair(NamedTuple):
    """Corresponding point sets as batched tensors, and how the caller gave them."""

    source: torch.Tensor  # (B, N, 3)
    target: torch.Tensor  # (B, N, 3), source's dtype and device
    per_point: torch.Tensor | None  # (B, N) weights or mask, on source's device
    is_numpy: bool
    unbatched: bool
    dtype: torch.dtype  # the caller's float dtype: answers are given in it


def point_pair(source: Any, target: Any, per_point: Any = None) -> PointPair:
    """Batch ``(N, 3)`` input to ``(1, N, 3)`` and make tensors of numpy input; ``per_point`` follows the batching.

    float16 and bfloat16 points are computed in float32 (torch's SVD and determinant take neither, and their 3 or 4
    significant digits would not hold a rotation); :func:`answer_like` gives the answer back in the caller's dtype.
    """
    is_numpy = not isinstance(source, torch.Tensor)
    src = as_float_tensor(source)
    dtype = src.dtype
    if dtype in _HALF:
        src = src.float()
    tgt = to_torch(target, like=src) if isinstance(target, torch.Tensor) else as_float_tensor(target).to(src.dtype)
    unbatched = src.dim() == 2
    if unbatched:
        src, tgt = src[None], tgt[None]
    extra = None
    if per_point is not None:
        extra = to_torch(per_point).to(src.device)
        extra = extra[None] if unbatched else extra
    return PointPair(src, tgt, extra, is_numpy, unbatched, dtype)


T = TypeVar("T", bound=tuple)


def answer_like(result: T, pair: PointPair) -> T:
    """``result`` (a NamedTuple of batched tensors) without the added batch dimension, floating fields in the caller's
    dtype, as numpy for numpy input."""
    fields = [x.to(pair.dtype) if x.is_floating_point() else x for x in result]
    if pair.unbatched:
        fields = [x[0] for x in fields]
    if pair.is_numpy:
        fields = [to_numpy(x) for x in fields]
    return type(result)(*fields)
