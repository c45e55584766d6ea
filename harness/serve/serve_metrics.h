/* Serving metrics of one point, from its requests' token times (docs/METRICS.md,
 * "Serving"): TTFT = first token - arrival; TPOT = (finish - first token) /
 * (output tokens - 1), for requests of 2 or more tokens; ITL = every gap between
 * a request's consecutive tokens, all requests pooled; E2E = finish - arrival.
 * Percentiles interpolate linearly between closest ranks (metrics_percentile).
 * Rates are over the point's span: first arrival to last finish. */
#ifndef PB_SERVE_METRICS_H
#define PB_SERVE_METRICS_H
#include "serve_engine.h"

struct serve_slo {
    double ttft_ms, tpot_ms;    /* INFINITY: no limit */
};

struct serve_point_metrics {
    int requests, completed, refused, met_slo;
    double ttft_p50_ms, ttft_p90_ms, ttft_p99_ms;
    double tpot_p50_ms, tpot_p99_ms;
    double itl_p50_ms, itl_p99_ms;
    double e2e_p50_ms, e2e_p99_ms;
    double span_ms;                   /* first arrival to last finish */
    double requests_per_s;            /* completed / span */
    double output_tokens_per_s;       /* output tokens of completed requests / span */
    double goodput_requests_per_s;    /* completed within the SLO / span; NAN without --slo */
};

double serve_ttft_ms(const struct serve_request_result *r);
/* NAN for a one-token request: it has no time per output token. */
double serve_tpot_ms(const struct serve_request_result *r);
double serve_e2e_ms(const struct serve_request_result *r);
/* Completed, TTFT <= slo.ttft and (one token, or TPOT <= slo.tpot). */
int serve_meets_slo(const struct serve_request_result *r, const struct serve_slo *slo);
/* slo_given = 0 leaves goodput NAN (unknown, not zero). */
int serve_metrics_compute(const struct serve_request_result *r, int n, const struct serve_slo *slo, int slo_given,
                          struct serve_point_metrics *out);
#endif
