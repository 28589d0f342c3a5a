#!/usr/bin/env bash
# Every GPU figure of the speed work in one call, for a lent GPU machine (the device tool gives a few minutes, once):
#
#   bash benchmarks/gpu_session.sh          # results into $OUT (the device tool's folder) or benchmarks/results/
#
# Needs only torch and numpy (the machine's own): the model benchmark (forward, the sync-free path, RANSAC alone,
# the forward as a CUDA graph, training throughput at batch 96) and the k-NN searches; the frame benchmark too
# where opencv and scipy import (the default model folder is committed). Each step has its own time limit, so one
# that hangs does not cost the others; about 6 minutes in all on an H100/H200 (an estimate: not yet run).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {
    local limit="$1" name="$2"
    shift 2
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]}"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
step 240 model python benchmarks/model.py --device cuda --out "$out/model_cuda.json"
step 90 knn python benchmarks/knn.py --out "$out/knn_cuda.json"
if python -c "import cv2, scipy" 2>/dev/null; then
    step 120 estimator python benchmarks/estimator.py --device cuda --frames 20 --out "$out/estimator_cuda.json"
else
    echo "== estimator: skipped (opencv-python-headless and scipy are not installed here)"
fi
