# placebench: one Makefile. `make` builds build/bench; `make test` runs the CPU
# test suite; `make test-gpu` builds and runs the GPU tests (needs a GPU).
CUDA      ?= /usr/local/cuda
NVCC      ?= $(CUDA)/bin/nvcc
CC        ?= cc
BUILD     ?= build
# Real sm_90 code for H100/H200 plus PTX so newer GPUs can JIT it.
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

# NCCL where users have it, first found wins: NCCL_HOME (only it, when set), the
# CUDA toolkit, the system's libnccl-dev, the nvidia-nccl-cu13 pip wheel
# (site-packages/nvidia/nccl/{include,lib}, which ships only libnccl.so.2).
MULTIARCH    := $(shell $(CC) -print-multiarch 2>/dev/null)
nccl_library  = $(firstword $(wildcard $(foreach d,lib64 lib lib/$(MULTIARCH),$(1)/$(d)/libnccl.so $(1)/$(d)/libnccl.so.2)))
nccl_at       = $(if $(1),$(if $(and $(wildcard $(1)/include/nccl.h),$(call nccl_library,$(1))),$(1)))
NCCL_WHEEL    = $(shell python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.nccl"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null)
NCCL_ROOT    := $(if $(NCCL_HOME),$(call nccl_at,$(NCCL_HOME)),$(or $(call nccl_at,$(CUDA)),$(call nccl_at,/usr),$(call nccl_at,$(NCCL_WHEEL))))
NCCL_LIBFILE := $(call nccl_library,$(NCCL_ROOT))
NCCL_CFLAGS  := $(if $(filter-out /usr $(CUDA),$(NCCL_ROOT)),-I$(NCCL_ROOT)/include)
NCCL_LIBS    := -L$(dir $(NCCL_LIBFILE)) -Wl,-rpath,$(dir $(NCCL_LIBFILE)) -l:$(notdir $(NCCL_LIBFILE))
ifeq ($(NCCL_ROOT)$(filter clean nccl-where,$(MAKECMDGOALS)),)
$(error NCCL not found $(if $(NCCL_HOME),in NCCL_HOME=$(NCCL_HOME) (it needs include/nccl.h and lib/libnccl.so),(looked for include/nccl.h and libnccl.so in $(CUDA), /usr and the nvidia-nccl-cu13 wheel)). Get it with one of: apt-get install libnccl-dev (NVIDIA's CUDA repository); pip install nvidia-nccl-cu13; or make NCCL_HOME=DIR, DIR holding include/nccl.h and lib/libnccl.so)
endif

# --version: the Makefile's version and the commit built (-dirty: with uncommitted changes).
VERSION    := 0.1.0
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
GIT_COMMIT := $(GIT_COMMIT)$(if $(GIT_COMMIT),$(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty))

CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)

# CFLAGS/LDFLAGS (and EXTRA_CFLAGS/EXTRA_LDFLAGS) from the command line add to the
# flags the build needs (PB_CFLAGS), e.g. `make CFLAGS="-O1 -g -fsanitize=address"`.
CFLAGS    ?= -O2 -g
PB_CFLAGS := -std=c11 -Wall -Wextra -D_GNU_SOURCE $(NCCL_CFLAGS) -I$(CUDA)/include $(CJSON_CFLAGS) -MMD -MP
override CFLAGS += $(PB_CFLAGS) $(EXTRA_CFLAGS)
override LDFLAGS += $(EXTRA_LDFLAGS)
NVCCFLAGS ?= -O3 -g -lineinfo
NVCCFLAGS += -std=c++17 $(CUDA_ARCH) $(NCCL_CFLAGS) -I$(CUDA)/include -Xcompiler -Wall -MMD -MP
LDLIBS    += $(NCCL_LIBS) -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcublasLt -lcublas -lcupti -lcudart \
             $(CJSON_LIBS) -lm -lpthread -ldl -lstdc++

# The first target is the default: build/bench (and build/bench-mpi with MPI=1).
all:

# Each layer is its own static library, linked in layer order (DESIGN.md, "Layers"):
# base < models < strategies < kernels < harness. tests/check_layers.sh fails the
# build when a layer includes a header of, or calls a symbol defined in, a layer
# above it. Inside harness/, files named cuda_*.c call CUDA and live in the
# harness_cuda library; the rest is tested on the CPU.
BASE_SRC       := $(wildcard base/*.c)
MODELS_SRC     := $(wildcard models/*.c)
STRATEGIES_SRC := $(wildcard strategies/*.c)
KERNELS_SRC    := $(wildcard kernels/*.cu)
HARNESS_ALL    := $(wildcard harness/*.c harness/*/*.c harness/*/*/*.c)
HARNESS_ALL    := $(filter-out harness/cli/main.c harness/exec/mpi/%,$(HARNESS_ALL))
# exec/registry.c names the CUDA executor, so it goes with the CUDA code.
HARNESS_CUDA_SRC := $(filter %/cuda_%.c harness/exec/registry.c,$(HARNESS_ALL))
HARNESS_SRC    := $(filter-out $(HARNESS_CUDA_SRC),$(HARNESS_ALL))
# The peer test's criterion and reference reader are plain C in tests/gpu/: the
# CPU suite tests them too.
TEST_SRC  := $(wildcard tests/test_*.c) tests/runner.c tests/temp_dirs.c \
             tests/gpu/peer_criterion.c tests/gpu/peer_reference.c tests/gpu/cpu_reference.c
GPU_TEST_SRC := $(wildcard tests/gpu/*.cu tests/gpu/*.c)

obj = $(patsubst %.cu,$(BUILD)/%.o,$(patsubst %.c,$(BUILD)/%.o,$(1)))
LIB_BASE         := $(BUILD)/libbase.a
LIB_MODELS       := $(BUILD)/libmodels.a
LIB_STRATEGIES   := $(BUILD)/libstrategies.a
LIB_KERNELS      := $(BUILD)/libkernels.a
LIB_HARNESS      := $(BUILD)/libharness.a
LIB_HARNESS_CUDA := $(BUILD)/libharness_cuda.a
$(LIB_BASE): $(call obj,$(BASE_SRC))
$(LIB_MODELS): $(call obj,$(MODELS_SRC))
$(LIB_STRATEGIES): $(call obj,$(STRATEGIES_SRC))
$(LIB_KERNELS): $(call obj,$(KERNELS_SRC))
$(LIB_HARNESS): $(call obj,$(HARNESS_SRC))
$(LIB_HARNESS_CUDA): $(call obj,$(HARNESS_CUDA_SRC))
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# Highest layer first, as a static link wants them.
CPU_LIBS  := $(LIB_HARNESS) $(LIB_STRATEGIES) $(LIB_MODELS) $(LIB_BASE)
GPU_LIBS  := $(LIB_HARNESS_CUDA) $(LIB_HARNESS) $(LIB_KERNELS) $(LIB_STRATEGIES) $(LIB_MODELS) $(LIB_BASE)
TEST_OBJ  := $(call obj,$(TEST_SRC))
GPU_TEST_OBJ := $(call obj,$(GPU_TEST_SRC))

# Lowest layer first: each layer's folder and its libraries (comma-separated).
LAYERS := base:$(LIB_BASE) models:$(LIB_MODELS) strategies:$(LIB_STRATEGIES) \
          kernels:$(LIB_KERNELS) harness:$(LIB_HARNESS),$(LIB_HARNESS_CUDA)
$(BUILD)/layers.ok: tests/check_layers.sh $(GPU_LIBS) $(shell find base models strategies kernels harness -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh')
	tests/check_layers.sh $(LAYERS)
	@touch $@

.PHONY: all test test-gpu bench-kernels bench-allreduce check-layers clean nccl-where FORCE
all: $(BUILD)/bench
check-layers: $(BUILD)/layers.ok

# Which NCCL the build uses (tests/test_build.c checks the search order).
nccl-where:
	@echo "NCCL_ROOT=$(NCCL_ROOT) NCCL_LIBFILE=$(NCCL_LIBFILE)"

# cli.o carries the version; the stamp changes (and so rebuilds it) only when the commit does.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(VERSION) $(GIT_COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(GIT_COMMIT)' > $@
$(BUILD)/harness/cli/cli.o: $(BUILD)/version.stamp
$(BUILD)/harness/cli/cli.o: CFLAGS += -DPB_VERSION='"$(VERSION)"' -DPB_GIT_COMMIT='"$(GIT_COMMIT)"'

$(BUILD)/bench: $(BUILD)/harness/cli/main.o $(GPU_LIBS) | $(BUILD)/layers.ok
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/harness/cli/main.o $(GPU_LIBS) $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(CPU_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(CJSON_LIBS) -lm -lpthread

$(BUILD)/test_gpu: $(GPU_TEST_OBJ) $(BUILD)/tests/runner.o $(BUILD)/tests/temp_dirs.o $(GPU_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The CPU suite; it also drives build/bench for command-line behaviour.
# With MPI=1 the MPI build's tests (2 ranks) run too; one total line ends it.
test: $(BUILD)/run_tests $(BUILD)/bench $(if $(filter 1,$(MPI)),$(BUILD)/run_mpi_tests $(BUILD)/bench-mpi)
	tests/run_suites.sh "$(BUILD)/run_tests" "tests/test_check_layers.sh" $(if $(filter 1,$(MPI)),"$(MPIRUN) -np 2 $(BUILD)/run_mpi_tests")

# The peer test needs transformers' references: scripts/with_peer_reference.sh
# writes them into $(BUILD)/peer where python3 has torch and transformers (or
# takes PB_PEER_DIR), and says so when it cannot.
test-gpu: $(BUILD)/test_gpu $(BUILD)/bench
	scripts/with_peer_reference.sh $(BUILD)/peer $(BUILD)/test_gpu

# Kernel-core benchmark (docs/PERF.md): links only the core and what it reads.
$(BUILD)/bench_kernels: $(BUILD)/tests/bench/bench_kernels.o $(BUILD)/tests/bench/bench_attention.o \
                         $(LIB_KERNELS) $(LIB_MODELS) $(LIB_BASE)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-kernels: $(BUILD)/bench_kernels
	$(BUILD)/bench_kernels

# All-reduce latency by size, peer memory against NCCL (docs/PERF.md).
$(BUILD)/bench_allreduce: $(BUILD)/tests/bench/bench_allreduce.o $(LIB_KERNELS) $(LIB_BASE)
	$(CC) -o $@ $^ $(LDLIBS)

bench-allreduce: $(BUILD)/bench_allreduce
	$(BUILD)/bench_allreduce

# Every version of the decode linear layers, checked and timed side by side.
$(BUILD)/bench_decode_gemm: $(BUILD)/tests/bench/bench_decode_gemm.o $(BUILD)/tests/bench/decode_gemm_lt.o \
                            $(LIB_KERNELS) $(LIB_MODELS) $(LIB_BASE)
	$(CC) -o $@ $^ $(LDLIBS)

# --- MPI build (docs/MPI.md): `make MPI=1` adds $(BUILD)/bench-mpi, one rank per
# GPU under mpirun, and `make MPI=1 test-mpi` runs its CPU tests on 2 ranks. Its
# sources live in harness/exec/mpi/ and tests/mpi/, outside the wildcards above, so the
# default build neither sees them nor needs MPI.
MPI ?= 0
ifeq ($(MPI),1)
MPI_CFLAGS  := $(shell mpicc --showme:compile)
MPI_LIBS    := $(shell mpicc --showme:link)
MPIRUN      ?= mpirun --allow-run-as-root --oversubscribe
MPI_CPU_OBJ := $(patsubst %.c,$(BUILD)/%.o,harness/exec/mpi/mpi_world.c harness/exec/mpi/trace_gather.c harness/exec/mpi/mpi_jobs.c)
MPI_GPU_OBJ := $(patsubst %.c,$(BUILD)/%.o,harness/exec/mpi/cuda_mpi_exec.c harness/exec/mpi/cuda_mpi_peer.c harness/exec/mpi/cuda_mpi_run.c harness/exec/mpi/mpi_main.c)
MPI_TEST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/mpi/*.c)) $(BUILD)/tests/temp_dirs.o
all: $(BUILD)/bench-mpi

$(BUILD)/bench-mpi: $(MPI_GPU_OBJ) $(MPI_CPU_OBJ) $(GPU_LIBS) | $(BUILD)/layers.ok
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

$(BUILD)/run_mpi_tests: $(MPI_TEST_OBJ) $(MPI_CPU_OBJ) $(CPU_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(CJSON_LIBS) -lm -lpthread $(MPI_LIBS)

$(BUILD)/harness/exec/mpi/%.o: harness/exec/mpi/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -c $< -o $@

$(BUILD)/tests/mpi/%.o: tests/mpi/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -c $< -o $@

.PHONY: test-mpi
test-mpi: $(BUILD)/run_mpi_tests $(BUILD)/bench-mpi
	$(MPIRUN) -np 2 $(BUILD)/run_mpi_tests
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# wgmma exists only in sm_90a code (kernels/hopper.cuh): these files build for it
# alone, so their kernels run on H100 and H200 and report no image elsewhere.
HOPPER_ONLY := kernels/gemm_tma.cu
$(call obj,$(HOPPER_ONLY)): CUDA_ARCH = -gencode arch=compute_90a,code=sm_90a

# --- Sanitizers and fuzzing (CI runs both before the test command). ---------
# sanitize-test: the CPU suite built with ASan + UBSan, its build/bench included.
# fuzz: clang libFuzzer targets for the readers of outside input; fuzz-run runs
# each on its seed corpus (tests/fuzz/corpus/<target>/) for FUZZ_SECONDS.
SANITIZE_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS   := config safetensors_header safetensors_index device_profile csv trace
FUZZ_SECONDS   ?= 10
FUZZ_OBJ       := $(BUILD)/tests/fuzz/fuzz_input.o $(CPU_LIBS)
.PHONY: sanitize-test fuzz fuzz-run
sanitize-test:
	@$(MAKE) -s --no-print-directory BUILD=$(BUILD)/sanitize CFLAGS="$(SANITIZE_FLAGS)" EXTRA_LDFLAGS="-fsanitize=address,undefined" \
	    $(BUILD)/sanitize/run_tests $(BUILD)/sanitize/bench
	@ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    BENCH=$(BUILD)/sanitize/bench $(BUILD)/sanitize/run_tests > $(BUILD)/sanitize/tests.log 2>&1; \
	    rc=$$?; sed 's/^\([0-9]* passed, [0-9]* failed\)$$/sanitize-test: \1/' $(BUILD)/sanitize/tests.log; exit $$rc

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(CJSON_LIBS) -lm -lpthread

fuzz:
	@$(MAKE) -s --no-print-directory BUILD=$(BUILD)/fuzz CC=clang CFLAGS="$(SANITIZE_FLAGS) -fsanitize=fuzzer-no-link" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; mkdir -p $(BUILD)/fuzz/corpus/$$t; \
	    $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=2 -max_len=65536 \
	        -artifact_prefix=$(BUILD)/fuzz/crash-$$t- $(BUILD)/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	        > $(BUILD)/fuzz/$$t.log 2>&1; rc=$$?; \
	    grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs)' $(BUILD)/fuzz/$$t.log | tail -1; \
	    if [ $$rc != 0 ]; then tail -40 $(BUILD)/fuzz/$$t.log; exit 1; fi; \
	done

clean:
	rm -rf $(BUILD)

# Dependency files of our objects (not the HTA test's Python venv under build/).
-include $(shell find $(BUILD) -path $(BUILD)/hta-venv -prune -o -name '*.d' -type f -print 2>/dev/null)
