"""What both trainers share about their run folder: an exclusive lock held while a run writes there.

A run folder has one writer. :class:`RunLock` takes an advisory ``flock`` on ``<run>/run.lock`` (created if
missing, never deleted: ``--overwrite`` keeps it while it deletes the run's entries) before the folder rules are
applied (fresh / ``--resume`` / ``--overwrite``), and holds it until the run ends. A second trainer (another process,
or another trainer object in this one) on the same folder is refused naming the holder's pid. The kernel drops the
lock when its process dies, however it dies, so a killed run leaves no stale lock to clean up: the next one takes
the folder over. ``flock`` is POSIX; where ``fcntl`` is missing (Windows) the lock is skipped with no protection.

A resumed run continues ``log.jsonl`` from its checkpoint: :func:`rewind_log` first drops what the killed process
wrote after that checkpoint (lines of later steps, and a last line cut off mid-write), so that the log reads as the
uninterrupted run's and every line parses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acr_pose_core.fileio import write_atomically

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

__all__ = ["LOCK_FILE", "LockedRun", "RunFolderInUseError", "RunLock", "lock_run_folder", "rewind_log"]

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


def rewind_log(path: str | os.PathLike, step: int) -> int:
    """Cut the JSON-lines log ``path`` back to checkpoint step ``step``; returns how many lines were dropped.

    Kept: every complete line (ending in a newline) holding a JSON object whose ``"step"`` is at most ``step`` (or
    that has none). Dropped: lines of later steps (the killed process's work past its checkpoint, which the resumed
    run redoes), a trailing line without its newline (cut off mid-write), and any complete line that does not parse.
    The file is rewritten atomically, and only when something is dropped; a missing file drops nothing.
    """
    path = Path(path)
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")  # the last element is "" after a final newline, else the cut-off line
    kept, dropped = [], int(lines[-1] != "")
    for line in lines[:-1]:
        try:
            record = json.loads(line)
            later = isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step
            ok = isinstance(record, dict) and not later
        except ValueError:
            ok = False
        if ok:
            kept.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        write_atomically(path, "".join(kept))
    return dropped


def lock_run_folder(out: str | os.PathLike, resume: bool) -> RunLock | None:
    """The run folder's lock, taken by the main process (torchrun's ``RANK`` 0) before the folder rules apply; None
    on the other ranks, and for ``resume`` into a folder that does not exist (refused by the rules, created by
    nothing)."""
    if int(os.environ.get("RANK", "0")) != 0 or (resume and not Path(out).exists()):
        return None
    return RunLock(out)


class LockedRun:
    """What both trainers share about holding their folder: :meth:`_hold` takes the lock and runs the set-up under
    it (a set-up that fails frees it), :meth:`run` runs ``_run`` and frees the lock however it ends."""

    lock: RunLock | None = None

    def _hold(self, out: str | os.PathLike, resume: bool, setup: Callable[[], None]) -> None:
        self.lock = lock_run_folder(out, resume)
        try:
            setup()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Free the run folder's lock (done when :meth:`run` ends)."""
        if self.lock is not None:
            self.lock.release()

    def run(self) -> dict[str, Any]:
        """Train (the subclass's ``_run``); returns its last losses and metrics. The run folder's lock is released
        when it returns or raises."""
        try:
            return self._run()
        finally:
            self.release()

    def _run(self) -> dict[str, Any]:  # pragma: no cover (abstract)
        raise NotImplementedError
