#!/usr/bin/env bash
# Runs every test binary in BUILD/tests; prints one line per test and a final
# "N passed, M failed" line; exits non-zero when any failed.
# DCL_TEST_FILTER: space-separated list of test names to run (default all).
build=${1:-build}
cd "$(dirname "$0")/.." || exit 2
pass=0; fail=0; failed=()
# compiled tests (BUILD/tests/test_*), then script tests (tests/test_*.sh BUILD)
for t in "$build"/tests/test_* tests/test_*.sh; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue;; esac
  name=$(basename "$t")
  if [ -n "${DCL_TEST_FILTER:-}" ] && [[ " $DCL_TEST_FILTER " != *" $name "* ]]; then continue; fi
  args=()
  case "$t" in *.sh) args=("$build");; esac
  start=$(date +%s.%N)
  if out=$("$t" "${args[@]}" 2>&1); then
    pass=$((pass+1)); status=ok
  else
    fail=$((fail+1)); status=FAIL; failed+=("$name")
  fi
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  printf '%-32s %s (%.1fs)\n' "$name" "$status" "$secs"
  if [ "$status" = FAIL ] || [ -n "${VERBOSE:-}" ]; then printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /'; fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
