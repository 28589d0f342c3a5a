"""Atomic file writes, shared by every writer of the package (results, frames, priors, reports, run records).

A file is written to a new temporary name in its own directory and renamed over the destination, so a reader
never sees half a file and an interrupted writer leaves the old file (or none). The temporary file is opened with
mode ``x`` rather than by ``tempfile.mkstemp``, whose files are readable by their owner only: the result gets the
permissions of any file the process creates.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_atomically"]


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
