/* A growable array of activity records; what the CUPTI collector or the cost
 * model fills and what metrics, trace.json and the reports read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "trace.h"

void trace_init(struct trace *t, int n_devices)
{
    memset(t, 0, sizeof *t);
    t->n_devices = n_devices;
    /* Busy time is known until a collector says otherwise: the cost model
     * always knows it, and the CUDA run clears it when CUPTI is unavailable. */
    t->busy_known = 1;
}

void trace_free(struct trace *t)
{
    free(t->rec);
    free(t->totals);
    t->rec = NULL;
    t->totals = NULL;
    t->n = t->cap = t->n_totals = 0;
    t->sample = (struct trace_sample){0};
}

int trace_add(struct trace *t, const struct record *r)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 1024;
        struct record *grown = realloc(t->rec, (size_t)cap * sizeof *grown);
        if (!grown)
            return pb_fail("out of host memory for %d trace records; run fewer --iters", cap);
        t->rec = grown;
        t->cap = cap;
    }
    t->rec[t->n++] = *r;
    return PB_OK;
}

int trace_add_totals(struct trace *t, const struct activity_totals *a)
{
    struct activity_totals *grown = realloc(t->totals, ((size_t)t->n_totals + 1) * sizeof *grown);
    if (!grown) return pb_fail("out of host memory for the totals of iteration %d", a->iteration);
    t->totals = grown;
    t->totals[t->n_totals++] = *a;
    return PB_OK;
}

const struct activity_totals *trace_totals_of(const struct trace *t, int iteration)
{
    for (int i = 0; i < t->n_totals; i++)
        if (t->totals[i].iteration == iteration) return &t->totals[i];
    return NULL;
}

int trace_sample_describe(const struct trace *t, char *buf, size_t n)
{
    const struct trace_sample *s = &t->sample;
    if (n) buf[0] = 0;
    if (s->passes == 0 || s->n_shown >= s->passes) return 0;
    /* Pass 0 is the prompt; the decode passes are numbered 1..passes-1 as tokens. */
    size_t k = 0;
    int decode = 0;
    k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "%sdecode passes ",
                          s->n_shown && s->shown[0] == 0 ? "the prompt pass and " : "");
    for (int i = 0; i < s->n_shown; i++) {
        if (s->shown[i] == 0) continue;
        k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "%s%d", decode++ ? ", " : "", s->shown[i]);
    }
    snprintf(buf + k, k < n ? n - k : 0, " of %d shown; totals cover all", s->passes - 1);
    return 1;
}
