/* What the simulator's CPU tests share: a strategy's prefill schedule on equal GPUs,
 * and a schedule's simulated latency where the test needs no trace. */
#ifndef PB_TEST_SIM_FIXTURE_H
#define PB_TEST_SIM_FIXTURE_H
#include <math.h>
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/simulate.h"
#include "../strategies/strategy.h"
#include "test.h"

/* `strategy` placed and planned on `gpus` GPUs of 140 GiB (512 GiB of CPU memory) for a
 * batch x seq prefill in `microbatches` (0: the strategy's own choice). */
static inline int plan_prefill(const char *strategy, const struct model_spec *m, int gpus, int batch, int seq,
                               int microbatches, struct schedule *s)
{
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16,
                         .microbatches = microbatches};
    struct machine mc = {.gpus = gpus, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = (uint64_t)140 << 30;
    const struct strategy *st = strategy_find(strategy);
    if (!st) return pb_fail("no strategy %s", strategy);
    struct placement *p = (struct placement *)malloc(sizeof *p);
    if (!p) return PB_ERR;
    int rc = st->place(m, &w, &mc, p);
    if (rc == PB_OK) rc = st->plan(m, p, &w, s);
    free(p);
    return rc;
}

/* One iteration of s simulated (ms), device d on GPU ordinal[d] (NULL: each on its own);
 * a simulation that fails is a failed check and gives NaN, which no comparison passes. */
static inline double simulated_ms(int *failures_, const struct device_profile *prof, const struct model_spec *m,
                                  const struct schedule *s, const int *ordinal)
{
    struct trace t;
    double ms = NAN;
    int rc = simulate_schedule_on(prof, m, s, ordinal, 1, &t, &ms);
    CHECK_EQ_INT(rc, PB_OK);
    if (rc != PB_OK) return NAN;
    trace_free(&t);
    return ms;
}
#endif
