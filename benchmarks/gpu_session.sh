#!/usr/bin/env bash
# Every GPU figure of the speed work in one call, for a lent GPU machine (the device tool gives a few minutes, once).
#
# Prepare here (the GPU machine cannot render: it has no trimesh or embreex), then run there with the frames carried:
#
#   .venv/bin/acr-pose generate --out data/gpu_frames --split test --frames 21 --frames-per-scene 3 --seed 7
#   device run: command "bash benchmarks/gpu_session.sh", carry ["data/gpu_frames"]  (5.7 MB)
#
# Results go to $OUT (the device tool's folder: session.log and results.tar) or benchmarks/results/. Needs only
# what that machine has (torch, torchvision, numpy, opencv, scipy, safetensors; the default model folder is
# committed): the model benchmark (forward, the sync-free path, RANSAC alone, host reads, the forward as a CUDA
# graph, operator counts, training throughput at batch 96), the k-NN searches, and on the carried frames the
# per-frame breakdown eager and from CUDA graphs (float32, bf16; the graphs' poses against the eager ones), bf16's
# accuracy against float32, the training loader's rate with 12 workers in both orders, and the real trainer's
# samples a second end to end. Each step has its own time limit, so one that hangs does not cost the others; about
# 8 minutes in all on an H100/H200 (an estimate: not yet run).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
frames="data/gpu_frames/test"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The device tool brings back at most 8 files: there, the JSON files are bundled into $OUT/results.tar after every
# step (so a step that times out keeps the others'), beside $OUT/session.log. Elsewhere they go to benchmarks/results.
if [[ -n "${OUT:-}" ]]; then out="$(mktemp -d)"; log="$OUT/session.log"; else out=benchmarks/results; log="$out/session.log"; fi
mkdir -p "$out"
step() {
    local limit="$1" name="$2"
    shift 2
    echo "== $name (limit ${limit} s)" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$log"
    if [[ -n "${OUT:-}" ]]; then tar -cf "$OUT/results.tar" -C "$out" .; fi
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
step 180 model python3 benchmarks/model.py --device cuda --out "$out/model_cuda.json"
step 40 knn python3 benchmarks/knn.py --out "$out/knn_cuda.json"
if [[ -d "$frames" ]]; then
    step 50 estimator_eager python3 benchmarks/estimator.py --device cuda --data "$frames" --frames 20 \
        --out "$out/estimator_cuda_eager.json"
    # padded to pipeline.OBJECT_BUCKETS and replayed from CUDA graphs; compared with the eager poses on the same frames
    for precision in float32 bfloat16; do
        step 50 "estimator_graphs_$precision" python3 benchmarks/estimator.py --device cuda --data "$frames" \
            --frames 20 --cuda-graphs --precision "$precision" --out "$out/estimator_cuda_graphs_$precision.json"
    done
    step 70 precision python3 benchmarks/precision.py --device cuda --data "$frames" --out "$out/precision_cuda.json"
    step 60 data python3 benchmarks/data.py --data "$frames" --items 512 --workers 12 --out "$out/data_gpu_machine.json"
    # the real trainer end to end (loader with 14 workers, grouped by frame, bf16 autocast, batch 96), 30 steps
    step 80 train python3 benchmarks/train.py --data "$frames" --steps 30 --warmup 5 --out "$out/train_cuda.json"
else
    echo "== estimator, precision, data, train: skipped ($frames was not carried; see the top of this script)"
fi
