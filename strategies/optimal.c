/* optimal: contiguous runs of modules per GPU, in execution order, chosen by an
 * exact dynamic program to minimise the slowest GPU's work (module_work) within
 * each GPU's memory budget. naive and auto are contiguous splits too, so the
 * optimum over all contiguous splits is never worse than either. */
#include <float.h>
#include <stdlib.h>
#include "../base/check.h"
#include "strategy.h"

struct split_problem {
    int n;                 /* modules */
    const double *prefix_work;    /* prefix sums, n + 1 */
    const uint64_t *prefix_bytes; /* prefix sums, n + 1 */
    uint64_t tied_extra;   /* bytes a tied lm_head costs when apart from embed_tokens */
    int head;              /* index of lm_head */
};

/* Bytes of modules [i, j) on one GPU; a tied lm_head away from the embedding
 * needs its own copy of the shared matrix. */
static uint64_t group_bytes(const struct split_problem *sp, int i, int j)
{
    uint64_t b = sp->prefix_bytes[j] - sp->prefix_bytes[i];
    if (sp->tied_extra && i > 0 && sp->head >= i && sp->head < j) b += sp->tied_extra;
    return b;
}

/* best[k][j]: least possible max work placing modules [0, j) on GPUs [0, k]. */
static int solve(const struct split_problem *sp, const struct machine *mc, int *cut)
{
    int n = sp->n, g = mc->gpus;
    double *best = malloc(sizeof(double) * (size_t)g * (n + 1));
    int *from = malloc(sizeof(int) * (size_t)g * (n + 1));
    if (!best || !from) {
        free(best);
        free(from);
        return pb_fail("optimal: out of host memory");
    }
    for (int k = 0; k < g; k++)
        for (int j = 0; j <= n; j++) {
            best[k * (n + 1) + j] = DBL_MAX;
            /* GPU 0 always starts at module 0; later GPUs may also be left empty. */
            for (int i = 0; i <= (k == 0 ? 0 : j); i++) {
                if (group_bytes(sp, i, j) > mc->gpu_memory[k]) continue;
                double prev = k == 0 ? 0 : best[(k - 1) * (n + 1) + i];
                if (prev == DBL_MAX) continue;
                double w = sp->prefix_work[j] - sp->prefix_work[i];
                double cost = prev > w ? prev : w;
                if (cost < best[k * (n + 1) + j]) {
                    best[k * (n + 1) + j] = cost;
                    from[k * (n + 1) + j] = i;
                }
            }
        }
    int ok = best[(g - 1) * (n + 1) + n] != DBL_MAX;
    for (int k = g - 1, j = n; ok && k >= 0; k--) {
        cut[k] = from[k * (n + 1) + j];
        j = cut[k];
    }
    free(best);
    free(from);
    return ok ? PB_OK : PB_ERR;
}

static int optimal_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                         struct placement *out)
{
    if (mc->gpus < 1) return pb_fail("optimal needs at least one GPU");
    placement_init(out, m, w->dtype, mc->gpus);
    int n = out->n_modules;
    double work[PB_MAX_MODULES + 1];
    uint64_t bytes[PB_MAX_MODULES + 1];
    struct split_problem sp = {.n = n, .prefix_work = work, .prefix_bytes = bytes, .head = n - 1};
    work[0] = 0;
    bytes[0] = 0;
    for (int i = 0; i < n; i++) {
        work[i + 1] = work[i] + module_work(m, &out->modules[i], w);
        bytes[i + 1] = bytes[i] + out->modules[i].param_bytes;
    }
    if (m->tie_embeddings) sp.tied_extra = out->modules[0].param_bytes;
    int cut[PB_MAX_DEVICES];
    if (solve(&sp, mc, cut) != PB_OK)
        return pb_fail("optimal: %s does not fit in the memory of %d GPU(s) as contiguous parts "
                       "(%.2f GiB of parameters); add GPUs, raise --max-memory, or use auto to "
                       "offload to cpu", m->name, mc->gpus, bytes[n] / 1073741824.0);
    for (int k = 0; k < mc->gpus; k++) {
        int end = k + 1 < mc->gpus ? cut[k + 1] : n;
        for (int i = cut[k]; i < end; i++) out->device[i] = k;
    }
    return PB_OK;
}

const struct strategy optimal_strategy = {
    .name = "optimal",
    .help = "contiguous layers per GPU minimising the slowest GPU's work (exact), within memory",
    .place = optimal_place,
    .plan = plan_one_pass,
};
