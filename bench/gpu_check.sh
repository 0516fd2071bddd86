#!/usr/bin/env bash
# GPU checks of the CUDA backend: builds with `make DCL_CUDA=1` and runs
# tests/test_cuda_smoke (every op against the reference backend, plus conv
# timings) and tests/test_backend_ops.  Logs go to $OUT (else build-gpu/logs).
#
#   bench/gpu_check.sh            on the GPU machine (DCL_GPU_PREBUILT=1: skip
#                                 make, run the binaries from --prepare)
#   bench/gpu_check.sh --prepare  on a build machine: links both tests into
#                                 build-gpu/ with the host libraries a bare
#                                 CUDA image lacks (oneDNN, OpenBLAS, ...);
#                                 used when `make` cannot build there.
set -o pipefail
cd "$(dirname "$0")/.." || exit 2
PRE=build-gpu
TESTS="test_cuda_smoke test_backend_ops test_fused test_model test_dcl test_precision test_bf16 test_train test_dist"

if [ "${1:-}" = --prepare ]; then
  obj=build-gpu-obj
  common=$(ls tests/*.c | grep -v /test_ | sed "s|^|$obj/|; s|\.c$|.o|")
  # with NCCL when its header is here (test_dist's one-GPU part); the library
  # itself (200 MB) is not carried: the GPU machine's copy is used
  make BUILD=$obj DCL_CUDA=1 -j"$(nproc)" $obj/libdcl.a $common $(for t in $TESTS; do echo $obj/tests/$t.o; done) || exit 1
  libs=$(make -s --no-print-directory DCL_CUDA=1 --eval 'dcl-ldlibs: ; @echo $(LDLIBS)' dcl-ldlibs) || exit 1
  rm -rf $PRE && mkdir -p $PRE/hostlibs
  for t in $TESTS; do  # only the libraries each test really uses (shared test sources only if needed)
    ok=0
    for extra in "" golden.o synthcache.o "golden.o synthcache.o"; do
      cc -fopenmp -Wl,--as-needed -o $PRE/$t $obj/tests/$t.o $(for e in $extra; do echo $obj/tests/$e; done) \
        $obj/libdcl.a $libs -lstdc++ 2>/dev/null && { ok=1; break; }
    done
    [ $ok = 1 ] || cc -fopenmp -Wl,--as-needed -o $PRE/$t $obj/tests/$t.o $common $obj/libdcl.a $libs -lstdc++ || exit 1
  done
  # the benchmark command alone (dcl bench), without the video / HTTP libraries
  make BUILD=$obj DCL_CUDA=1 $obj/src/cli/cmd_bench.o $obj/src/cli/common.o || exit 1
  printf 'int cmd_bench(int, char **);\nint main(int c, char **v) { return cmd_bench(c - 1, v + 1); }\n' > $obj/benchmain.c
  cc -c -o $obj/benchmain.o $obj/benchmain.c || exit 1
  cc -fopenmp -Wl,--as-needed -o $PRE/dcl $obj/benchmain.o $obj/src/cli/cmd_bench.o $obj/src/cli/common.o $obj/libdcl.a $libs -lstdc++ || exit 1
  # the end-to-end trainer benchmark (bench/train_bench.c)
  cc -O2 -fopenmp -Iinclude -Isrc -Itests -c -o $obj/train_bench.o bench/train_bench.c || exit 1
  cc -fopenmp -Wl,--as-needed -o $PRE/train_bench $obj/train_bench.o $obj/tests/synthcache.o $obj/libdcl.a $libs -lstdc++ || exit 1
  # everything the tests load except the C/C++ runtimes and CUDA's own libraries
  ldd $(for t in $TESTS; do echo $PRE/$t; done) $PRE/dcl $PRE/train_bench | awk '/=> \//{print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libgomp|libcu[A-Za-z_]*|libnccl|ld-linux[-a-z0-9_]*)\.so' |
    xargs -r cp -L -t $PRE/hostlibs
  # xz: the working tree that travels is limited (64 MiB)
  tar cJf $PRE/hostlibs.txz -C $PRE hostlibs && rm -rf $PRE/hostlibs
  # no debug information (the same limit)
  strip $(for t in $TESTS; do echo $PRE/$t; done) $PRE/dcl $PRE/train_bench
  du -sh $PRE; echo "carry $PRE to the GPU machine"
  exit 0
fi

LOG=${OUT:-$PRE/logs}
mkdir -p "$LOG"
# tar needs the xz program for .txz; Python's tarfile does not
unpack_hostlibs() {
  tar xJf $PRE/hostlibs.txz -C "$1" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' $PRE/hostlibs.txz "$1"
}
nvidia-smi -L 2>&1 | tee "$LOG/gpu.txt"
BIN=build/tests
if [ -z "${DCL_GPU_PREBUILT:-}" ] && make -j16 DCL_CUDA=1 > "$LOG/make.log" 2>&1; then
  echo "built with make"
else
  [ -z "${DCL_GPU_PREBUILT:-}" ] && { echo "make failed:"; grep -m3 -E 'error|Error' "$LOG/make.log"; }
  [ -x $PRE/test_cuda_smoke ] || { echo "no prepared binaries in $PRE (run bench/gpu_check.sh --prepare elsewhere)"; exit 1; }
  echo "using the binaries prepared in $PRE"
  BIN=$PRE
  tmp=$(mktemp -d) && unpack_hostlibs "$tmp" && export LD_LIBRARY_PATH="$tmp/hostlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d $d ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
# NCCL: the system's, else the copy that comes with PyTorch's wheels
if ! ldconfig -p 2>/dev/null | grep -q libnccl.so.2; then
  nccl=$(find /usr/local /usr/lib /opt -name 'libnccl.so.2' 2>/dev/null | head -n 1)
  [ -n "$nccl" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$nccl")" && echo "NCCL from $nccl"
fi

rc=0
for t in $TESTS; do
  echo "== $t"
  DCL_TEST_VERBOSE=1 timeout ${DCL_GPU_TEST_TIMEOUT:-150} $BIN/$t > "$LOG/$t.log" 2>&1; s=$?
  grep -E 'skipped|FAIL|mismatch|failed|returned|match ref|checks' "$LOG/$t.log" | tail -n 25
  [ $t = test_cuda_smoke ] && sed -n '/^timing/,$p' "$LOG/$t.log" | grep -v -e '^      ' -e 'checks,'
  if [ $s -eq 0 ]; then echo "== $t: ok"; else echo "== $t: FAIL (exit $s)"; rc=1; fi
done
exit $rc
