#!/usr/bin/env bash
# Data-parallel training on one machine: `dcl train` as 2 MPI ranks x 1 thread
# against 1 process x 2 threads (and 1 x 1 for reference), same global batch,
# same data (a synthetic
# face cache), on the tiny test model (EfficientNet-b0 width 0.25 depth 0.34
# at 64x64) and on EfficientNet-b0 at 224x224.  Prints one line per run:
#   MODEL LAYOUT steps_s=X img_s=Y
# (LAYOUT: processes x threads; 2x1sync = with train.sync_bn).  The first line
# gives the load average: other work on the machine slows OpenMP's 2-thread
# barriers far more than single-threaded ranks.
# steps/s are measured between the logged steps after WARMUP steps (the loop's
# own clock, so process start-up and validation are excluded).
# Usage: bench/dist_bench.sh [BUILD]   (default build; needs BUILD/dcl built with
#        MPI and BUILD/tests/test_dist, which writes the synthetic cache)
# Env: BATCH (8), TINY_STEPS (40), B0_STEPS (8), WARMUP (3), SYNC_BN (0: per-rank BN; 1: also time sync BN).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
DCL=$build/dcl
MAKECACHE=$build/tests/test_dist
BATCH=${BATCH:-8}
TINY_STEPS=${TINY_STEPS:-40}
B0_STEPS=${B0_STEPS:-8}
WARMUP=${WARMUP:-3}
SYNC_BN=${SYNC_BN:-0}
for f in "$DCL" "$MAKECACHE"; do
  [ -x "$f" ] || { echo "dist_bench: $f not built (make BUILD=$build ...)" >&2; exit 2; }
done
command -v mpirun >/dev/null || { echo "dist_bench: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
work=$(mktemp -d /tmp/dcl_dist_bench_XXXXXX)
trap 'rm -rf "$work"' EXIT
"$MAKECACHE" --make-cache "$work/cache"

# steps/s between step WARMUP and the last logged step: the log's img_s is
# (steps since the epoch start) * batch / seconds since the epoch start
rate() {
  awk -v b="$BATCH" -v w="$WARMUP" '
    /"step"/ && !/epoch_end/ && !/dist_check/ {
      match($0, /"step": [0-9]+/); s = substr($0, RSTART + 8, RLENGTH - 8) + 0
      match($0, /"img_s": [0-9.e+-]+/); r = substr($0, RSTART + 9, RLENGTH - 9) + 0
      t = s * b / r
      if (s == w) { s0 = s; t0 = t }
      s1 = s; t1 = t
    }
    END { if (t1 > t0 && s1 > s0) printf "steps_s=%.3f img_s=%.2f", (s1 - s0) / (t1 - t0), (s1 - s0) * b / (t1 - t0); else print "steps_s=nan" }' "$1"
}

run() { # model layout steps size width depth
  local model=$1 layout=$2 steps=$3 size=$4 width=$5 depth=$6 out="$work/$1-$2"
  local cfg="$work/$1.yaml"
  cat >"$cfg" <<EOF
model: {arch: efficientnet_b0, width: $width, depth: $depth, size: $size, drop_rate: 0.0}
data: {cache: $work/cache, prefetch: 2, max_val_images: 8}
train: {epochs: 1, steps_per_epoch: $steps, batch: $BATCH, lr: 1.0e-3, device: cpu, log_every: 1, checkpoint_every: 0, seed: 1}
dcl: {queue_size: 256, warmup_epochs: 1}
EOF
  case $layout in
    1x1) OMP_NUM_THREADS=1 "$DCL" train --config "$cfg" --set train.out="$out" --set train.threads=1 \
           --set data.workers=1 >"$out.log" 2>&1 ;;
    1x2) OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$DCL" train --config "$cfg" --set train.out="$out" --set train.threads=2 \
           --set data.workers=2 >"$out.log" 2>&1 ;;
    2x1) OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core --mca mpi_yield_when_idle 1 "$DCL" train --config "$cfg" \
           --set train.out="$out" --set train.threads=1 --set data.workers=1 >"$out.log" 2>&1 ;;
    2x1sync) OMP_NUM_THREADS=1 mpirun -np 2 --bind-to core --mca mpi_yield_when_idle 1 "$DCL" train --config "$cfg" \
           --set train.out="$out" --set train.threads=1 --set data.workers=1 --set train.sync_bn=true >"$out.log" 2>&1 ;;
  esac || { echo "$model $layout failed:" >&2; tail -n 20 "$out.log" >&2; return 1; }
  echo "$model $layout $(rate "$out/log.jsonl")"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
layouts=(1x1 1x2 2x1)
[ "$SYNC_BN" = 1 ] && layouts+=(2x1sync)
for l in "${layouts[@]}"; do run tiny64 "$l" "$TINY_STEPS" 64 0.25 0.34; done
for l in "${layouts[@]}"; do run b0_224 "$l" "$B0_STEPS" 224 1.0 1.0; done
