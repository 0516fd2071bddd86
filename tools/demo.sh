#!/usr/bin/env bash
# The built-in demo: synthesise a small FaceForensics++-layout data set from
# packaged face photos, extract faces, train DCL and a cross-entropy baseline
# on one manipulation family, evaluate on every family, write the HTML report.
# Run through `make demo` (which installs dependencies and builds first).
# Env: DEMO_OUT (demo-out), DEMO_IDENTITIES (24), DEMO_FRAMES (16),
#      DEMO_EXTRACT_FRAMES (8), DEMO_EPOCHS (10), DCL (build/dcl).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
DCL=${DCL:-build/dcl}
IDS=${DEMO_IDENTITIES:-24}
FRAMES=${DEMO_FRAMES:-16}
XFRAMES=${DEMO_EXTRACT_FRAMES:-8}
EPOCHS=${DEMO_EPOCHS:-10}
start=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - start )); }

step "1/5 synthesising $IDS identities x 5 manipulation families"
"$DCL" synth --out "$OUT/data" --seed 1 --identities "$IDS" --frames "$FRAMES" --qualities c23 --quiet

step "2/5 extracting faces"
rc=0
"$DCL" extract --dataset ffpp --root "$OUT/data" --quality c23 --frames "$XFRAMES" --size 96 \
  --out "$OUT/cache" --workers 2 || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc   # 3: some items skipped (listed in the report)

step "3/5 training DCL and the cross-entropy baseline on Deepfakes-like fakes; testing on every family"
"$DCL" eval --protocol configs/protocols/demo.yaml --set "caches.synth=$OUT/cache" --set "out=$OUT/protocol" \
  --epochs "$EPOCHS"

step "4/5 scoring the test split"
"$DCL" eval --checkpoint "$OUT/protocol/runs/dcl_df/best.safetensors" --data "$OUT/cache" --split test \
  --out "$OUT/protocol/runs/dcl_df" > /dev/null

step "5/5 writing the report"
"$DCL" report "$OUT/protocol/runs/dcl_df" --data "$OUT/cache" --split test \
  --baseline "$OUT/protocol/runs/ce_df" --out "$OUT/report.html" --max-images 400 > /dev/null

step "done"
cat "$OUT/protocol/table.md"
echo
echo "report: $OUT/report.html"
