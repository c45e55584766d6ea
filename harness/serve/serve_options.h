/* What the command line decides for bench --serve: the request stream (how many,
 * at which rates, how long their prompts and outputs are), the batching limit and
 * the service-level objective. Parsed by serve_cli.c; docs/METRICS.md, "Serving". */
#ifndef PB_SERVE_OPTIONS_H
#define PB_SERVE_OPTIONS_H

#include "../../base/limits.h"

#define SERVE_MAX_RATES PB_MAX_LIST

enum length_kind { LENGTH_UNSET, LENGTH_FIXED, LENGTH_UNIFORM, LENGTH_FILE };

/* --prompt-len / --output-len: "N", "uniform:A-B" (inclusive) or "file:PATH.csv". */
struct length_spec {
    enum length_kind kind;
    int fixed;               /* LENGTH_FIXED */
    int lo, hi;              /* LENGTH_UNIFORM, lo <= hi */
    const char *path;        /* LENGTH_FILE: the argument's PATH (points into argv) */
    int *values;             /* LENGTH_FILE: one per row, read when the options are checked */
    int n_values;
};

struct serve_options {
    int enabled;                       /* --serve */
    int any_flag;                      /* a serving flag was given (refused without --serve) */
    int requests;                      /* --requests N; 0 until resolved (default 256) */
    double rates[SERVE_MAX_RATES];     /* --rate LIST, requests/s; INFINITY = all at t = 0 */
    int n_rates;
    struct length_spec prompt, output;
    int max_batch;                     /* --max-batch: sequences in flight; 0 until resolved */
    double slo_ttft_ms, slo_tpot_ms;   /* --slo; INFINITY where no limit was set */
    int slo_given;
};
#endif
