"""The node's diagnostics (acr_pose_ros.diagnostics): rates, latency percentiles and stage medians over a window,
worked by hand; the level rules; the message as rclpy builds it."""

from __future__ import annotations

import pytest
from conftest import require_ros

from acr_pose_ros.diagnostics import ERROR, OK, WARN, FrameStatistics, diagnostic_array, diagnostic_level


def test_rates_latency_and_stages_over_the_window():
    stats = FrameStatistics(window=10.0, start=0.0)
    for k in range(20):  # sets at 0.5, 1.0, ..., 10.0 s; every second one posed with latency 100 + 10 k ms
        t = 0.5 * (k + 1)
        stats.received(t)
        stats.handled(t, posed=k % 2 == 1, latency_s=0.1 + 0.01 * k, stages_ms={"model": float(k), "inputs": 1.0})
    s = stats.summary(10.0)
    assert s["input_rate_hz"] == pytest.approx(2.0) and s["posed_rate_hz"] == pytest.approx(1.0)
    # posed k = 1, 3, ..., 19: latencies 110, 130, ..., 290 ms; median 200, p90 (numpy's linear) 272
    assert s["latency_median_ms"] == pytest.approx(200.0) and s["latency_p90_ms"] == pytest.approx(272.0)
    assert s["stages_ms"] == {"model": pytest.approx(10.0), "inputs": pytest.approx(1.0)}
    assert s["failures"] == 0 and s["last_input_s"] == pytest.approx(0.0)
    later = stats.summary(15.0)  # the first 5 s have left the window: 10 sets, 5 posed
    assert later["input_rate_hz"] == pytest.approx(1.0) and later["posed_rate_hz"] == pytest.approx(0.5)
    assert later["last_input_s"] == pytest.approx(5.0)
    young = FrameStatistics(window=10.0, start=0.0)  # 2 s after the start: rates over 2 s, not 10
    young.received(1.0)
    young.handled(1.0, posed=True, latency_s=0.05)
    assert young.summary(2.0)["posed_rate_hz"] == pytest.approx(0.5)
    empty = FrameStatistics(start=0.0).summary(30.0)
    assert empty["latency_median_ms"] is None and empty["last_input_s"] is None and empty["input_rate_hz"] == 0
    with pytest.raises(ValueError, match="window"):
        FrameStatistics(window=0)


def test_levels():
    stats = FrameStatistics(window=10.0, start=0.0)
    assert diagnostic_level(stats.summary(20.0), 1.0)[0] == WARN
    assert "no input" in diagnostic_level(stats.summary(20.0), 1.0)[1]
    assert diagnostic_level(stats.summary(20.0), 0.0)[0] == OK  # min_posed_rate 0: never a warning
    for t in range(11, 21):  # 10 sets within the window (10, 20], 2 posed
        stats.received(t)
        stats.handled(t, posed=t % 5 == 0)
    level, message = diagnostic_level(stats.summary(20.0), 1.0)
    assert level == WARN and "0.20 Hz of 1.00 Hz" in message
    assert diagnostic_level(stats.summary(20.0), 0.1)[0] == OK
    stats.handled(20.0, posed=False, failed=True)
    assert diagnostic_level(stats.summary(20.0), 0.1) == (ERROR, "1 frames failed with an error in the window (see "
                                                                 "the node's log)")  # fmt: skip
    assert diagnostic_level(stats.summary(31.0), 0.0)[0] == OK  # the failure has left the window
    assert diagnostic_level(stats.summary(20.0), 1.0, active=False) == (
        OK, "inactive (lifecycle): not subscribed to the camera"
    )  # fmt: skip


def test_the_message_as_rclpy_builds_it():
    require_ros()
    from builtin_interfaces.msg import Time

    from acr_pose_ros.messages import ros_types

    stats = FrameStatistics(window=10.0, start=0.0)
    stats.received(1.0)
    stats.handled(1.0, posed=True, latency_s=0.25, stages_ms={"segmenter": 120.0})
    msg = diagnostic_array(ros_types, Time(sec=5), "acr_pose", "cpu", stats.summary(2.0), {"posed": 1}, 1.0)
    [status] = msg.status
    assert msg.header.stamp.sec == 5 and status.name == "acr_pose: pose estimation" and status.hardware_id == "cpu"
    assert status.level == bytes([WARN]) and "0.50 Hz of 0.50 Hz" in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values["latency median (ms)"] == "250.000" and values["segmenter median (ms)"] == "120.000"
    assert values["posed"] == "1" and values["device"] == "cpu" and values["seconds since input"] == "1.000"
