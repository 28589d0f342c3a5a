"""Shared test fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions on a shared CPU: intra-op threads cost more than they save (10x in our runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str):
    """``text`` parsed as JSON by the standard: the bare ``NaN``/``Infinity`` that Python's json writes are refused."""
    return json.loads(text, parse_constant=_refuse_constant)


def strict_json_files(folder):
    """Every ``*.json`` and ``*.jsonl`` file under ``folder``, parsed strictly: ``{path: document or [lines]}``."""
    out = {}
    for path in sorted(Path(folder).rglob("*.json")):
        out[path] = strict_json(path.read_text(encoding="utf-8"))
    for path in sorted(Path(folder).rglob("*.jsonl")):
        out[path] = [strict_json(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def assert_same(a, b, where: str = "") -> None:
    """Equal values of equal types, tensors bit for bit (so a tuple that came back as a list fails)."""
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def assert_states_equal(a, b) -> None:
    """Two :class:`~acr_pose_core.training.checkpoint.TrainingState` s hold the same counters, module, optimiser and
    scheduler states and RNG states, tensors bit for bit."""
    assert (a.step, a.epoch, a.step_in_epoch) == (b.step, b.epoch, b.step_in_epoch)
    for kind in ("modules", "optimisers", "schedulers"):
        objects_a, objects_b = getattr(a, kind), getattr(b, kind)
        assert objects_a.keys() == objects_b.keys()
        for name in objects_a:
            assert_same(objects_a[name].state_dict(), objects_b[name].state_dict(), f"{kind}[{name!r}]")
    assert_same(a.rng, b.rng, "rng")


def require_ros() -> None:
    """Skip unless rclpy and the built vision_msgs/tf2_msgs import; with ``ACR_POSE_REQUIRE_ROS=1`` (set by
    scripts/test.sh, which installs them) a missing piece fails instead, so CI cannot skip the ROS tests silently."""
    import os

    try:
        import rclpy  # noqa: F401
        import tf2_msgs.msg  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError as error:
        if os.environ.get("ACR_POSE_REQUIRE_ROS") == "1":
            raise
        pytest.skip(f"no ROS 2 client here ({error}): run bash scripts/setup_ros.sh")
