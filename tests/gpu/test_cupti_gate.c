/* The profiling gate (PB_CUPTI_MODE=gate, harness/exec/cuda/cuda_exec_gate.c): a
 * profiled iteration whose first pass is a CUDA graph waits behind a host function
 * until that graph is launched. It must open on its own path (not after its 10 s
 * timeout), leave the results bit for bit as an untraced iteration's, and the
 * records must still have every kernel; nogate,nocopies,cuptizero runs the same way. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cuda_runtime.h>
#include "../../harness/exec/executor.h"
#include "../../harness/measure/cupti.h"
#include "../test.h"

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* single on GPU 0, a generate of 4 tokens after a 1 x 16 prompt: an untraced run,
 * then a profiled one under `mode`; 0 on success. */
static int gated_run(const char *mode, int *failures_)
{
    struct model_spec m;
    if (model_spec_load("models/llama-tiny.json", &m)) return 1;
    const struct strategy *st = strategy_find("single");
    struct machine mc = {.gpus = 1, .cpu_memory = 1ull << 34, .policy = MAP_AUTO};
    mc.gpu_memory[0] = 1ull << 30;
    struct workload w = {.batch = 1, .seq = 16, .context = 16, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    static struct placement p;
    if (!st || st->place(&m, &w, &mc, &p)) return 1;
    struct program g;
    if (program_plan(st, &m, &p, &w, 4, &g)) return 1;
    struct cupti_mode cm;
    CHECK_EQ_INT(cupti_mode_parse(mode, &cm), PB_OK);
    cupti_set_mode(&cm);
    char why[256] = "";
    if (cupti_start(why, sizeof why) != PB_OK) {
        printf("  skipped: %s\n", why);
        program_free(&g);
        return 0;
    }
    struct device_map map = {.n = 1};
    struct exec_config c = {.m = &m, .p = &p, .g = &g, .map = &map, .world = exec_world_single(), .seed = 7,
                            .use_graph = 1, .label = "single"};
    const struct executor_ops *x = &cuda_executor_ops;
    void *e = NULL;
    double ms = 0;
    struct exec_outputs plain = {0}, traced = {0};
    struct trace t;
    trace_init(&t, 1);
    int rc = x->create(&c, &e) || x->collect(e, NULL, -1) || x->profiling(e, 0) || x->run(e, -1, NULL, &ms) ||
             x->outputs(e, &plain) || x->profiling(e, 1);
    double t0 = wall_s();
    rc = rc || x->run(e, 0, &t, &ms) || x->collect(e, &t, 0) || x->outputs(e, &traced);
    double took = wall_s() - t0;
    CHECK_EQ_INT(rc, 0);
    CHECK(took < 5);   /* opened by the launch, not by the gate's 10 s timeout */
    CHECK(traced.graph);   /* the gate only holds graph passes */
    int kernels = 0;
    for (int i = 0; i < t.n; i++) kernels += t.rec[i].kind == REC_KERNEL;
    CHECK(kernels > 5 * m.layers);   /* every pass's kernels recorded (5 passes, several a layer) */
    CHECK(plain.logits && traced.logits && plain.rows == traced.rows &&
          !memcmp(plain.logits, traced.logits, (size_t)plain.rows * plain.vocab * 2));
    CHECK(plain.count == traced.count && (!plain.count || !memcmp(plain.tokens, traced.tokens, plain.count * sizeof(int))));
    if (e) x->destroy(e);
    cupti_stop();
    trace_free(&t);
    free(plain.logits);
    free(plain.tokens);
    free(traced.logits);
    free(traced.tokens);
    program_free(&g);
    return rc;
}

TEST(test_gated_profiled_iteration_records_every_kernel_and_changes_no_result)
{
    CHECK_EQ_INT(gated_run("gate,copies", failures_), 0);
    CHECK_EQ_INT(gated_run("nogate,nocopies,cuptizero", failures_), 0);
}
