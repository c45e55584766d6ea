#include "serve_cost.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../measure/metrics.h"
#include "../exec/executor.h"

struct serve_cost_entry {
    int full;
    struct serve_step_shape key;
    struct serve_step_cost cost;
};

int serve_bucket(int tokens)
{
    if (tokens <= 32) return tokens;
    int octave = 31 - __builtin_clz((unsigned)tokens);   /* 2^octave <= tokens */
    int step = 1 << (octave - 4);
    return (tokens + step - 1) / step * step;
}

void serve_cost_model_init(struct serve_cost_model *c, const struct device_profile *prof,
                           const struct model_spec *m, const struct strategy *st, const struct placement *p,
                           enum dtype dtype, const int *ordinal)
{
    *c = (struct serve_cost_model){.prof = prof, .m = m, .st = st, .p = p, .dtype = dtype, .ordinal = ordinal};
}

void serve_cost_model_free(struct serve_cost_model *c)
{
    free(c->table);
    c->table = NULL;
    c->size = c->used = 0;
}

int serve_cost_from_trace(const struct trace *t, double latency_ms, uint64_t origin_ns, struct serve_step_cost *out)
{
    memset(out, 0, sizeof *out);
    out->latency_ms = latency_ms;
    out->n_devices = t->n_devices < PB_MAX_DEVICES ? t->n_devices : PB_MAX_DEVICES;
    for (int d = 0; d < out->n_devices; d++) out->first_ms[d] = out->last_ms[d] = NAN;
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (r->kind == REC_RANGE || r->device < 0 || r->device >= out->n_devices) continue;
        double s = ((double)r->start_ns - (double)origin_ns) / 1e6, e = ((double)r->end_ns - (double)origin_ns) / 1e6;
        int d = r->device;
        if (isnan(out->first_ms[d]) || s < out->first_ms[d]) out->first_ms[d] = s;
        if (isnan(out->last_ms[d]) || e > out->last_ms[d]) out->last_ms[d] = e;
    }
    struct iteration_metrics im;
    PB_TRY(metrics_iteration(t, -1, &im));
    for (int d = 0; d < out->n_devices; d++) {
        if (isnan(out->first_ms[d])) continue;
        const struct gpu_metrics *g = &im.gpu[d];
        out->compute_ms[d] = g->compute_ms;
        out->comm_ms[d] = g->comm_ms;
        out->copy_ms[d] = g->copy_ms;
        out->busy_ms[d] = g->window_ms - g->idle_ms;
    }
    return PB_OK;
}

/* One prompt pass of g through the cost-model executor (executor.h), as --simulate
 * runs a point: the step's cost is that replay's trace. */
static int cost_of_program(const struct serve_cost_model *c, const struct program *g, struct serve_step_cost *out)
{
    struct device_map map = {.n = g->prompt.n_devices};
    for (int d = 0; d < map.n; d++) map.ordinal[d] = c->ordinal ? c->ordinal[d] : d;
    struct exec_config x = {.m = c->m, .p = c->p, .g = g, .map = &map, .world = exec_world_single(),
                            .label = c->st->name, .profile = c->prof,
                            .allreduce = ALLREDUCE_NCCL};   /* serving has no --allreduce: NCCL's sums */
    void *state = NULL;
    int rc = model_executor_ops.create(&x, &state);
    struct trace t;
    trace_init(&t, g->prompt.n_devices);
    double ms = 0;
    if (rc == PB_OK) rc = model_executor_ops.run(state, 0, &t, &ms);
    if (state) model_executor_ops.destroy(state);
    if (rc == PB_OK) rc = serve_cost_from_trace(&t, ms, 0, out);
    trace_free(&t);
    return rc;
}

int serve_cost_model_step_exact(struct serve_cost_model *c, const struct serve_step_shape *shape,
                                struct serve_step_cost *out)
{
    /* One group is one microbatch: the pipeline's groups are the engine's, not the plan's. */
    struct workload w = {.batch = shape->batch, .seq = shape->seq, .context = shape->context,
                         .microbatches = 1, .mode = shape->mode, .dtype = c->dtype};
    struct program g;
    PB_TRY(program_plan(c->st, c->m, c->p, &w, 0, &g));
    int rc = cost_of_program(c, &g, out);
    program_free(&g);
    if (rc == PB_OK) c->evaluations++;
    return rc;
}

static uint64_t shape_hash(const struct serve_step_shape *k)
{
    uint64_t h = 1469598103934665603ull;
    int v[4] = {k->mode, k->batch, k->seq, k->context};
    for (int i = 0; i < 4; i++) h = (h ^ (uint64_t)(unsigned)v[i]) * 1099511628211ull;
    return h;
}

static int same_shape(const struct serve_step_shape *a, const struct serve_step_shape *b)
{
    return a->mode == b->mode && a->batch == b->batch && a->seq == b->seq && a->context == b->context;
}

static struct serve_cost_entry *slot_of(struct serve_cost_entry *table, int size, const struct serve_step_shape *k)
{
    for (uint64_t i = shape_hash(k) & (uint64_t)(size - 1);; i = (i + 1) & (uint64_t)(size - 1))
        if (!table[i].full || same_shape(&table[i].key, k)) return &table[i];
}

static int grow(struct serve_cost_model *c)
{
    int size = c->size ? 2 * c->size : 256;
    struct serve_cost_entry *t = calloc((size_t)size, sizeof *t);
    if (!t) return pb_fail("out of host memory for %d cached step costs", size);
    for (int i = 0; i < c->size; i++)
        if (c->table[i].full) *slot_of(t, size, &c->table[i].key) = c->table[i];
    free(c->table);
    c->table = t;
    c->size = size;
    return PB_OK;
}

int serve_cost_model_step(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out)
{
    struct serve_cost_model *c = ctx;
    struct serve_step_shape key = {.mode = shape->mode, .batch = shape->batch, .seq = serve_bucket(shape->seq),
                                   .context = serve_bucket(shape->context)};
    c->lookups++;
    if (2 * (c->used + 1) > c->size) PB_TRY(grow(c));
    struct serve_cost_entry *e = slot_of(c->table, c->size, &key);
    if (!e->full) {
        PB_TRY(serve_cost_model_step_exact(c, &key, &e->cost));
        e->key = key;
        e->full = 1;
        c->used++;
    }
    *out = e->cost;
    return PB_OK;
}

struct serve_executor serve_cost_model_executor(struct serve_cost_model *c)
{
    return (struct serve_executor){.ctx = c, .ordinal = c->ordinal, .step_cost = serve_cost_model_step};
}

int serve_kv_capacity(const struct model_spec *m, const struct placement *p, const struct machine *mc,
                      enum dtype dt, int64_t *tokens)
{
    uint64_t params[PB_MAX_DEVICES], cpu;
    placement_device_params(p, params, &cpu);
    int64_t best = -1;
    for (int d = 0; d < p->n_devices; d++) {
        uint64_t per_token = memory_kv_bytes_per_position(m, p, dt, d);
        if (!per_token) continue;
        if (params[d] >= mc->gpu_memory[d])
            return pb_fail("GPU %d: its %.2f GiB of weights leave no room for a KV cache in its %.2f GiB budget",
                           d, params[d] / 1073741824.0, mc->gpu_memory[d] / 1073741824.0);
        int64_t fit = (int64_t)((mc->gpu_memory[d] - params[d]) / per_token);
        if (best < 0 || fit < best) best = fit;
    }
    *tokens = best < 0 ? 0 : best;
    return PB_OK;
}
