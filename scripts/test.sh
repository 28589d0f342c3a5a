#!/usr/bin/env bash
# Set up .venv/ with the test extras and the ROS 2 client (scripts/setup_ros.sh), then lint (ruff) and run the whole
# test suite (pytest), the node's tests over a real middleware included.
#
#   bash scripts/test.sh [PYTEST_ARGS...]     e.g. bash scripts/test.sh -k cli -x
#
# Works from any directory; exits non-zero when setup, lint or any test fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MPLBACKEND=Agg

bash scripts/setup.sh --test
bash scripts/setup_ros.sh
# The ROS tests fail rather than skip when rclpy or the built interfaces are missing (test/conftest.py).
export ACR_POSE_REQUIRE_ROS=1

echo "[test] ruff check ."
.venv/bin/ruff check .
echo "[test] ruff format --check ."
.venv/bin/ruff format --check .
shown_args=""
(($#)) && shown_args="$(printf ' %q' "$@")"
echo "[test] python -m pytest$shown_args"
exec .venv/bin/python -m pytest "$@"
