/* bench --serve --simulate: for every strategy, place the model once, then serve
 * the same request stream at every offered rate on the cost model, and report
 * serve.csv, serve.json, requests.csv, serve.svg (and explain.txt). */
#ifndef PB_SERVE_RUN_H
#define PB_SERVE_RUN_H
#include <stdint.h>
#include "../../base/check.h"
#include "../cli/options.h"
#include "serve_metrics.h"

/* One strategy at one offered rate. */
struct serve_point {
    char strategy[PB_STRATEGY_NAME_LEN];
    double rate;                          /* offered requests/s; INFINITY = all at 0 */
    int ok;                               /* 0: not served, see reason */
    char reason[PB_ERROR_LEN];
    char placement_summary[256];
    int n_devices, groups, max_batch;
    int64_t kv_capacity_tokens;
    struct serve_slo slo;                 /* INFINITY: no limit */
    struct serve_point_metrics met;
    struct serve_totals tot;
    struct serve_request_result *res;     /* owned, n requests */
    int n_res;
    long cost_lookups, cost_evaluations;  /* steps costed; schedules actually replayed */
    double decode_step_ms;                /* a decode step at the point's mean batch and context */
    double prefill_step_ms;               /* a prefill of one mean-length prompt */
};

int serve_run(const struct options *o, const struct model_spec *m);
void serve_point_free(struct serve_point *p);
/* Mean over devices of busy / span (0..1); NAN if the point has none. */
double serve_point_utilisation(const struct serve_point *p, int device);
#endif
