#!/usr/bin/env bash
# Set up .venv/ with the test extras, then lint (ruff) and run the whole test suite (pytest).
#
#   bash scripts/test.sh [PYTEST_ARGS...]     e.g. bash scripts/test.sh -k cli -x
#
# Works from any directory; exits non-zero when setup, lint or any test fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MPLBACKEND=Agg

bash scripts/setup.sh --test

echo "[test] ruff check ."
.venv/bin/ruff check .
echo "[test] ruff format --check ."
.venv/bin/ruff format --check .
shown_args=""
(($#)) && shown_args="$(printf ' %q' "$@")"
echo "[test] python -m pytest$shown_args"
exec .venv/bin/python -m pytest "$@"
