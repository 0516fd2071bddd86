#!/usr/bin/env bash
# The GPU session's one prepared command: correctness tests of the CUDA
# backend (ops, fused entries, EfficientNet goldens, DCL trajectory) and the
# b4 benchmark against PyTorch (AMP bf16 and fp32, channels_last) on the same
# GPU, then dcl's per-layer profile of both modes.
# Prepare on a build machine first: bench/gpu_check.sh --prepare
set -o pipefail
cd "$(dirname "$0")/.." || exit 2
LOG=${OUT:-build-gpu/logs}; mkdir -p "$LOG"
DCL_GPU_PREBUILT=1 DCL_TEST_ONLY_CUDA=1 bench/gpu_check.sh 2>&1 | tee "$LOG/check.txt"
tmp=$(mktemp -d)
tar xJf build-gpu/hostlibs.txz -C "$tmp" 2>/dev/null ||
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' build-gpu/hostlibs.txz "$tmp"
export LD_LIBRARY_PATH="$tmp/hostlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY=$(command -v python3)
B="--size 299 --batch 32 --steps ${DCL_GPU_STEPS:-30} --warmup 5"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$LOG/bench.txt"
# dcl: both modes on one backend (shared conv plans), then the profiled steps
timeout 240 build-gpu/dcl bench --device cuda --arch efficientnet_b4 $B --mode infer,train --profile \
  2> "$LOG/profile.txt" | tee -a "$LOG/bench.txt"
# bf16 activation storage (SPEC,bf16): same command, for the memory and the speed of that mode
timeout 150 build-gpu/dcl bench --device cuda,bf16 --arch efficientnet_b4 $B --mode infer,train \
  2>> "$LOG/profile.txt" | sed 's/$/ (bf16 storage)/' | tee -a "$LOG/bench.txt"
for mode in infer train; do
  timeout 90 $PY bench/torch_bench.py --device cuda --amp bf16 --variant b4 $B --mode $mode --threads 8 2>&1 | tail -1 | sed 's/$/ (AMP bf16)/' | tee -a "$LOG/bench.txt"
  timeout 90 $PY bench/torch_bench.py --device cuda --variant b4 $B --mode $mode --threads 8 2>&1 | tail -1 | sed 's/$/ (fp32, TF32 convs)/' | tee -a "$LOG/bench.txt"
done
# the whole trainer (loader, views, both encoders, queues): 2 decoding threads against data.workers auto
timeout 150 build-gpu/train_bench cuda efficientnet_b4 299 32 ${DCL_GPU_TRAIN_STEPS:-60} 2,auto 2> "$LOG/train_bench.txt" |
  tee -a "$LOG/bench.txt"
cat "$LOG/profile.txt"
