"""The node's health for ``/diagnostics`` (diagnostic_msgs/DiagnosticArray), as plain functions.

:class:`FrameStatistics` keeps the last ``window`` seconds of synchronised sets (arrival, and for the handled ones
latency and stage times); :func:`diagnostic_array` builds the message once a second, following diagnostic_updater's
conventions (one ``DiagnosticStatus`` named ``<node>: pose estimation``, ``hardware_id`` the device, values as
strings) without depending on it. Figures, over the window:

- ``input rate (Hz)``: synchronised sets received / window; ``posed rate (Hz)``: sets posed and published / window
  (both over the time since the node started while that is shorter than the window);
- ``latency median (ms)``, ``latency p90 (ms)``: publish time minus the input's stamp (ROS clock), which includes
  the camera's and the middleware's delays;
- ``<stage> median (ms)``: ``conversion`` (messages to arrays), ``segmenter``, ``inputs``, ``model``, ``poses``
  (:attr:`acr_pose_core.pipeline.FrameEstimate.timings_ms`) and ``messages`` (building and publishing the outputs);
- the node's counters (received, posed, skipped, dropped stale, errors) since the start.

Level: ERROR when a frame failed with an exception within the window; WARN when the posed rate is under
``min_posed_rate`` (the message says whether input is missing, or arrives and is not posed); else OK (also while a
managed node is inactive, saying so).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from acr_pose_ros.messages import MessageTypes

__all__ = ["OK", "WARN", "ERROR", "FrameStatistics", "diagnostic_array", "diagnostic_level"]

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


@dataclass(frozen=True)
class _Handled:
    time: float  # seconds, monotonic
    posed: bool
    failed: bool
    latency_s: float | None
    stages_ms: Mapping[str, float]


class FrameStatistics:
    """The last ``window`` seconds of the node's sets (times in seconds of one monotonic clock). Thread-safe: the
    node's executor records arrivals and reads summaries while its worker records handled sets."""

    def __init__(self, window: float = 10.0, start: float = 0.0) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, got {window}")
        self.window, self.start = window, start
        self._arrivals: deque[float] = deque()
        self._handled: deque[_Handled] = deque()
        self._lock = threading.Lock()

    def received(self, now: float) -> None:
        with self._lock:
            self._arrivals.append(now)

    def handled(
        self,
        now: float,
        posed: bool,
        latency_s: float | None = None,
        stages_ms: Mapping[str, float] | None = None,
        failed: bool = False,
    ) -> None:
        with self._lock:
            self._handled.append(_Handled(now, posed, failed, latency_s, dict(stages_ms or {})))

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] <= now - self.window:
            self._arrivals.popleft()
        while self._handled and self._handled[0].time <= now - self.window:
            self._handled.popleft()

    def summary(self, now: float) -> dict[str, Any]:
        """Rates (Hz), latency (ms; None without posed sets), stage medians (ms) and failures over the window."""
        with self._lock:
            self._trim(now)
            arrivals, handled = list(self._arrivals), list(self._handled)
        span = max(min(self.window, now - self.start), 1e-9)
        posed = [h for h in handled if h.posed]
        latencies = [1e3 * h.latency_s for h in posed if h.latency_s is not None]
        stages: dict[str, list[float]] = {}
        for h in posed:
            for name, ms in h.stages_ms.items():
                stages.setdefault(name, []).append(ms)
        return {
            "input_rate_hz": len(arrivals) / span,
            "posed_rate_hz": len(posed) / span,
            "latency_median_ms": float(np.median(latencies)) if latencies else None,
            "latency_p90_ms": float(np.percentile(latencies, 90)) if latencies else None,
            "stages_ms": {name: float(np.median(ms)) for name, ms in stages.items()},
            "failures": sum(h.failed for h in handled),
            "last_input_s": now - arrivals[-1] if arrivals else None,
        }


def diagnostic_level(summary: Mapping[str, Any], min_posed_rate: float, active: bool = True) -> tuple[int, str]:
    """``(level, message)`` of a :meth:`FrameStatistics.summary` (module docstring); an inactive managed node is
    OK and says so."""
    if not active:
        return OK, "inactive (lifecycle): not subscribed to the camera"
    if summary["failures"]:
        return ERROR, f"{summary['failures']} frames failed with an error in the window (see the node's log)"
    if summary["posed_rate_hz"] < min_posed_rate:
        if summary["input_rate_hz"] == 0:
            return WARN, "no input: no synchronised colour, depth and camera info sets arrive"
        return WARN, (
            f"posing {summary['posed_rate_hz']:.2f} Hz of {summary['input_rate_hz']:.2f} Hz input, under "
            f"min_posed_rate {min_posed_rate:g} Hz"
        )
    return OK, f"posing {summary['posed_rate_hz']:.2f} Hz"


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def diagnostic_array(
    types: MessageTypes,
    stamp: Any,
    node_name: str,
    device: str,
    summary: Mapping[str, Any],
    counts: Mapping[str, int],
    min_posed_rate: float,
    active: bool = True,
) -> Any:
    """diagnostic_msgs/DiagnosticArray with the node's one status (module docstring); ``stamp`` a
    builtin_interfaces/Time."""
    level, message = diagnostic_level(summary, min_posed_rate, active)
    values = {
        "input rate (Hz)": summary["input_rate_hz"],
        "posed rate (Hz)": summary["posed_rate_hz"],
        "latency median (ms)": summary["latency_median_ms"],
        "latency p90 (ms)": summary["latency_p90_ms"],
        **{f"{name} median (ms)": ms for name, ms in summary["stages_ms"].items()},
        "seconds since input": summary["last_input_s"],
        "device": device,
        **{name.replace("_", " "): int(n) for name, n in sorted(counts.items())},
    }
    KeyValue = types("diagnostic_msgs/msg/KeyValue")
    status = types("diagnostic_msgs/msg/DiagnosticStatus")(
        level=bytes([level]),
        name=f"{node_name}: pose estimation",
        message=message,
        hardware_id=device,
        values=[KeyValue(key=key, value=_text(value)) for key, value in values.items()],
    )
    header = types("std_msgs/msg/Header")(stamp=stamp)
    return types("diagnostic_msgs/msg/DiagnosticArray")(header=header, status=[status])
