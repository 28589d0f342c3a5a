#!/usr/bin/env bash
# Retrain the default models (segmenter and Reconstructor) within a time budget, evaluate them and write a model
# folder with its model card: `acr-pose train-default` (see its --help).
#
#   bash scripts/train_default.sh --minutes 9 --out models/default [--workers 16] [--reconstructor-config FILE] ...
#
# On a machine with this repository's .venv (bash scripts/setup.sh), that environment runs it. On a machine without
# network access whose Python already has torch and torchvision (e.g. a lent GPU machine), put the wheels of the
# other dependencies into wheels/ (pip download -d wheels trimesh embreex opencv-python-headless threadpoolctl
# safetensors pyyaml tqdm) before copying the repository there; they are installed from that folder, and the
# repository runs from its source tree. Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MPLBACKEND="${MPLBACKEND:-Agg}"

if [[ -x .venv/bin/acr-pose ]]; then
    exec .venv/bin/acr-pose train-default "$@"
fi
python="${PYTHON:-python3}"
if [[ -d wheels ]]; then
    "$python" -m pip install --quiet --no-index --find-links wheels trimesh embreex opencv-python-headless \
        threadpoolctl safetensors pyyaml tqdm
fi
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m acr_pose_core.cli.main train-default "$@"
