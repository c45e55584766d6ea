# placebench: one Makefile. `make` builds build/bench; `make test` runs the CPU
# test suite; `make test-gpu` builds and runs the GPU tests (needs a GPU).
CUDA      ?= /usr/local/cuda
NVCC      ?= $(CUDA)/bin/nvcc
CC        ?= cc
BUILD     ?= build
# Real sm_90 code for H100/H200 plus PTX so newer GPUs can JIT it.
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS   := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)

CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -Wall -Wextra -D_GNU_SOURCE -I$(CUDA)/include $(CJSON_CFLAGS) -MMD -MP
NVCCFLAGS ?= -O3 -g -lineinfo
NVCCFLAGS += -std=c++17 $(CUDA_ARCH) -I$(CUDA)/include -Xcompiler -Wall -MMD -MP
LDLIBS    += -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcublasLt -lcublas -lcupti -lnccl -lcudart \
             $(CJSON_LIBS) -lm -lpthread -ldl -lstdc++

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
HARNESS_SRC    := $(filter-out %/cuda_%.c,$(HARNESS_ALL))
HARNESS_CUDA_SRC := $(filter %/cuda_%.c,$(HARNESS_ALL))
TEST_SRC  := $(wildcard tests/test_*.c) tests/runner.c
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

.PHONY: all test test-gpu bench-kernels check-layers clean
all: $(BUILD)/bench
check-layers: $(BUILD)/layers.ok

$(BUILD)/bench: $(BUILD)/harness/cli/main.o $(GPU_LIBS) | $(BUILD)/layers.ok
	$(CC) -o $@ $(BUILD)/harness/cli/main.o $(GPU_LIBS) $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(CPU_LIBS)
	$(CC) -o $@ $^ $(CJSON_LIBS) -lm -lpthread

$(BUILD)/test_gpu: $(GPU_TEST_OBJ) $(BUILD)/tests/runner.o $(GPU_LIBS)
	$(CC) -o $@ $^ $(LDLIBS)

# The CPU suite; it also drives build/bench for command-line behaviour.
# With MPI=1 the MPI build's tests (2 ranks) run too; one total line ends it.
test: $(BUILD)/run_tests $(BUILD)/bench $(if $(filter 1,$(MPI)),$(BUILD)/run_mpi_tests $(BUILD)/bench-mpi)
	tests/run_suites.sh "$(BUILD)/run_tests" "tests/test_check_layers.sh" $(if $(filter 1,$(MPI)),"$(MPIRUN) -np 2 $(BUILD)/run_mpi_tests")

test-gpu: $(BUILD)/test_gpu $(BUILD)/bench
	$(BUILD)/test_gpu

# Kernel-core benchmark (docs/PERF.md): links only the core and what it reads.
$(BUILD)/bench_kernels: $(BUILD)/tests/bench/bench_kernels.o $(LIB_KERNELS) $(LIB_MODELS) $(LIB_BASE)
	$(CC) -o $@ $^ $(LDLIBS)

bench-kernels: $(BUILD)/bench_kernels
	$(BUILD)/bench_kernels

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
MPI_GPU_OBJ := $(patsubst %.c,$(BUILD)/%.o,harness/exec/mpi/cuda_mpi_exec.c harness/exec/mpi/cuda_mpi_run.c harness/exec/mpi/mpi_main.c)
MPI_TEST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/mpi/*.c))
all: $(BUILD)/bench-mpi

$(BUILD)/bench-mpi: $(MPI_GPU_OBJ) $(MPI_CPU_OBJ) $(GPU_LIBS) | $(BUILD)/layers.ok
	$(CC) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

$(BUILD)/run_mpi_tests: $(MPI_TEST_OBJ) $(MPI_CPU_OBJ) $(CPU_LIBS)
	$(CC) -o $@ $^ $(CJSON_LIBS) -lm -lpthread $(MPI_LIBS)

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

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
