#!/usr/bin/env bash
# Deployment benchmark on the CPU: EfficientNet-b4 at 299x299 with random
# weights (dcl export --init-random), beside PyTorch (torchvision
# efficientnet_b4, channels_last) on the same machine in the same run.
#
#   1. single-image latency: `dcl detect` on a face photo (PNG decode, MTCNN,
#      crop, classifier), median over REPS images after one warm-up, against
#      PyTorch's classifier alone on one 299x299 crop (PyTorch has no face
#      detector here, so its figure is a lower bound of a full pipeline);
#   2. classifier alone, batch 1: `dcl bench --mode infer` and
#      bench/torch_bench.py (the same harness as bench/run);
#   3. video frames/s: `dcl detect --frames N` on an N-frame 640x480 clip
#      (decode, MTCNN, crop, classifier per frame), against PyTorch decoding
#      the same clip with PyAV and classifying each frame's 299x299 resize;
#   4. with LOAD_SECONDS > 0: `dcl serve` (2 jobs of 1 thread, 4 frames per
#      video) under bench/serve_load.c for that long (mixed valid and invalid
#      uploads, after a 5 s warm-up).
#
# Usage: bench/detect_bench.sh      Env: DCL (build/dcl), THREADS (2), REPS (10),
#        FRAMES (48), LOAD_SECONDS (0), CONNECTIONS (8), OUT (build/detect_bench)
# The photo is python3-skimage's astronaut.png; the clip is made from it with
# PyAV (python3-av).  Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
DCL=${DCL:-build/dcl}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-2}
REPS=${REPS:-10}
FRAMES=${FRAMES:-48}
LOAD_SECONDS=${LOAD_SECONDS:-0}
CONNECTIONS=${CONNECTIONS:-8}
OUT=${OUT:-build/detect_bench}
PHOTO=/usr/lib/python3/dist-packages/skimage/data/astronaut.png
[ -x "$DCL" ] || make -j2 "$DCL" >/dev/null
[ -f "$PHOTO" ] || { echo "detect_bench: $PHOTO missing (apt-get install python3-skimage)" >&2; exit 2; }
mkdir -p "$OUT"
MODEL=$OUT/b4_random.safetensors
[ -f "$MODEL" ] || "$DCL" export --init-random tf_efficientnet_b4 --size 299 --out "$MODEL" >/dev/null
CLIP=$OUT/clip_${FRAMES}.mp4
if [ ! -f "$CLIP" ]; then
  "$PY" - "$PHOTO" "$CLIP" "$FRAMES" <<'EOF'
import sys, av, numpy as np
from PIL import Image
photo, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
img = np.asarray(Image.open(photo).convert("RGB").resize((400, 400)))
c = av.open(out, "w")
s = c.add_stream("libx264", rate=25)
s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
for k in range(n):
    f = np.full((480, 640, 3), 90, np.uint8)
    x, y = 20 + (k * 4) % 200, 40
    f[y:y + 400, x:x + 400] = img
    for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
for p in s.encode():
    c.mux(p)
c.close()
EOF
fi
export OMP_NUM_THREADS=$THREADS OMP_PROC_BIND=close OMP_PLACES=cores
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $THREADS threads"

# 1 + 3: dcl detect (image REPS+1 times, then the clip), warm in one process
imgs=()
for ((i = 0; i <= REPS; i++)); do imgs+=("$PHOTO"); done
"$DCL" detect --model "$MODEL" --threads "$THREADS" --frames "$FRAMES" --summary "${imgs[@]}" "$CLIP" >"$OUT/detect.jsonl"
"$PY" - "$OUT/detect.jsonl" "$REPS" <<'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
imgs = [r["seconds"] for r in rows if r.get("type") == "image"][1:]
v = [r for r in rows if r.get("type") == "video"][0]
print("dcl_detect_image latency_ms_median=%.1f latency_ms_min=%.1f faces=%d reps=%d" % (
    1e3 * statistics.median(imgs), 1e3 * min(imgs), len(rows[0]["faces"]), len(imgs)))
print("dcl_detect_video frames=%d seconds=%.2f frames_per_s=%.2f faces=%d" % (
    v["frames_sampled"], v["seconds"], v["frames_sampled"] / v["seconds"], v["faces_total"]))
EOF

# 2: the classifier alone, batch 1
d=$("$DCL" bench --arch efficientnet_b4 --mode infer --size 299 --batch 1 --steps "$REPS" --warmup 2 --threads "$THREADS")
p=$("$PY" bench/torch_bench.py --variant b4 --mode infer --size 299 --batch 1 --steps "$REPS" --warmup 2 --threads "$THREADS")
get() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
di=$(get dcl_img_s "$d"); pi=$(get pytorch_img_s "$p")
echo "classifier_b4_299_bs1 dcl_ms=$(echo "scale=1; 1000 / $di" | bc) pytorch_ms=$(echo "scale=1; 1000 / $pi" | bc) dcl_img_s=$di pytorch_img_s=$pi"

# 3: PyTorch on the clip (PyAV decode + resize + classifier per frame)
"$PY" - "$CLIP" "$THREADS" <<'EOF'
import sys, time, av, numpy as np, torch, torchvision
clip, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
m = torchvision.models.efficientnet_b4(weights=None).eval().to(memory_format=torch.channels_last)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
with torch.inference_mode():
    m(torch.zeros(1, 3, 299, 299).to(memory_format=torch.channels_last))
    t0, n = time.perf_counter(), 0
    for f in av.open(clip).decode(video=0):
        x = torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        m(((x - mean) / std).contiguous(memory_format=torch.channels_last))
        n += 1
    dt = time.perf_counter() - t0
print("pytorch_video frames=%d seconds=%.2f frames_per_s=%.2f (decode + classifier, no face detector)" % (n, dt, n / dt))
EOF

# 4: the service under load
if [ "$LOAD_SECONDS" != 0 ]; then
  gcc -O2 -pthread bench/serve_load.c -o "$OUT/serve_load"
  port=$((20000 + RANDOM % 20000))
  OMP_NUM_THREADS=1 "$DCL" serve --model "$MODEL" --port "$port" --token bench --max-jobs 2 --threads 2 --quiet \
    --frames 4 --timeout 60 2>"$OUT/serve.log" &
  spid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$OUT/serve_load" --port "$port" --token bench --image "$PHOTO" --video "$OUT/clip_${FRAMES}.mp4" \
    --connections "$CONNECTIONS" --seconds "$LOAD_SECONDS" || true
  kill -TERM "$spid"
  wait "$spid" || true
fi
