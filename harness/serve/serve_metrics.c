#include "serve_metrics.h"
#include <math.h>
#include <stdlib.h>
#include "../../base/check.h"
#include "../measure/metrics.h"

double serve_ttft_ms(const struct serve_request_result *r)
{
    return r->status == SERVE_DONE ? r->first_token_ms - r->req.arrival_ms : NAN;
}

double serve_tpot_ms(const struct serve_request_result *r)
{
    if (r->status != SERVE_DONE || r->req.output_tokens < 2) return NAN;
    return (r->finish_ms - r->first_token_ms) / (r->req.output_tokens - 1);
}

double serve_e2e_ms(const struct serve_request_result *r)
{
    return r->status == SERVE_DONE ? r->finish_ms - r->req.arrival_ms : NAN;
}

int serve_meets_slo(const struct serve_request_result *r, const struct serve_slo *slo)
{
    if (r->status != SERVE_DONE || !(serve_ttft_ms(r) <= slo->ttft_ms)) return 0;
    return r->req.output_tokens < 2 || serve_tpot_ms(r) <= slo->tpot_ms;
}

int serve_metrics_compute(const struct serve_request_result *r, int n, const struct serve_slo *slo, int slo_given,
                          struct serve_point_metrics *out)
{
    *out = (struct serve_point_metrics){.requests = n};
    long gaps = 0;
    for (int i = 0; i < n; i++)
        if (r[i].status == SERVE_DONE) gaps += r[i].req.output_tokens - 1;
    double *ttft = malloc(((size_t)n + 1) * sizeof *ttft), *tpot = malloc(((size_t)n + 1) * sizeof *tpot);
    double *e2e = malloc(((size_t)n + 1) * sizeof *e2e), *itl = malloc(((size_t)gaps + 1) * sizeof *itl);
    int rc = ttft && tpot && e2e && itl ? PB_OK : pb_fail("out of host memory for %d requests' metrics", n);
    int n_tpot = 0, n_itl = 0;
    double first = INFINITY, last = -INFINITY, tokens = 0;
    for (int i = 0; rc == PB_OK && i < n; i++) {
        const struct serve_request_result *q = &r[i];
        if (q->status != SERVE_DONE) {
            out->refused++;
            continue;
        }
        ttft[out->completed] = serve_ttft_ms(q);
        e2e[out->completed++] = serve_e2e_ms(q);
        if (q->req.output_tokens > 1) tpot[n_tpot++] = serve_tpot_ms(q);
        for (int k = 1; k < q->req.output_tokens; k++) itl[n_itl++] = q->token_ms[k] - q->token_ms[k - 1];
        out->met_slo += slo_given && serve_meets_slo(q, slo);
        tokens += q->req.output_tokens;
        first = fmin(first, q->req.arrival_ms);
        last = fmax(last, q->finish_ms);
    }
    if (rc == PB_OK) {
        out->ttft_p50_ms = metrics_percentile(ttft, out->completed, 50);
        out->ttft_p90_ms = metrics_percentile(ttft, out->completed, 90);
        out->ttft_p99_ms = metrics_percentile(ttft, out->completed, 99);
        out->tpot_p50_ms = metrics_percentile(tpot, n_tpot, 50);
        out->tpot_p99_ms = metrics_percentile(tpot, n_tpot, 99);
        out->itl_p50_ms = metrics_percentile(itl, n_itl, 50);
        out->itl_p99_ms = metrics_percentile(itl, n_itl, 99);
        out->e2e_p50_ms = metrics_percentile(e2e, out->completed, 50);
        out->e2e_p99_ms = metrics_percentile(e2e, out->completed, 99);
        out->span_ms = out->completed ? last - first : NAN;
        double s = out->span_ms / 1e3;
        out->requests_per_s = s > 0 ? out->completed / s : NAN;
        out->output_tokens_per_s = s > 0 ? tokens / s : NAN;
        out->goodput_requests_per_s = slo_given && s > 0 ? out->met_slo / s : NAN;
    }
    free(ttft);
    free(tpot);
    free(e2e);
    free(itl);
    return rc;
}
