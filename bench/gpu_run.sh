#!/usr/bin/env bash
# The GPU session's one prepared command: correctness tests of the CUDA
# backend (ops, EfficientNet goldens, DCL trajectory) and the b4 benchmark
# against PyTorch (AMP bf16, channels_last) on the same GPU.
# Prepare on a build machine first: bench/gpu_check.sh --prepare
set -o pipefail
cd "$(dirname "$0")/.." || exit 2
LOG=${OUT:-build-gpu/logs}; mkdir -p "$LOG"
DCL_GPU_PREBUILT=1 DCL_TEST_ONLY_CUDA=1 bench/gpu_check.sh 2>&1 | tee "$LOG/check.txt"
tmp=$(mktemp -d) && tar xzf build-gpu/hostlibs.tgz -C "$tmp" && export LD_LIBRARY_PATH="$tmp/hostlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY=$(command -v python3)
for mode in train infer; do
  timeout 60 build-gpu/dcl bench --device cuda --arch efficientnet_b4 --size 299 --batch 32 --mode $mode --steps 6 --warmup 2 2>&1 | tail -2 | tee -a "$LOG/bench.txt"
  timeout 60 $PY bench/torch_bench.py --device cuda --amp bf16 --variant b4 --size 299 --batch 32 --mode $mode --steps 6 --warmup 2 --threads 8 2>&1 | tail -1 | tee -a "$LOG/bench.txt"
  timeout 60 $PY bench/torch_bench.py --device cuda --variant b4 --size 299 --batch 32 --mode $mode --steps 6 --warmup 2 --threads 8 2>&1 | tail -1 | sed 's/^/fp32 /' | tee -a "$LOG/bench.txt"
done
