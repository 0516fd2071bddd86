#!/usr/bin/env bash
# The README's demo in a reduced form (few identities, one epoch): it must
# finish, write its HTML report, and its table must hold numbers for both runs.
#   tests/test_demo.sh [BUILD_DIR]
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 2
out=$(mktemp -d /tmp/dcl_demo_XXXXXX) || exit 2
trap 'rm -rf "$out"' EXIT
if ! DCL="$build/dcl" DEMO_OUT="$out" DEMO_IDENTITIES=8 DEMO_FRAMES=8 DEMO_EXTRACT_FRAMES=4 DEMO_EPOCHS=1 \
     bash tools/demo.sh > "$out/log" 2>&1; then
  tail -n 30 "$out/log"; echo "test_demo: FAIL: the demo did not finish"; exit 1
fi
[ -s "$out/report.html" ] || { echo "test_demo: FAIL: no report"; exit 1; }
grep -q 'src="data:image/png;base64,' "$out/report.html" || { echo "test_demo: FAIL: report without figures"; exit 1; }
/usr/bin/python3 - "$out/protocol/table.json" <<'PY' || exit 1
import json, math, sys
t = json.load(open(sys.argv[1]))
rows = [r for r in t["rows"] if r.get("source") == "run"]
assert len(rows) == 2, f"expected the demo's two runs in the table, got {len(rows)}"
for r in rows:
    vals = [c["value"] for c in r["cells"]]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 100 for v in vals), f"{r['method']}: {vals}"
    print("test_demo:", r["method"], ["%.2f" % v for v in vals])
PY
