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

# Host code that needs no GPU (tested on the CPU) versus code that calls CUDA.
CPU_SRC   := $(wildcard models/*.c strategies/*.c) \
             $(filter-out harness/main.c harness/cuda_%.c,$(wildcard harness/*.c))
GPU_C_SRC := $(wildcard harness/cuda_*.c)
CU_SRC    := $(wildcard kernels/*.cu)
TEST_SRC  := $(wildcard tests/test_*.c) tests/runner.c
GPU_TEST_SRC := $(wildcard tests/gpu/*.cu tests/gpu/*.c)

CPU_OBJ   := $(CPU_SRC:%.c=$(BUILD)/%.o)
GPU_OBJ   := $(GPU_C_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
GPU_TEST_OBJ := $(patsubst %.cu,$(BUILD)/%.o,$(patsubst %.c,$(BUILD)/%.o,$(GPU_TEST_SRC)))

.PHONY: all test test-gpu bench-kernels clean
all: $(BUILD)/bench

$(BUILD)/bench: $(BUILD)/harness/main.o $(CPU_OBJ) $(GPU_OBJ)
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(CPU_OBJ)
	$(CC) -o $@ $^ $(CJSON_LIBS) -lm -lpthread

$(BUILD)/test_gpu: $(GPU_TEST_OBJ) $(BUILD)/tests/runner.o $(CPU_OBJ) $(GPU_OBJ)
	$(CC) -o $@ $^ $(LDLIBS)

# The CPU suite; it also drives build/bench for command-line behaviour.
# With MPI=1 the MPI build's tests (2 ranks) run too; one total line ends it.
test: $(BUILD)/run_tests $(BUILD)/bench $(if $(filter 1,$(MPI)),$(BUILD)/run_mpi_tests $(BUILD)/bench-mpi)
	tests/run_suites.sh "$(BUILD)/run_tests" $(if $(filter 1,$(MPI)),"$(MPIRUN) -np 2 $(BUILD)/run_mpi_tests")

test-gpu: $(BUILD)/test_gpu $(BUILD)/bench
	$(BUILD)/test_gpu

# Kernel-core benchmark (docs/PERF.md): links only the core and what it reads.
KERNEL_OBJ := $(CU_SRC:%.cu=$(BUILD)/%.o) $(BUILD)/harness/safetensors.o $(BUILD)/harness/check.o $(BUILD)/harness/text_file.o \
              $(patsubst %.c,$(BUILD)/%.o,$(wildcard models/*.c))
$(BUILD)/bench_kernels: $(BUILD)/tests/bench/bench_kernels.o $(KERNEL_OBJ)
	$(CC) -o $@ $^ $(LDLIBS)

bench-kernels: $(BUILD)/bench_kernels
	$(BUILD)/bench_kernels

# Every version of the decode linear layers, checked and timed side by side.
$(BUILD)/bench_decode_gemm: $(BUILD)/tests/bench/bench_decode_gemm.o $(KERNEL_OBJ)
	$(CC) -o $@ $^ $(LDLIBS)

# --- MPI build (docs/MPI.md): `make MPI=1` adds $(BUILD)/bench-mpi, one rank per
# GPU under mpirun, and `make MPI=1 test-mpi` runs its CPU tests on 2 ranks. Its
# sources live in harness/mpi/ and tests/mpi/, outside the wildcards above, so the
# default build neither sees them nor needs MPI.
MPI ?= 0
ifeq ($(MPI),1)
MPI_CFLAGS  := $(shell mpicc --showme:compile)
MPI_LIBS    := $(shell mpicc --showme:link)
MPIRUN      ?= mpirun --allow-run-as-root --oversubscribe
MPI_CPU_OBJ := $(patsubst %.c,$(BUILD)/%.o,harness/mpi/mpi_world.c harness/mpi/trace_gather.c harness/mpi/mpi_jobs.c)
MPI_GPU_OBJ := $(patsubst %.c,$(BUILD)/%.o,harness/mpi/cuda_mpi_exec.c harness/mpi/cuda_mpi_run.c harness/mpi/mpi_main.c)
MPI_TEST_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/mpi/*.c))
all: $(BUILD)/bench-mpi

$(BUILD)/bench-mpi: $(MPI_GPU_OBJ) $(MPI_CPU_OBJ) $(CPU_OBJ) $(GPU_OBJ)
	$(CC) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

$(BUILD)/run_mpi_tests: $(MPI_TEST_OBJ) $(MPI_CPU_OBJ) $(CPU_OBJ)
	$(CC) -o $@ $^ $(CJSON_LIBS) -lm -lpthread $(MPI_LIBS)

$(BUILD)/harness/mpi/%.o: harness/mpi/%.c
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
