# dcl build.  `make` builds build/dcl and build/libdcl.a; `make test` runs the
# test suite; `make asan` runs the input-parsing tests under ASan+UBSan;
# `make bench` runs the benchmarks against PyTorch.
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -fopenmp -fno-trapping-math -Iinclude -Isrc -MMD -MP
LDLIBS  += -ldnnl -lopenblas -lavformat -lavcodec -lswscale -lavutil -lpng -ljpeg -lcjson -lyaml -lmicrohttpd -lm -lpthread
LDFLAGS += -fopenmp

# CUDA backend: built when nvcc and cuDNN are present (DCL_CUDA=0 to disable)
NVCC    ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
DCL_CUDA ?= $(if $(NVCC),$(if $(wildcard $(CUDA_HOME)/include/cudnn.h),1,0),0)

# MPI (distributed training): built in when mpicc is installed (DCL_MPI=0 to disable)
DCL_MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(DCL_MPI),1)
CFLAGS  += -DDCL_HAVE_MPI $(shell mpicc --showme:compile)
LDLIBS  += $(shell mpicc --showme:link)
endif

LIB_SRC := $(filter-out src/cli/%,$(wildcard src/*/*.c src/*/*/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
CU_SRC  := $(wildcard src/backend/cuda/*.cu)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out tests/test_%,$(wildcard tests/*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/%.o)

ifeq ($(DCL_CUDA),1)
CU_OBJ  := $(CU_SRC:%.cu=$(BUILD)/%.o)
CFLAGS  += -DDCL_HAVE_CUDA=1 -I$(CUDA_HOME)/include
# cuBLAS is opened at run time by the backend (cu_blas_load): linked, it would
# cost every process ~150 MB of resident memory at start-up
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcudart -ldl
NVFLAGS ?= -O3 -std=c++17 -Iinclude -Isrc -Xcompiler -fPIC -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
# NCCL (multi-GPU all-reduce) when its header is there; DCL_NCCL=0 leaves it out
DCL_NCCL ?= $(if $(wildcard $(CUDA_HOME)/include/nccl.h),1,0)
ifeq ($(DCL_NCCL),1)
CFLAGS  += -DDCL_HAVE_NCCL
LDLIBS  += -lnccl
endif
endif

.PHONY: all test check setup asan bench clean demo fuzz
all: $(BUILD)/dcl $(TEST_BIN) $(BUILD)/train_bench

# rebuild everything when the flags change (e.g. DCL_CUDA=0/1 in one folder)
FLAGS_STAMP := $(BUILD)/.flags-$(shell echo '$(CC) $(CFLAGS) $(NVFLAGS) $(DCL_CUDA)' | md5sum | cut -c1-12)
$(FLAGS_STAMP):
	@mkdir -p $(@D) && rm -f $(BUILD)/.flags-* && touch $@
$(LIB_OBJ) $(CLI_OBJ) $(CU_OBJ) $(TEST_COMMON_OBJ) $(TEST_BIN:=.o): $(FLAGS_STAMP)
.SECONDARY: $(TEST_COMMON_OBJ) $(TEST_BIN:=.o)

$(BUILD)/libdcl.a: $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/dcl: $(CLI_OBJ) $(BUILD)/libdcl.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdcl.a $(LDLIBS) $(if $(CU_OBJ),-lstdc++)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -MMD -MP -c -o $@ $<

# the whole trainer's throughput on a synthetic cache (bench/train_bench.c)
$(BUILD)/bench/train_bench.o: CFLAGS += -Itests
$(BUILD)/bench/train_bench.o: $(FLAGS_STAMP)
$(BUILD)/train_bench: $(BUILD)/bench/train_bench.o $(BUILD)/tests/synthcache.o $(BUILD)/libdcl.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/tests/synthcache.o $(BUILD)/libdcl.a $(LDLIBS) $(if $(CU_OBJ),-lstdc++)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON_OBJ) $(BUILD)/libdcl.a
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_COMMON_OBJ) $(BUILD)/libdcl.a $(LDLIBS) $(if $(CU_OBJ),-lstdc++)

test: all
	@tests/run.sh $(BUILD)

setup:
	bash tools/setup.sh

# the README's test command: install what is needed, build, run the suite
check: setup
	$(MAKE) test

# the README's first command: the synthetic demo end to end
demo: setup
	$(MAKE) $(BUILD)/dcl
	DCL=$(BUILD)/dcl bash tools/demo.sh

# the input-parsing tests under AddressSanitizer + UndefinedBehaviorSanitizer
ASAN_TESTS ?= test_safetensors test_image test_config test_metrics test_video test_datasets test_face test_serve test_detect
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fopenmp -fsanitize=address,undefined" DCL_CUDA=0 all
	@DCL_TEST_FILTER="$(ASAN_TESTS)" UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ASAN_OPTIONS=detect_leaks=1 tests/run.sh build-asan

bench: all
	bench/run

FUZZ_SECS ?= 30
fuzz:
	tests/fuzz/run.sh $(FUZZ_SECS)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(CU_OBJ:.o=.d) $(BUILD)/bench/train_bench.d
