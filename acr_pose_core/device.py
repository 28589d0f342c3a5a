"""The one rule for a ``device`` setting (estimator, both trainers, the node): a name torch knows, on hardware that is
here, checked when it is chosen so that a typo or a missing GPU is a clear error before any work.
"""

from __future__ import annotations

import torch

__all__ = ["choose_device"]


def choose_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise the named device, which must exist here.

    Raises:
        ValueError: a name torch does not read (``"bogus"``), or a CUDA/MPS device this machine does not have
            (``"cuda"`` without a GPU, ``"cuda:3"`` on a machine with two).
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is available here (use cpu or auto)")
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s), cuda:0 to {count - 1}")
    elif chosen.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {str(device)!r}: MPS is not available here (use cpu or auto)")
    return chosen
