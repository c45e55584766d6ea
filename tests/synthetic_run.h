/* A made-up 2-GPU run of the tiny model, built by hand so the pictures, the
 * explanation and report.html are tested on known numbers: single, naive, auto
 * (the same split as naive), pipeline with 2 and 4 microbatches, tp, and a failed
 * optimal point. Traces look like the executor's: kernels per step, a peer copy at
 * the GPU boundary, NCCL kernels for tp, three timed iterations. */
#ifndef PB_TEST_SYNTHETIC_RUN_H
#define PB_TEST_SYNTHETIC_RUN_H
#include "../harness/run/run.h"

#define SYN_POINTS 7

struct synthetic_run {
    struct model_spec m;
    struct options o;
    struct run_env env;
    int n;
    struct point_result r[SYN_POINTS];
    struct trace t[SYN_POINTS];
    const struct trace *traces[SYN_POINTS];
};

/* Fill s (the model is read from models/llama-tiny.json); 0 on success. */
int synthetic_run_make(struct synthetic_run *s);
void synthetic_run_free(struct synthetic_run *s);
/* summary.csv, summary.json and trace.json into dir, as run_measured writes them. */
int synthetic_run_write(const struct synthetic_run *s, const char *dir);
#endif
