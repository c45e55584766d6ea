/* The empty world of a single process: every rank-wide call is a pass-through. */
#include "executor.h"

static int single_agree(const struct exec_world *w, int rc, const char *phase)
{
    (void)w;
    (void)phase;
    return rc;
}

static int single_max(const struct exec_world *w, double *v, const char *phase)
{
    (void)w;
    (void)v;
    (void)phase;
    return PB_OK;
}

static int single_to_rank0(const struct exec_world *w, int from, void *buf, size_t n, const char *what)
{
    (void)w;
    (void)buf;
    (void)n;
    return from == 0 ? PB_OK : pb_fail("%s: rank %d in a one-process world", what, from);
}

static int single_gather(const struct exec_world *w, const struct trace *local, struct trace *merged)
{
    (void)w;
    for (int i = 0; i < local->n; i++) PB_TRY(trace_add(merged, &local->rec[i]));
    merged->busy_known = local->busy_known;
    merged->dropped += local->dropped;
    return PB_OK;
}

const struct exec_world *exec_world_single(void)
{
    static const struct exec_world single = {.rank = 0, .size = 1, .agree = single_agree, .max = single_max,
                                             .to_rank0 = single_to_rank0, .gather = single_gather};
    return &single;
}
