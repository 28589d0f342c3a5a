"""Mixed precision: the parts of the model that stay in full precision under bf16 autocast.

The trainer and the benchmarks run the Reconstructor under ``torch.autocast(..., dtype=torch.bfloat16)`` on CUDA.
Convolutions and linear layers then run in bf16 (8-bit mantissa, about 3 significant digits), which the learned layers
tolerate. Three things do not, and are computed in float32 (float64 if the input is float64) inside
:func:`full_precision_region`: the PIM's local groups and geometric inputs (ranks of bf16 distances tie, bf16 angles
break the rotation invariance), the k-NN graphs of the RRM, and the outputs (softmax over 1024 prior points and the
NOCS reconstruction ``M_a (P_c + M_d)``).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["full_precision", "full_precision_region"]


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` as it is in float32 or float64; float16 and bfloat16 cast up to float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def full_precision_region(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context with autocast switched off on ``x``'s device (ops run in their inputs' dtypes); nothing to switch
    off on a device without autocast (``meta``, on which the benchmarks count a forward's operators)."""
    if not torch.amp.is_autocast_available(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)
