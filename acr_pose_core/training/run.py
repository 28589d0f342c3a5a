"""What both trainers share about their run folder: an exclusive lock held while a run writes there.

A run folder has one writer. :class:`RunLock` takes an advisory ``flock`` on ``<run>/run.lock`` (created if
missing, never deleted: ``--overwrite`` keeps it while it deletes the run's entries) before the folder rules are
applied (fresh / ``--resume`` / ``--overwrite``), and holds it until the run ends. A second trainer (another process,
or another trainer object in this one) on the same folder is refused naming the holder's pid. The kernel drops the
lock when its process dies, however it dies, so a killed run leaves no stale lock to clean up: the next one takes
the folder over. ``flock`` is POSIX; where ``fcntl`` is missing (Windows) the lock is skipped with no protection.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

__all__ = ["LOCK_FILE", "RunFolderInUseError", "RunLock"]

LOCK_FILE = "run.lock"


class RunFolderInUseError(OSError):
    """Another live run holds the folder's lock."""


class RunLock:
    """An exclusive lock on a run folder (module docstring); :meth:`release` (or garbage collection) frees it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        if fcntl is None:  # pragma: no cover
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderInUseError(
                f"{self.folder} is in use by another training run (process {holder}): wait for it to end, or "
                "choose another folder (--resume and --overwrite are refused while it runs)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Free the lock (idempotent). The file stays: deleting it could let two runs lock two different files."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        self.release()
