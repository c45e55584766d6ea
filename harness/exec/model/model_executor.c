/* The cost-model executor behind executor.h: every pass of the program replayed on
 * a device profile (simulate.c), one after the other as the GPU runs them, into the
 * same trace records a measured run writes (marked predicted). Deterministic: one
 * run stands for every iteration. No outputs: it computes no logits. */
#include <math.h>
#include <stdlib.h>
#include "../executor.h"
#include "simulate.h"

struct model_exec {
    struct exec_config c;
};

static int model_create(const struct exec_config *c, void **state)
{
    *state = NULL;
    if (!c->profile) return pb_fail("internal: the cost-model executor needs a device profile");
    if (c->g->prompt.n_devices > c->map->n)
        return pb_fail("%s uses %d devices but only %d are given", c->label, c->g->prompt.n_devices, c->map->n);
    struct model_exec *x = malloc(sizeof *x);
    if (!x) return pb_fail("out of host memory for the cost model");
    x->c = *c;
    *state = x;
    return PB_OK;
}

/* src's device records shifted by `offset` ns into dst as `iteration`; its ranges are
 * dropped (one range covers the whole iteration). */
static int append(struct trace *dst, const struct trace *src, uint64_t offset, int iteration)
{
    for (int i = 0; i < src->n; i++) {
        struct record r = src->rec[i];
        if (r.kind == REC_RANGE) continue;
        r.start_ns += offset;
        r.end_ns += offset;
        r.iteration = iteration;
        PB_TRY(trace_add(dst, &r));
    }
    return PB_OK;
}

static int model_run(void *state, int iteration, struct trace *t, double *ms)
{
    const struct model_exec *x = state;
    const struct exec_config *c = &x->c;
    double clock = 0;
    for (int k = 0; k < c->g->n_passes; k++) {
        struct trace piece;
        double pass_ms;
        PB_TRY(simulate_pass(c->profile, c->m, c->g, k, c->map->ordinal, c->allreduce, &piece, &pass_ms));
        int rc = t ? append(t, &piece, (uint64_t)llround(clock * 1e6), iteration) : PB_OK;
        trace_free(&piece);
        PB_TRY(rc);
        clock += pass_ms;
    }
    *ms = clock;
    if (!t) return PB_OK;
    t->predicted = 1;
    t->busy_known = 1;
    struct record range = {.kind = REC_RANGE, .device = -1, .src_device = -1, .dst_device = -1,
                           .iteration = iteration, .end_ns = (uint64_t)llround(clock * 1e6)};
    snprintf(range.name, sizeof range.name, "iteration %d (predicted)", iteration);
    return trace_add(t, &range);
}

static int model_outputs(void *state, struct exec_outputs *out)
{
    (void)state;
    *out = (struct exec_outputs){0};
    return PB_OK;
}

static void model_destroy(void *state) { free(state); }

const struct executor_ops model_executor_ops = {
    .name = "model",
    .predicts = 1,
    .create = model_create,
    .run = model_run,
    .outputs = model_outputs,
    .destroy = model_destroy,
};
