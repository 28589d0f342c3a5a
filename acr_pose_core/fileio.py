"""Atomic file writes and strict JSON, shared by every writer of the package (results, frames, priors, reports, run
records).

A file is written to a new temporary name in its own directory and renamed over the destination, so a reader
never sees half a file and an interrupted writer leaves the old file (or none). The temporary file is opened with
mode ``x`` rather than by ``tempfile.mkstemp``, whose files are readable by their owner only: the result gets the
permissions of any file the process creates.

JSON is written strictly (:func:`json_text`): NaN and infinities, which Python's ``json`` would write as the bare
tokens ``NaN`` and ``Infinity`` that no other JSON reader accepts, become ``null``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["check_writable", "finite_or_none", "json_text", "write_atomically"]


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) inside dicts, lists and tuples replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def json_text(value: Any, **dumps_options: Any) -> str:
    """Strict JSON of ``value``: non-finite floats written as ``null`` (see :func:`finite_or_none`); other options
    (``indent``, ``default``, ...) as for :func:`json.dumps`."""
    return json.dumps(finite_or_none(value), allow_nan=False, **dumps_options)


def write_atomically(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Make sure a file can be written at ``path`` before long work is done for it; returns ``path``.

    The parent folder is created if missing and a probe file is created in it and removed (permission bits alone say
    nothing for root, and nothing about read-only file systems). Raises :class:`OSError` naming ``path`` otherwise,
    or when ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; name the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.probe")
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as error:
        raise OSError(f"{path}: cannot be written ({error.strerror or error})") from error
    return path
