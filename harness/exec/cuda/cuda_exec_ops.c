/* The CUDA executor behind executor.h: cuda_executor.c's entry points, CUPTI for
 * device activity (measure/cuda_cupti.c). */
#include <stdlib.h>
#include <string.h>
#include "cuda_exec_internal.h"

int cuda_config_from(const struct exec_config *c, struct cuda_config *out)
{
    const struct program *g = c->g;
    memset(out, 0, sizeof *out);
    if (g->prompt.n_devices > c->map->n || g->prompt.n_devices > PB_MAX_DEVICES)
        return pb_fail("%s uses %d devices but only %d are given", c->label, g->prompt.n_devices, c->map->n);
    *out = (struct cuda_config){.m = c->m, .p = c->p, .g = g, .prefill = &g->prompt,
                                .decode = g->tokens ? &g->decode : NULL, .n_devices = g->prompt.n_devices,
                                .batch = g->batch, .seq = g->seq, .decode_tokens = g->tokens, .seed = c->seed,
                                .weights = c->weights, .prompt = c->prompt, .use_graph = c->use_graph, .label = c->label,
                                .allreduce = c->allreduce, .allreduce_table = c->allreduce_table};
    for (int d = 0; d < out->n_devices; d++) out->ordinal[d] = c->map->ordinal[d];
    return PB_OK;
}

struct cuda_state {
    struct cuda_config c;
    struct executor *e;
};

static int cuda_create(const struct exec_config *c, void **state)
{
    struct cuda_state *x = calloc(1, sizeof *x);
    *state = x;
    if (!x) return pb_fail("out of host memory for the executor");
    PB_TRY(cuda_config_from(c, &x->c));
    return executor_create(&x->c, &x->e);
}

static int cuda_run(void *state, int iteration, struct trace *t, double *ms)
{
    return executor_run(((struct cuda_state *)state)->e, iteration, t, ms);
}

static int cuda_outputs(void *state, struct exec_outputs *out)
{
    struct cuda_state *x = state;
    *out = (struct exec_outputs){0};
    PB_TRY(executor_logits(x->e, &out->logits, &out->rows, &out->vocab));
    PB_TRY(executor_tokens(x->e, &out->tokens, &out->count));
    out->graph = executor_used_graph(x->e);
    return PB_OK;
}

static int cuda_step(void *state, const struct exec_step *x, struct trace *t, double *ms)
{
    return executor_serve_step(((struct cuda_state *)state)->e, x, t, ms);
}

static void cuda_destroy(void *state)
{
    struct cuda_state *x = state;
    if (!x) return;
    cupti_set_collecting(1);   /* the next executor's graphs are instantiated with CUPTI on */
    executor_destroy(x->e);
    cupti_exec_collect(NULL, NULL, -1);
    free(x);
}

/* Every logical device is this process's. */
static int cuda_memory_in_use(const struct exec_config *c, uint64_t *used)
{
    return executor_gpu_used(c->map->ordinal, c->g->prompt.n_devices, used);
}

const struct executor_ops cuda_executor_ops = {
    .name = "cuda",
    .create = cuda_create,
    .run = cuda_run,
    .profiling = cupti_exec_profiling,
    .collect = cupti_exec_collect,
    .outputs = cuda_outputs,
    .destroy = cuda_destroy,
    .memory_in_use = cuda_memory_in_use,
    .step = cuda_step,
};
