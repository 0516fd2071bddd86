#!/usr/bin/env bash
# Opens a `dcl report` page in headless Chromium and checks that every image
# loaded (complete, naturalWidth > 0) and that the rendered page is not blank.
#
#   tests/test_report_browser.sh [BUILD_DIR] [REPORT.html]
#
# Without REPORT.html, BUILD_DIR/tests/test_report makes one (a short training
# run on a synthetic cache, then `dcl report` with every figure).  Exits 0 with
# a message when Chromium is not installed; non-zero when a check fails.
# DCL_BROWSER_KEEP=DIR keeps the page and the screenshot there.
set -u
build=${1:-build}
report=${2:-}
cd "$(dirname "$0")/.." || exit 2

browser=""
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "test_report_browser: SKIP (no chromium on PATH; Debian package 'chromium')"
  exit 0
fi

work=$(mktemp -d /tmp/dcl_browser_XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT
if [ -z "$report" ]; then
  if [ ! -x "$build/tests/test_report" ]; then
    echo "test_report_browser: FAIL: $build/tests/test_report is not built (make BUILD=$build $build/tests/test_report)"
    exit 1
  fi
  report=$work/report.html
  if ! DCL_TEST_REPORT_OUT=$report "$build/tests/test_report" >"$work/test.log" 2>&1; then
    tail -n 20 "$work/test.log"
    echo "test_report_browser: FAIL: test_report failed while making the page"
    exit 1
  fi
fi
if [ ! -s "$report" ]; then
  echo "test_report_browser: FAIL: no report at $report"
  exit 1
fi

# A copy of the page with a small script that, once everything has loaded,
# writes "IMGCHECK loaded/total" into the DOM; --dump-dom prints the DOM.
probe=$work/probe.html
sed 's#</body></html>#<script>window.addEventListener("load",function(){var im=document.images,ok=0;for(var i=0;i<im.length;i++)if(im[i].complete\&\&im[i].naturalWidth>0)ok++;var p=document.createElement("pre");p.id="imgcheck";p.textContent="IMGCHECK "+ok+"/"+im.length;document.body.appendChild(p);});</script></body></html>#' \
  "$report" >"$probe"
if ! grep -q 'IMGCHECK' "$probe"; then
  echo "test_report_browser: FAIL: $report does not end with </body></html>"
  exit 1
fi

flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --hide-scrollbars
       --user-data-dir="$work/profile" --allow-file-access-from-files)
timeout 120 "$browser" "${flags[@]}" --virtual-time-budget=10000 --dump-dom "file://$probe" \
  >"$work/dom.html" 2>"$work/chromium.log"
line=$(grep -o 'IMGCHECK [0-9]*/[0-9]*' "$work/dom.html" | head -n 1)
if [ -z "$line" ]; then
  tail -n 20 "$work/chromium.log"
  echo "test_report_browser: FAIL: the page did not finish loading in $browser"
  exit 1
fi
loaded=${line#IMGCHECK }
ok=${loaded%/*}
total=${loaded#*/}
echo "test_report_browser: $ok of $total images loaded in $browser"
status=0
if [ "$total" -lt 1 ] || [ "$ok" -ne "$total" ]; then
  echo "test_report_browser: FAIL: $((total - ok)) images did not load"
  status=1
fi

# The rendered page must not be blank: a white 1280x6000 screenshot compresses
# to a few kB, one showing the report's figures to hundreds.
shot=$work/page.png
timeout 120 "$browser" "${flags[@]}" --window-size=1280,6000 --screenshot="$shot" "file://$report" \
  >>"$work/chromium.log" 2>&1
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
echo "test_report_browser: screenshot of $size bytes"
if [ "$size" -lt 100000 ]; then
  echo "test_report_browser: FAIL: the rendered page looks blank (screenshot $size bytes)"
  status=1
fi
if [ -n "${DCL_BROWSER_KEEP:-}" ]; then
  mkdir -p "$DCL_BROWSER_KEEP" && cp "$report" "$shot" "$DCL_BROWSER_KEEP"/ 2>/dev/null
  echo "test_report_browser: kept the page and screenshot in $DCL_BROWSER_KEEP"
fi
[ "$status" -eq 0 ] && echo "test_report_browser: ok"
exit "$status"
