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
#include "../run/split_pricing.h"
#include "../../strategies/memory_model.h"
#include "search_serve.h"

const char *const search_memory_counted = "peak";

static int refuse(struct search_row *row, const char *why)
{
    row->fits = 0;
    row->rank = 0;
    snprintf(row->reason, sizeof row->reason, "%s", why);
    return PB_ERR;
}

/* The fit check: the memory model's peak per GPU (weights, the KV cache of the prompt
 * and every generated token, activations, workspace, communication buffers) against
 * the budgets, as --simulate checks a point. */
static int fit_check(const struct search_problem *pb, const struct placement *p, const struct machine *mc,
                     const char *strategy, struct search_row *row)
{
    struct memory_shape shape = {.batch = pb->batch, .seq = pb->seq, .decode_tokens = pb->decode_tokens};
    struct memory_plan mp = {0};
    struct kv_capacity cap;
    int rc = memory_check_point(pb->m, p, pb->dtype, &shape, mc, strategy, &mp, &cap);
    row->n_memory = mp.n_devices;
    row->memory_max = 0;
    for (int d = 0; d < mp.n_devices; d++) {
        row->memory[d] = mp.gpu[d].peak;
        if (row->memory[d] > row->memory_max) row->memory_max = row->memory[d];
    }
    return rc;
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

/* The fixed batch: its prefill and every decode pass on the cost model. */
static int price_fixed(const struct search_problem *pb, const struct strategy *st, const struct placement *p,
                       const struct workload *w, struct search_row *row)
{
    struct trace *t = malloc(sizeof *t);
    if (!t) return pb_fail("out of host memory pricing it");
    struct point_result r;
    int rc = simulate_point(pb->prof, pb->m, st, p, w, pb->decode_tokens, &r, t);
    if (rc == PB_OK) {
        fill_time(pb, &r, row);
        point_result_free(&r);
        trace_free(t);
        if (!(row->latency_ms > 0)) rc = pb_fail("the cost model predicted no time for it");
    }
    free(t);
    return rc;
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
    /* optimal's split priced at the search's profile, as the sweep prices it */
    int rc = p ? place_priced(pb->prof, pb->m, st, &w, &mc, NULL, mc.gpus, p) : pb_fail("out of host memory placing it");
    if (rc == PB_OK) rc = fit_check(pb, p, &mc, st->name, row);
    if (rc == PB_OK) rc = pb->serve ? search_price_serving(pb, st, p, &mc, row) : price_fixed(pb, st, p, &w, row);
    free(p);
    if (rc != PB_OK) return refuse(row, pb_last_error());
    row->fits = 1;
    return PB_OK;
}

double search_objective_key(const struct search_row *row, enum search_objective objective)
{
    if (objective == OBJECTIVE_GOODPUT) return -row->goodput_rps;
    return objective == OBJECTIVE_THROUGHPUT ? -row->machine_tokens_per_s : row->latency_ms;
}
