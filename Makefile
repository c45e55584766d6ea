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

CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -Wall -Wextra -D_GNU_SOURCE $(NCCL_CFLAGS) -I$(CUDA)/include $(CJSON_CFLAGS) -MMD -MP
NVCCFLAGS ?= -O3 -g -lineinfo
NVCCFLAGS += -std=c++17 $(CUDA_ARCH) $(NCCL_CFLAGS) -I$(CUDA)/include -Xcompiler -Wall -MMD -MP
LDLIBS    += $(NCCL_LIBS) -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -lcublasLt -lcublas -lcupti -lcudart \
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

.PHONY: all test test-gpu bench-kernels clean nccl-where FORCE
all: $(BUILD)/bench

# Which NCCL the build uses (tests/test_build.c checks the search order).
nccl-where:
	@echo "NCCL_ROOT=$(NCCL_ROOT) NCCL_LIBFILE=$(NCCL_LIBFILE)"

# cli.o carries the version; the stamp changes (and so rebuilds it) only when the commit does.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(VERSION) $(GIT_COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(GIT_COMMIT)' > $@
$(BUILD)/harness/cli.o: $(BUILD)/version.stamp
$(BUILD)/harness/cli.o: CFLAGS += -DPB_VERSION='"$(VERSION)"' -DPB_GIT_COMMIT='"$(GIT_COMMIT)"'

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
