/* Prices one configuration: placement and fit through the strategy, the time
 * through simulate_point (harness/run/simulate_run.h): the sweep's one point
 * (sweep_point_run) driven through the cost model's executor, as --simulate drives
 * every point, so a search row and a --simulate row of the same configuration agree. */
#include "search_price.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../run/run.h"
#include "../run/simulate_run.h"
#include "search_serve.h"

const char *const search_memory_counted = "parameters";

static int refuse(struct search_row *row, const char *why)
{
    row->fits = 0;
    row->rank = 0;
    snprintf(row->reason, sizeof row->reason, "%s", why);
    return PB_ERR;
}

/* Bytes per GPU of a placement: what placement_check_memory (called by every
 * strategy's place) held against the budgets, parameters as placed. */
static void fill_memory(const struct placement *p, struct search_row *row)
{
    uint64_t cpu;
    placement_device_params(p, row->memory, &cpu);
    row->n_memory = p->n_devices;
    row->memory_max = 0;
    for (int d = 0; d < p->n_devices; d++)
        if (row->memory[d] > row->memory_max) row->memory_max = row->memory[d];
}

static void fill_time(const struct search_problem *pb, const struct point_result *r, struct search_row *row)
{
    row->latency_ms = r->p50_ms;
    row->tokens_per_s = r->tokens_per_s;
    row->replicas = pb->gpus / row->c.gpus;
    row->machine_tokens_per_s = row->replicas * r->tokens_per_s;
    row->c.stages = r->stages;
    if (r->microbatches > 0) row->c.microbatches = r->microbatches;
    double idle = 0;
    for (int d = 0; d < r->metrics.n_devices; d++) {
        const struct gpu_metrics *g = &r->metrics.gpu[d];
        if (g->compute_ms > row->compute_ms_max) row->compute_ms_max = g->compute_ms;
        if (g->comm_ms + g->copy_ms > row->moved_ms_max) row->moved_ms_max = g->comm_ms + g->copy_ms;
        idle += g->idle_ms;
    }
    row->idle_ms_mean = r->metrics.n_devices ? idle / r->metrics.n_devices : NAN;
    row->gpipe_bound = r->gpipe_bound;
    row->bubble_max = NAN;
    for (int s = 0; !isnan(r->gpipe_bound) && s < r->stages; s++)
        if (isnan(row->bubble_max) || r->bubble[s] > row->bubble_max) row->bubble_max = r->bubble[s];
}

int search_price(const struct search_problem *pb, const struct search_config *c, int index,
                 struct search_row *row)
{
    memset(row, 0, sizeof *row);
    row->c = *c;
    row->index = index;
    row->latency_ms = row->tokens_per_s = row->machine_tokens_per_s = row->goodput_rps = NAN;
    row->idle_ms_mean = row->bubble_max = row->gpipe_bound = row->measured_ms = NAN;
    const struct strategy *st = strategy_find(c->strategy);
    if (!st) return refuse(row, "no such strategy in the registry");
    struct machine mc = pb->mc;
    mc.gpus = c->gpus;
    mc.tp = strcmp(c->strategy, "hybrid") ? 0 : c->tp;
    mc.virtual_stages = c->virtual_stages;
    struct workload w = {.batch = pb->batch, .seq = pb->seq, .context = pb->seq,
                         .microbatches = st->takes_microbatches ? c->microbatches : 0,
                         .mode = MODE_PREFILL, .dtype = pb->dtype};
    struct placement *p = malloc(sizeof *p);
    struct trace *t = malloc(sizeof *t);
    if (!p || !t) {
        free(p);
        free(t);
        return refuse(row, "out of host memory placing it");
    }
    int rc = st->place(pb->m, &w, &mc, p);
    if (rc == PB_OK) fill_memory(p, row);
    if (rc == PB_OK && pb->serve) {
        rc = search_price_serving(pb, st, p, &mc, row);
        free(p);
        free(t);
        if (rc != PB_OK) return refuse(row, pb_last_error());
        row->fits = 1;
        return PB_OK;
    }
    struct point_result r;
    if (rc == PB_OK) rc = simulate_point(pb->prof, pb->m, st, p, &w, pb->decode_tokens, &r, t);
    free(p);
    if (rc != PB_OK) {
        free(t);
        return refuse(row, pb_last_error());
    }
    fill_time(pb, &r, row);
    point_result_free(&r);
    trace_free(t);
    free(t);
    if (!(row->latency_ms > 0)) return refuse(row, "the cost model predicted no time for it");
    row->fits = 1;
    return PB_OK;
}

double search_objective_key(const struct search_row *row, enum search_objective objective)
{
    if (objective == OBJECTIVE_GOODPUT) return -row->goodput_rps;
    return objective == OBJECTIVE_THROUGHPUT ? -row->machine_tokens_per_s : row->latency_ms;
}
