"""Plain-Python stand-ins for what the node would otherwise take from ROS libraries: an approximate-time
synchroniser (message_filters has no wheel, so the tests run this one) and the newest-wins hand-off between the
executor and the inference thread.

Stamps are integer nanoseconds (:func:`stamp_ns`), so comparisons are exact.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["ApproximateSync", "LatestSlot", "stamp_ns"]

T = TypeVar("T")


def stamp_ns(msg: Any) -> int:
    """``msg.header.stamp`` (builtin_interfaces/Time: ``sec``, ``nanosec``) in integer nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class ApproximateSync:
    """Groups one message of each of ``num_inputs`` streams whose stamps lie within ``slop`` seconds.

    The semantics of message_filters' ``ApproximateTimeSynchronizer`` (Python version): each input keeps its newest
    ``queue_size`` messages by stamp; when a message arrives, the sets made of it and, from every other queue, a
    message within ``slop`` of it are tried nearest first, and the first set whose stamps all lie within ``slop`` of
    one another goes to ``callback(*messages)`` in input order. Unlike message_filters, the messages of a
    delivered set and every older one are then removed from all queues: an older set can never be the newest, and
    the node only wants the newest. Thread-safe; the callback runs in the caller's thread, outside the lock.
    """

    def __init__(self, num_inputs: int, queue_size: int, slop: float, callback: Callable[..., Any]) -> None:
        if num_inputs < 1 or queue_size < 1 or not slop > 0:
            raise ValueError(f"need num_inputs >= 1, queue_size >= 1, slop > 0; got {num_inputs}, {queue_size}, {slop}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop * 1e9))
        self.callback = callback
        self._queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._lock = threading.Lock()

    def add(self, index: int, msg: Any) -> None:
        """Offer ``msg`` of input ``index``; may call the callback once."""
        stamp = stamp_ns(msg)
        with self._lock:
            chosen = self._add_locked(index, stamp, msg)
        if chosen is not None:
            self.callback(*chosen)

    def _add_locked(self, index: int, stamp: int, msg: Any) -> Sequence[Any] | None:
        queue = self._queues[index]
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        candidates = []  # per other input: its stamps within slop of this one, nearest first
        for j, other in enumerate(self._queues):
            if j == index:
                continue
            near = sorted((s for s in other if abs(s - stamp) <= self.slop_ns), key=lambda s: (abs(s - stamp), -s))
            if not near:
                return None
            candidates.append(near)
        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) <= self.slop_ns:
                messages = [self._queues[j][s] for j, s in enumerate(stamps)]
                for j, s in enumerate(stamps):
                    for old in [t for t in self._queues[j] if t <= s]:
                        del self._queues[j][old]
                return messages
        return None


class LatestSlot(Generic[T]):
    """A one-item mailbox where a newer item replaces an unread one (counted in :attr:`dropped`).

    The executor's thread ``put``s synchronised frames; the inference thread ``take``s the newest, so when
    inference is slower than the camera, stale frames are dropped instead of queueing and latency stays bounded.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced an item nobody had taken (a dropped frame)."""
        with self._cond:
            replaced = self._full
            self.dropped += int(replaced)
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds; None on timeout or after :meth:`close`."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake and release every waiting :meth:`take`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
