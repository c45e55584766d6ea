/* A configuration under a request stream, priced by serve's engine and cost model. */
#include "search_serve.h"
#include <math.h>
#include <stdlib.h>
#include "../serve/serve_cost.h"
#include "../serve/serve_metrics.h"

static void fill_serving(const struct serve_point_metrics *met, const struct serve_totals *tot, struct search_row *row)
{
    row->goodput_rps = met->goodput_requests_per_s;
    row->latency_ms = met->e2e_p99_ms;
    row->tokens_per_s = row->machine_tokens_per_s = met->output_tokens_per_s;
    row->replicas = 1;   /* one copy serves the stream; GPUs it leaves free stay free */
    double idle = 0;
    for (int d = 0; d < tot->n_devices; d++) {
        if (tot->compute_ms[d] > row->compute_ms_max) row->compute_ms_max = tot->compute_ms[d];
        if (tot->comm_ms[d] + tot->copy_ms[d] > row->moved_ms_max) row->moved_ms_max = tot->comm_ms[d] + tot->copy_ms[d];
        idle += met->span_ms - tot->busy_ms[d];
    }
    row->idle_ms_mean = tot->n_devices ? idle / tot->n_devices : NAN;
}

int search_price_serving(const struct search_problem *pb, const struct strategy *st, const struct placement *p,
                         const struct machine *mc, struct search_row *row)
{
    const struct serve_options *so = pb->serve;
    int64_t kv = 0;
    PB_TRY(serve_kv_capacity(pb->m, p, mc, pb->dtype, &kv));
    int groups = st->takes_microbatches ? row->c.microbatches : 1;
    struct serve_policy pol = {.max_batch = so->max_batch, .groups = groups < 1 ? 1 : groups,
                               .kv_capacity_tokens = kv, .max_context = pb->m->max_position};
    struct serve_request_result *res = calloc((size_t)so->requests, sizeof *res);
    if (!res) return pb_fail("out of host memory for %d request results", so->requests);
    struct serve_cost_model cost;
    serve_cost_model_init(&cost, pb->prof, pb->m, st, p, pb->dtype, NULL);
    struct serve_executor ex = serve_cost_model_executor(&cost);
    struct serve_totals tot;
    struct serve_point_metrics met;
    struct serve_slo slo = {so->slo_ttft_ms, so->slo_tpot_ms};
    int rc = serve_engine_run(&ex, &pol, pb->requests, so->requests, res, &tot);
    if (rc == PB_OK) rc = serve_metrics_compute(res, so->requests, &slo, so->slo_given, &met);
    if (rc == PB_OK) fill_serving(&met, &tot, row);
    int sd[PB_MAX_DEVICES];
    if (rc == PB_OK) row->c.stages = placement_stage_devices(p, sd);
    serve_results_free(res, so->requests);
    free(res);
    serve_cost_model_free(&cost);
    return rc;
}
