"""What every benchmark script ends with: its results as JSON, with the machine they were measured on."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from acr_pose_core.fileio import json_text


def machine() -> dict[str, Any]:
    """The platform, processor, CPU thread count and torch version (and the GPU, where there is one)."""
    out = {
        "platform": platform.platform(),
        "processor": platform.processor() or "unknown",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` (plus ``machine``, unless it has one) as indented JSON to ``path`` and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text({"machine": machine(), **result}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
