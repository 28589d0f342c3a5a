#!/usr/bin/env bash
# Set up .venv/ and run the main job: the demo.
#
#   bash scripts/main.sh [DEMO_ARGS...]
#
# `acr-pose demo` renders a scene of objects never seen in training, estimates their poses and sizes with the shipped
# default models (segmenter and Reconstructor), prints each with its error against the truth, and writes
# runs/demo/demo.png and runs/demo/demo.json. Extra arguments go to `acr-pose demo` (e.g. --seed 3, --masks gt).
# Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MPLBACKEND="${MPLBACKEND:-Agg}"

bash scripts/setup.sh

shown_args=""
(($#)) && shown_args="$(printf ' %q' "$@")"
echo "[main] acr-pose demo --out runs/demo$shown_args"
exec .venv/bin/acr-pose demo --out runs/demo "$@"
