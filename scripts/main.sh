#!/usr/bin/env bash
# Set up .venv/ and run the main job.
#
#   bash scripts/main.sh [EVALUATE_ARGS...]
#
# Until the demo exists, the main job evaluates a generated example prediction set with `acr-pose evaluate --example`
# and writes runs/example/metrics.json, table.txt and ap_curves.png. Extra arguments go to `acr-pose evaluate`.
# Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MPLBACKEND="${MPLBACKEND:-Agg}"

bash scripts/setup.sh

shown_args=""
(($#)) && shown_args="$(printf ' %q' "$@")"
echo "[main] acr-pose evaluate --example --out runs/example$shown_args"
exec .venv/bin/acr-pose evaluate --example --out runs/example "$@"
