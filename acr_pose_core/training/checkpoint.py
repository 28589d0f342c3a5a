"""Training checkpoints: every tensor in a safetensors file, everything else in a readable JSON file beside it.

A checkpoint of optimisation step ``s`` is two files in one directory:

- ``step_<s:09d>.safetensors``: the tensors, under
  ``module/<name>/<state-dict key>`` (parameters and buffers), ``optimiser/<name>/state/<param index>/<key>``
  (e.g. Adam's ``exp_avg``), ``rng/<name>`` (generator states), and, rarely, ``optimiser/<name>/param_groups/...``
  or ``scheduler/<name>/...`` for a tensor-valued hyper-parameter;
- ``step_<s:09d>.json`` (indent 2): format and version, the counters (``step``, ``epoch``, ``step_in_epoch``), the
  run's ``config`` and ``metadata`` (data, git commit, metrics, time: whatever the caller gives), the optimisers'
  ``param_groups`` and non-tensor state entries, the schedulers' state dicts, and the name, size and sha256 of the
  tensor file.

Python values that JSON cannot hold exactly are written as one-key objects: ``{"__tuple__": [...]}`` (Adam's
``betas``), ``{"__counter__": [[key, count], ...]}`` (MultiStepLR's ``milestones``), ``{"__dict__": [[key, value],
...]}`` (a dict with keys that are not strings) and ``{"__tensor__": "<key in the tensor file>"}``. Anything else
(a function, an arbitrary object) is refused when saving, with its place named: nothing is ever pickled, and
loading never unpickles (only ``safetensors`` and ``json`` read the files).

Both files are written atomically (a temporary file in the same directory, fsync, ``os.replace``), the JSON last, so
a checkpoint exists iff its JSON exists and the recorded sha256 matches the tensor file: a run killed while saving
leaves at worst an orphan tensor file that :func:`latest_checkpoint` ignores, and resuming from the newest complete
checkpoint (:func:`load_checkpoint`) restores modules, optimisers, schedulers, RNG states and counters, so the run
continues bit for bit (given deterministic kernels) and loses only the steps since that checkpoint. Saving a step
again (the end-of-epoch save of a step just saved) writes its tensors under the other of two names
(``step_<s:09d>.safetensors``, ``step_<s:09d>.b.safetensors``): replacing the JSON switches from one complete
checkpoint to the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from acr_pose_core.fileio import json_text

__all__ = [
    "CheckpointError",
    "CheckpointSearch",
    "checkpoint_json",
    "FORMAT",
    "FORMAT_VERSION",
    "TrainingState",
    "find_checkpoint",
    "git_commit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_module_weights",
    "save_checkpoint",
]

FORMAT = "acr-pose-checkpoint"
FORMAT_VERSION = 1  # bump when the layout changes; loading refuses versions it does not know

_NAME = re.compile(r"^step_(\d+)(?:\.b)?\.(json|safetensors)$")  # step_N.b.safetensors: a re-saved step's tensors
_TMP = re.compile(r"^\.step_\d+(?:\.b)?\.(json|safetensors)\.[0-9a-f]+\.tmp$")
_TAGS = frozenset({"__tensor__", "__tuple__", "__counter__", "__dict__"})
_CHUNK = 1 << 20  # bytes read at a time when hashing
_LINE = 100  # characters: JSON containers up to this width stay on one line


class CheckpointError(ValueError):
    """A checkpoint cannot be written (an unstorable value) or read (corrupt, incompatible); the message names the
    file or the value."""


@dataclass
class TrainingState:
    """Everything a resumed run needs; :func:`save_checkpoint` reads it and :func:`load_checkpoint` restores it in
    place (the objects are loaded into, not replaced; ``rng`` is replaced by the stored states)."""

    step: int  # optimisation steps done
    epoch: int  # epoch in progress (0-based)
    step_in_epoch: int  # batches of `epoch` already consumed
    modules: dict[str, nn.Module]  # may be DDP-wrapped: the wrapped module is stored
    optimisers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = field(default_factory=dict)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # named generator states; the caller sets and uses them


# ---------------------------------------------------------------------------------------------------------------------
# Values to JSON and back


def _encode(value: Any, where: str, tensors: dict[str, torch.Tensor] | None, key: str) -> Any:
    """``value`` as JSON (see the module docstring); tensors go to ``tensors[key...]`` (refused when it is None)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        if tensors is None:
            raise CheckpointError(f"{where}: no tensor can be stored here (as a key or in an optimiser state entry)")
        if key in tensors:
            raise CheckpointError(f"{where}: tensor key {key!r} is used twice")
        tensors[key] = value
        return {"__tensor__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]", tensors, f"{key}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]", tensors, f"{key}/{i}") for i, v in enumerate(value)]
    if isinstance(value, Counter):
        return {"__counter__": [[_encode(k, f"{where} key", None, key), n] for k, n in value.items()]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not _TAGS & value.keys():
            return {k: _encode(v, f"{where}[{k!r}]", tensors, f"{key}/{k}") for k, v in value.items()}
        return {
            "__dict__": [
                [_encode(k, f"{where} key", None, key), _encode(v, f"{where}[{k!r}]", tensors, f"{key}/{k}")]
                for k, v in value.items()
            ]
        }
    raise CheckpointError(
        f"{where}: cannot store {type(value).__qualname__} {value!r:.80} (a checkpoint holds numbers, strings, None, "
        "lists, tuples, dicts and tensors; nothing is pickled)"
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "__tensor__":
            if inner not in tensors:
                raise CheckpointError(f"{where}: tensor {inner!r} is missing from the tensor file")
            return tensors[inner]
        if tag == "__tuple__":
            return tuple(_decode(v, tensors, where) for v in inner)
        if tag == "__counter__":
            return Counter({_decode(k, tensors, where): n for k, n in inner})
        if tag == "__dict__":
            return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in inner}
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def _json_default(value: Any) -> Any:
    """Lets config and metadata hold paths and scalar numpy/torch numbers; refuses the rest."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and tuple(getattr(value, "shape", (None,))) == ():
        return value.item()
    raise TypeError(f"{type(value).__qualname__} {value!r:.80} is not JSON-serialisable")


def _plain_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The caller's config or metadata as plain JSON values (round-tripped, so an unserialisable value fails here)."""
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{what} must be a mapping, got {type(value).__qualname__}")
    try:
        return json.loads(json_text(value, default=_json_default))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{what} cannot be stored as JSON: {error}") from error


def _format(value: Any, indent: int = 0) -> str:
    """JSON of plain values, indented by 2, with lists of numbers and containers that fit a line kept on one line
    (``json.dumps(indent=2)`` gives every parameter index and every tuple element a line of its own)."""
    flat = json.dumps(value, allow_nan=False)
    if not isinstance(value, (dict, list)) or indent + len(flat) <= _LINE:
        return flat
    if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        lines = [f"{pad}{json.dumps(k)}: {_format(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [pad + _format(v, indent + 2) for v in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


# ---------------------------------------------------------------------------------------------------------------------
# Saving


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside DDP/DataParallel (``.module``) or ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise CheckpointError(f"{kind} name {name!r} must be a non-empty string without '/'")


def _storable(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors, none sharing storage with another (safetensors refuses shared memory, e.g. tied
    weights: each gets its own copy and loads back as an independent tensor)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen or tensor.numel() == 0:
            tensor = tensor.clone()
        seen.add(pointer)
        out[key] = tensor
    return out


def _optimiser_document(
    name: str, optimiser: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    where = f"optimiser {name!r}"
    state_dict = optimiser.state_dict()
    state: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        if not isinstance(index, int):
            raise CheckpointError(f"{where}: state key {index!r} is not a parameter index")
        state[str(index)] = {}
        for key, value in entries.items():
            if not isinstance(key, str) or "/" in key:
                raise CheckpointError(f"{where}: state entry name {key!r} must be a string without '/'")
            if isinstance(value, torch.Tensor):
                tensors[f"optimiser/{name}/state/{index}/{key}"] = value
            else:
                state[str(index)][key] = _encode(value, f"{where} state[{index}][{key!r}]", None, "")
    groups = [
        _encode(group, f"{where} param_groups[{g}]", tensors, f"optimiser/{name}/param_groups/{g}")
        for g, group in enumerate(state_dict["param_groups"])
    ]
    return {"type": type(optimiser).__qualname__, "param_groups": groups, "state": state}


def _scheduler_document(
    name: str, scheduler: torch.optim.lr_scheduler.LRScheduler, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    # LambdaLR/MultiplicativeLR store `None` for a plain function and the `__dict__` of a callable object: the
    # encoder accepts the latter only when it holds plain values, and names it otherwise.
    state = _encode(scheduler.state_dict(), f"scheduler {name!r}", tensors, f"scheduler/{name}")
    return {"type": type(scheduler).__qualname__, "state": state}


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory; the rename is as durable as the platform makes it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_atomically(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    directory: str | os.PathLike,
    state: TrainingState,
    config: Mapping[str, Any],
    metadata: Mapping[str, Any],
    keep_last: int | None = 3,
) -> Path:
    """Write the checkpoint of ``state.step`` into ``directory`` (created if needed); returns its ``.json`` path.

    ``config`` and ``metadata`` must be JSON-serialisable (paths and scalar numbers are converted). Everything is
    checked before anything is written: an unstorable value raises :class:`CheckpointError` naming it and leaves the
    directory as it was. An existing checkpoint of the same step is replaced, atomically (its files are not
    rewritten: see the comment at the write). With ``keep_last``, the one just
    written and the ``keep_last - 1`` newest complete checkpoints before it stay; older and incomplete ones before it,
    and temporary files of interrupted saves, are removed. Checkpoints of later steps (another run's) are left alone.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be at least 1 or None, got {keep_last}")
    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, Any] = {}
    for name, wrapped in state.modules.items():
        _check_name("module", name)
        module = _unwrap(wrapped)
        for key, value in module.state_dict().items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"module {name!r}: state entry {key!r} is a {type(value).__qualname__}")
            tensors[f"module/{name}/{key}"] = value
        modules[name] = {
            "type": type(module).__qualname__,
            "parameters": sum(p.numel() for p in module.parameters()),
        }
    optimisers = {}
    for name, optimiser in state.optimisers.items():
        _check_name("optimiser", name)
        optimisers[name] = _optimiser_document(name, optimiser, tensors)
    schedulers = {}
    for name, scheduler in state.schedulers.items():
        _check_name("scheduler", name)
        schedulers[name] = _scheduler_document(name, scheduler, tensors)
    for name, generator_state in state.rng.items():
        _check_name("rng", name)
        if not isinstance(generator_state, torch.Tensor):
            raise CheckpointError(f"rng {name!r}: a generator state must be a tensor, got {type(generator_state)}")
        tensors[f"rng/{name}"] = generator_state

    stem = f"step_{int(state.step):09d}"
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(state.step),
        "epoch": int(state.epoch),
        "step_in_epoch": int(state.step_in_epoch),
        "tensors": {"file": f"{stem}.safetensors", "bytes": None, "sha256": None},
        "config": _plain_json(config, "config"),
        "metadata": _plain_json(metadata, "metadata"),
        "modules": modules,
        "optimisers": optimisers,
        "schedulers": schedulers,
        "rng": sorted(state.rng),
    }

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    # Re-saving a step never touches the files its .json names: the new tensors go to the other of the two names
    # (step_N.safetensors, step_N.b.safetensors), and the atomic replacement of the .json is the one moment the
    # checkpoint changes; a kill at any point leaves the old checkpoint or the new one complete, never neither.
    previous = _tensor_file_of(json_path)
    tensor_path = directory / (f"{stem}.b.safetensors" if previous == f"{stem}.safetensors" else f"{stem}.safetensors")
    document["tensors"]["file"] = tensor_path.name
    tmp = _temporary(tensor_path)
    try:
        # safetensors' save_file creates its file with mode 0600; the bytes go through open() like every other file
        payload = save(_storable(tensors), metadata={"format": FORMAT, "step": str(state.step)})
        with open(tmp, "xb") as f:
            f.write(payload)
        document["tensors"].update(bytes=tmp.stat().st_size, sha256=_sha256(tmp))
        _replace_atomically(tmp, tensor_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp = _temporary(json_path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(_format(document) + "\n")
        _replace_atomically(tmp, json_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for stale in (directory / f"{stem}.safetensors", directory / f"{stem}.b.safetensors"):
        if stale != tensor_path:  # the replaced checkpoint's tensors, named by no .json now
            stale.unlink(missing_ok=True)
    if keep_last is not None:
        _prune(directory, keep_last, int(state.step))
    return json_path


def _tensor_file_of(json_path: Path) -> str | None:
    """The tensor file name an existing checkpoint document records (None if there is none or it is unreadable)."""
    try:
        return _read_document(json_path)["tensors"]["file"]
    except (OSError, CheckpointError, ValueError):
        return None


def _steps(directory: Path) -> dict[int, list[Path]]:
    """Checkpoint files of ``directory`` by step."""
    out: dict[int, list[Path]] = {}
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            out.setdefault(int(match.group(1)), []).append(path)
    return out


def _prune(directory: Path, keep_last: int, current: int) -> None:
    """Keep step ``current`` and the ``keep_last - 1`` newest complete checkpoints before it; remove the other ones
    before it (complete or not) and temporary files. Steps after ``current`` (left by another run) are not touched."""
    steps = _steps(directory)
    keep = {current}
    for step in sorted((s for s in steps if s < current), reverse=True):
        if len(keep) >= keep_last:
            break
        if _is_complete(directory / f"step_{step:09d}.json"):
            keep.add(step)
    for step, paths in steps.items():
        if step < current and step not in keep:
            # The .json first: a removal interrupted half-way leaves an incomplete checkpoint, never a wrong one.
            for path in sorted(paths, key=lambda p: p.suffix != ".json"):
                path.unlink(missing_ok=True)
    for path in directory.iterdir():
        if _TMP.match(path.name):  # left by a save that was killed (one writer per directory)
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------------
# Finding and verifying


def _read_document(json_path: Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, its format checked (not yet its tensor file)."""
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: no such checkpoint")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{json_path}: not a checkpoint (invalid JSON: {error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not an {FORMAT} file")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: unknown checkpoint format version {version!r} (this code reads version {FORMAT_VERSION})"
        )
    counters = [document.get(key) for key in ("step", "epoch", "step_in_epoch")]
    info = document.get("tensors")
    if not all(isinstance(c, int) for c in counters) or not isinstance(info, dict):
        raise CheckpointError(f"{json_path}: malformed checkpoint document (counters or tensor file record missing)")
    file = info.get("file")
    if not isinstance(file, str) or not file or "/" in file or "\\" in file or file in (".", ".."):
        raise CheckpointError(f"{json_path}: malformed checkpoint document (tensor file name {file!r})")
    return document


def _verified(json_path: Path) -> tuple[dict[str, Any], Path]:
    """The document and the tensor file of a complete checkpoint; raises, naming the file, otherwise."""
    document = _read_document(json_path)
    info = document["tensors"]
    tensor_path = json_path.with_name(info["file"])
    if not tensor_path.is_file():
        raise FileNotFoundError(f"{json_path}: its tensor file {tensor_path} is missing")
    size = tensor_path.stat().st_size
    if size != info.get("bytes"):
        raise CheckpointError(
            f"{tensor_path}: {size} bytes where {json_path.name} records {info.get('bytes')} (truncated or replaced)"
        )
    sha = _sha256(tensor_path)
    if sha != info.get("sha256"):
        raise CheckpointError(f"{tensor_path}: sha256 {sha} does not match {info.get('sha256')} in {json_path.name}")
    return document, tensor_path


def _is_complete(json_path: Path) -> bool:
    try:
        _verified(json_path)
    except (OSError, CheckpointError):
        return False
    return True


class CheckpointSearch(NamedTuple):
    """What :func:`find_checkpoint` found: the newest complete checkpoint's ``.json`` (None if there is none) and
    the newer checkpoints it passed over, each with the reason (``(path, reason)``, newest first)."""

    path: Path | None
    skipped: list[tuple[Path, str]]


def find_checkpoint(directory: str | os.PathLike) -> CheckpointSearch:
    """The newest complete checkpoint in ``directory`` (by step) and the newer, incomplete or corrupt ones skipped:
    a tensor file without its ``.json`` (an interrupted save), an unreadable document, a tensor file that is missing,
    truncated or fails the sha256 check."""
    directory = Path(directory)
    skipped: list[tuple[Path, str]] = []
    if not directory.is_dir():
        return CheckpointSearch(None, skipped)
    for step in sorted(_steps(directory), reverse=True):
        json_path = directory / f"step_{step:09d}.json"
        try:
            _verified(json_path)
        except (OSError, CheckpointError) as error:
            skipped.append((json_path, str(error)))
            continue
        return CheckpointSearch(json_path, skipped)
    return CheckpointSearch(None, skipped)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The ``.json`` of the newest complete checkpoint in ``directory`` (by step), or None: files without their
    ``.json``, unreadable documents and tensor files that fail the sha256 check are skipped (see
    :func:`find_checkpoint` for what was skipped and why)."""
    return find_checkpoint(directory).path


def _resolve(path: str | os.PathLike) -> Path:
    """The ``.json`` that ``path`` means: itself, the one beside a ``.safetensors``, or a directory's newest."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: no complete checkpoint in this directory")
        return latest
    if path.suffix == ".safetensors":
        json_path = path.with_suffix(".json")
        if not json_path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint ({json_path.name} is missing: an interrupted save?)")
        return json_path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return path


def _read_tensors(tensor_path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors whose keys start with ``prefix``, on the CPU (safetensors only: no pickle)."""
    try:
        with safe_open(str(tensor_path), framework="pt", device="cpu") as f:
            return {key: f.get_tensor(key) for key in f.keys() if key.startswith(prefix)}
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{tensor_path}: cannot read the tensors ({error})") from error


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def _module_state(
    file: Path, name: str, module: nn.Module, stored: Mapping[str, torch.Tensor], strict: bool
) -> dict[str, torch.Tensor]:
    """Check ``stored`` against ``module``'s state dict (shapes always, keys when strict); raise naming ``file``."""
    expected = module.state_dict()
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{file}: module {name!r} does not match: missing keys {missing[:10]}"
            f"{' …' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]}"
            f"{' …' if len(unexpected) > 10 else ''}"
        )
    wrong = [
        f"{key}: stored {tuple(value.shape)}, module {tuple(expected[key].shape)}"
        for key, value in stored.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if wrong:
        raise CheckpointError(f"{file}: module {name!r} has shape mismatches: {'; '.join(wrong[:10])}")
    return {key: value for key, value in stored.items() if key in expected}


def _names_match(file: Path, kind: str, stored: Mapping[str, Any], given: Mapping[str, Any], strict: bool) -> list:
    if strict and stored.keys() != given.keys():
        raise CheckpointError(
            f"{file}: {kind}s do not match: missing {sorted(given.keys() - stored.keys())}, "
            f"unexpected {sorted(stored.keys() - given.keys())}"
        )
    return [name for name in given if name in stored]


def _optimiser_state(
    file: Path, name: str, optimiser: torch.optim.Optimizer, stored: Mapping[str, Any], tensors: Mapping
) -> dict[str, Any]:
    """Rebuild the ``state_dict`` that torch expects from the document and the tensors."""
    where = f"{file}: optimiser {name!r}"
    if stored.get("type") != type(optimiser).__qualname__:
        raise CheckpointError(f"{where} is a {stored.get('type')}, not a {type(optimiser).__qualname__}")
    groups = _decode(stored["param_groups"], tensors, where)
    sizes, expected = [len(g["params"]) for g in groups], [len(g["params"]) for g in optimiser.param_groups]
    if sizes != expected:
        raise CheckpointError(f"{where}: parameter groups of sizes {sizes}, the optimiser has {expected}")
    state = {int(index): _decode(entries, tensors, where) for index, entries in stored["state"].items()}
    prefix = f"optimiser/{name}/state/"
    for key, tensor in tensors.items():
        if key.startswith(prefix):
            index, entry = key[len(prefix) :].split("/", 1)
            if int(index) not in state:
                raise CheckpointError(f"{where}: tensor {key!r} belongs to no recorded parameter state")
            state[int(index)][entry] = tensor
    return {"state": state, "param_groups": groups}


def _checked_states(
    json_path: Path,
    tensor_path: Path,
    document: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    state: TrainingState,
    strict: bool,
) -> tuple[dict[str, dict], dict[str, dict], dict[str, dict]]:
    """The state dicts to load into ``state``'s modules, optimisers and schedulers, all checked against them."""
    stored_modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in document.get("modules", {})}
    for key, value in tensors.items():
        if key.startswith("module/"):
            name, entry = key[len("module/") :].split("/", 1)
            stored_modules.setdefault(name, {})[entry] = value
    modules = {
        name: _module_state(tensor_path, name, _unwrap(state.modules[name]), stored_modules[name], strict)
        for name in _names_match(tensor_path, "module", stored_modules, state.modules, strict)
    }
    stored_optimisers = document.get("optimisers", {})
    optimisers = {
        name: _optimiser_state(json_path, name, state.optimisers[name], stored_optimisers[name], tensors)
        for name in _names_match(json_path, "optimiser", stored_optimisers, state.optimisers, strict)
    }
    stored_schedulers = document.get("schedulers", {})
    schedulers = {}
    for name in _names_match(json_path, "scheduler", stored_schedulers, state.schedulers, strict):
        stored, scheduler = stored_schedulers[name], state.schedulers[name]
        if stored.get("type") != type(scheduler).__qualname__:
            raise CheckpointError(
                f"{json_path}: scheduler {name!r} is a {stored.get('type')}, not a {type(scheduler).__qualname__}"
            )
        schedulers[name] = _decode(stored["state"], tensors, f"{json_path}: scheduler {name!r}")
    return modules, optimisers, schedulers


def load_checkpoint(
    path: str | os.PathLike,
    state: TrainingState,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
) -> dict[str, Any]:
    """Restore ``state`` from a checkpoint; returns its JSON document (``config``, ``metadata``, ...).

    ``path`` is a checkpoint's ``.json`` or ``.safetensors``, or a directory (its newest complete checkpoint).
    Modules, optimisers and schedulers are loaded in place; ``state.rng`` is replaced by the stored generator states
    (CPU uint8 tensors, as ``torch.set_rng_state`` wants: the caller applies them); the counters are set. Module and
    optimiser tensors are read onto ``map_location`` (torch then moves optimiser state next to its parameters).

    Everything is checked before anything changes; errors name the file: :class:`FileNotFoundError` for a missing
    file, :class:`CheckpointError` for a sha256 mismatch, an unknown format version, missing or unexpected modules,
    keys, optimisers or schedulers (when ``strict``; without it, what is missing on either side is skipped) and
    shape mismatches (always).
    """
    json_path = _resolve(path)
    document, tensor_path = _verified(json_path)
    tensors = _read_tensors(tensor_path)
    rng = {key[len("rng/") :]: value for key, value in tensors.items() if key.startswith("rng/")}
    tensors = {key: value.to(map_location) for key, value in tensors.items() if not key.startswith("rng/")}
    try:
        modules, optimisers, schedulers = _checked_states(json_path, tensor_path, document, tensors, state, strict)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{json_path}: malformed checkpoint ({type(error).__name__}: {error})") from error

    for name, module_state in modules.items():
        _unwrap(state.modules[name]).load_state_dict(module_state, strict=strict)
    for name, optimiser_state in optimisers.items():
        state.optimisers[name].load_state_dict(optimiser_state)
    for name, scheduler_state in schedulers.items():
        state.schedulers[name].load_state_dict(scheduler_state)
    state.rng = rng
    state.step = document["step"]
    state.epoch = document["epoch"]
    state.step_in_epoch = document["step_in_epoch"]
    return document


def load_module_weights(
    path: str | os.PathLike, module: nn.Module, name: str = "reconstructor", map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load only module ``name``'s tensors into ``module`` (strictly: same keys and shapes); returns the JSON
    document, whose ``config`` rebuilds the model. ``path`` as in :func:`load_checkpoint`."""
    json_path = _resolve(path)
    document, tensor_path = _verified(json_path)
    prefix = f"module/{name}/"
    stored = {key[len(prefix) :]: value.to(map_location) for key, value in _read_tensors(tensor_path, prefix).items()}
    if name not in document.get("modules", {}):
        raise CheckpointError(f"{tensor_path}: no module {name!r} (it holds {sorted(document.get('modules', {}))})")
    module = _unwrap(module)
    module.load_state_dict(_module_state(tensor_path, name, module, stored, strict=True))
    return document


# ---------------------------------------------------------------------------------------------------------------------
# Provenance


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result if result.returncode == 0 else None


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (default: this package's checkout), with ``-dirty`` appended when ``git
    status --porcelain`` lists anything; None outside a checkout or without git. Never raises.

    By default the package's ``__init__.py`` must be tracked by that checkout, so an installed copy whose
    site-packages happens to lie inside some repository does not report that repository's commit.
    """
    try:
        if repo is None:
            repo = Path(__file__).resolve().parents[1]
            if _git(repo, "ls-files", "--error-unmatch", "__init__.py") is None:
                return None
        repo = Path(repo)
        head = _git(repo, "rev-parse", "HEAD")
        if head is None:
            return None
        commit = head.stdout.strip()
        if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit):
            return None
        status = _git(repo, "status", "--porcelain")
        return commit + "-dirty" if status is not None and status.stdout.strip() else commit
    except Exception:  # provenance is best effort: never let it stop a run
        return None


def checkpoint_json(run: Path) -> Path:
    """The checkpoint ``.json`` a run folder (its newest complete one) or a checkpoint path means."""
    if run.is_dir():
        if (run / "checkpoints").is_dir():  # a run folder (the trainers keep their checkpoints in checkpoints/)
            run = run / "checkpoints"
        search = find_checkpoint(run)
        if search.path is None:
            raise CheckpointError(f"{run}: no complete checkpoint to export")
        return search.path
    json_path = run.with_suffix(".json")
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: no such checkpoint")
    return json_path
