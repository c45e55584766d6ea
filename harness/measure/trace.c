/* A growable array of activity records; what the CUPTI collector or the cost
 * model fills and what metrics, trace.json and the reports read. */
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
    t->rec = NULL;
    t->n = t->cap = 0;
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
