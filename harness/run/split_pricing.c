/* See split_pricing.h. A stage is priced inside a split of at most three parts (what
 * comes before it, the stage, what comes after), the only context a sequential step's
 * price depends on; the cost model runs a sequential pass one step after another, so
 * the stages' and copies' times add up to its latency. */
#include "split_pricing.h"

#include <math.h>
#include <stdlib.h>
#include "../../base/check.h"
#include "../exec/model/simulate.h"

/* Replay modules cut at cuts[0..n_cuts) (each part on its own device, part k on GPU
 * gpu[k]); *ms gets the time of the records `part` ran: its compute (copy = 0) or
 * the copy into it (copy = 1). */
static int replay_part(const struct split_pricer *x, const int *cuts, int n_cuts, const int *gpu, int part,
                       int copy, double *ms)
{
    static struct placement p;   /* large; pricing runs one split at a time */
    placement_init(&p, x->m, x->w.dtype, n_cuts + 1);
    for (int i = 0, k = 0; i < p.n_modules; i++) {
        while (k < n_cuts && i >= cuts[k]) k++;
        p.device[i] = k;
    }
    struct schedule s;
    PB_TRY(schedule_plan(x->st, x->m, &p, &x->w, &s));
    struct trace t;
    double latency = 0;
    int rc = simulate_schedule_on(x->prof, x->m, &s, gpu, 1, &t, &latency);
    schedule_free(&s);
    if (rc != PB_OK) return PB_ERR;
    double ns = 0;
    for (int i = 0; i < t.n; i++) {
        const struct record *r = &t.rec[i];
        int mine = copy ? r->kind == REC_MEMCPY && r->dst_device == part
                        : r->device == part && (r->kind == REC_KERNEL || r->kind == REC_COMM);
        if (mine) ns += (double)(r->end_ns - r->start_ns);
    }
    trace_free(&t);
    *ms = ns / 1e6;
    return PB_OK;
}

static int stage_ms(const struct split_pricing *sp, int first, int end, int device, double *ms)
{
    (void)device;   /* one profile prices every GPU alike */
    struct split_pricer *x = sp->ctx;
    double *cached = &x->stage[first * (x->n_modules + 1) + end];
    if (isnan(*cached)) {
        int cuts[2], n = 0, gpu[3] = {0, 1, 2};
        if (first > 0) cuts[n++] = first;
        if (end < x->n_modules) cuts[n++] = end;
        PB_TRY(replay_part(x, cuts, n, gpu, first > 0, 0, cached));
    }
    *ms = *cached;
    return PB_OK;
}

static int copy_ms(const struct split_pricing *sp, int at, int from, int to, double *ms)
{
    struct split_pricer *x = sp->ctx;
    int same = x->ordinal[from] == x->ordinal[to];
    double *cached = &x->copy[at * 2 + same];
    if (isnan(*cached)) {
        int gpu[2] = {0, same ? 0 : 1};
        PB_TRY(replay_part(x, &at, 1, gpu, 1, 1, cached));
    }
    *ms = *cached;
    return PB_OK;
}

int split_pricer_init(struct split_pricer *x, const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct workload *w, const int *ordinal, int n_devices)
{
    static struct placement p;   /* only for the module count */
    placement_init(&p, m, w->dtype, 1);
    *x = (struct split_pricer){.ops = {.stage_ms = stage_ms, .copy_ms = copy_ms, .ctx = x}, .prof = prof,
                               .m = m, .st = st, .w = *w, .n_modules = p.n_modules};
    for (int d = 0; d < PB_MAX_DEVICES; d++) x->ordinal[d] = ordinal && d < n_devices ? ordinal[d] : d;
    size_t n = (size_t)p.n_modules + 1;
    x->stage = malloc(n * n * sizeof *x->stage);
    x->copy = malloc(n * 2 * sizeof *x->copy);
    if (!x->stage || !x->copy) {
        split_pricer_free(x);
        return pb_fail("out of host memory pricing splits of %s", m->name);
    }
    for (size_t i = 0; i < n * n; i++) x->stage[i] = NAN;
    for (size_t i = 0; i < n * 2; i++) x->copy[i] = NAN;
    return PB_OK;
}

void split_pricer_free(struct split_pricer *x)
{
    free(x->stage);
    free(x->copy);
    x->stage = x->copy = NULL;
}

int place_priced(const struct device_profile *prof, const struct model_spec *m, const struct strategy *st,
                 const struct workload *w, const struct machine *mc, const int *ordinal, int n_devices,
                 struct placement *out)
{
    if (!prof) return st->place(m, w, mc, out);
    struct split_pricer pricer;
    PB_TRY(split_pricer_init(&pricer, prof, m, st, w, ordinal, n_devices));
    struct machine priced = *mc;
    priced.pricing = &pricer.ops;
    int rc = st->place(m, w, &priced, out);
    split_pricer_free(&pricer);
    return rc;
}
