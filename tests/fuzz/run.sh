#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for SECONDS (default 60) on its seed corpus.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      targets: safetensors image config
# Needs clang and its runtime (Debian: clang libclang-rt-14-dev).
# FUZZ_OUT (default build-fuzz) holds binaries, the growing corpus and any
# crash-* / timeout-* / oom-* reproducers.  Exits non-zero when a target fails.
set -u
secs=${1:-60}
shift || true
targets=${*:-safetensors image config http modelfile}
cd "$(dirname "$0")/../.." || exit 2
out=${FUZZ_OUT:-build-fuzz}
cc=${CLANG:-clang}
mkdir -p "$out"
srcs="src/io/safetensors.c src/io/image.c src/io/json_util.c src/io/config.c src/core/error.c src/core/tensor.c"
flags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Iinclude -Isrc"
libs="-lpng -ljpeg -lcjson -lyaml -lm"
# the HTTP and model-file targets need the whole library
full_srcs=$(ls src/*/*.c src/*/*/*.c | grep -v '^src/cli/')
full_libs="-ldnnl -lopenblas -lavformat -lavcodec -lswscale -lavutil -lpng -ljpeg -lcjson -lyaml -lmicrohttpd -lm -lpthread"
failed=()
for t in $targets; do
  echo "== building fuzz_$t"
  # shellcheck disable=SC2086
  case $t in http|modelfile) s=$full_srcs; l=$full_libs;; *) s=$srcs; l=$libs;; esac
  if ! $cc $flags -fopenmp -Iinclude -Isrc "tests/fuzz/fuzz_$t.c" $s -o "$out/fuzz_$t" $l; then
    failed+=("$t(build)"); continue
  fi
done
for t in $targets; do
  [ -x "$out/fuzz_$t" ] || continue
  mkdir -p "$out/corpus_$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  echo "== fuzz_$t for ${secs}s"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
      "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/$t-" "${dict[@]}" \
      "$out/corpus_$t" "tests/fuzz/corpus/$t" 2>"$out/fuzz_$t.log"; then
    failed+=("$t")
    tail -n 60 "$out/fuzz_$t.log"
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)" "$out/fuzz_$t.log" | sed "s/^/  $t: /"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (reproducers in $out/)"
  exit 1
fi
echo "all fuzz targets ran ${secs}s without findings"
