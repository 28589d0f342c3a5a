"""Settings: frozen dataclasses read strictly from YAML files, JSON records and ``key=value`` overrides.

The one loader of every settings dataclass (the trainers' configurations, a model folder's recorded model
configuration): unknown keys and values of the wrong type are a :class:`ValueError` that names the key and the file
(or ``where``); ``overrides`` of the form ``"schedule.epochs=2"`` are applied on top, values parsed as YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

__all__ = ["config_changes_between", "config_from_dict", "config_to_dict", "flatten", "load_settings"]


def config_to_dict(config: Any) -> Any:
    """A dataclass tree as plain JSON/YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    return config


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def config_from_dict(cls: type, values: Any, where: str = "") -> Any:
    """Instantiate the settings dataclass ``cls`` (e.g. a ``ReconstructorConfig`` read from a model folder) from a
    mapping, strictly: unknown keys and values of the wrong type are a :class:`ValueError` naming ``where``."""
    return _build(cls, values, where)


def config_changes_between(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """``{"dotted.key": (old value, new value)}`` for the settings in which two settings dataclasses differ."""
    a, b = flatten(config_to_dict(old)), flatten(config_to_dict(new))
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def _build(cls: type, values: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, strictly."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where or 'config'}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _coerce(options[0], value, where)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        try:  # YAML 1.1 reads 3e-3 (without a dot) as a string
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # no setting means infinity or NaN; they fail far from the file otherwise
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return number
    if hint in (int, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _set(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {key!r} is not a group of settings")
    node[keys[-1]] = value


def load_settings(
    cls: type,
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    tree: dict | None = None,
    where: str = "",
) -> Any:
    """The settings dataclass ``cls`` from a YAML file (or the settings ``tree``, e.g. a run's recorded
    ``config.json``, or the defaults) and ``key.sub=value`` overrides, strictly; errors name ``path`` (or ``where``).
    Both trainers' configurations are read this way."""
    tree = {} if tree is None else copy.deepcopy(tree)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such configuration file")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key=value, e.g. schedule.epochs=2")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({exc.problem or exc})") from None
        _set(tree, key.strip(), value)
    where = str(path) if path is not None else where
    return _build(cls, tree, where)
