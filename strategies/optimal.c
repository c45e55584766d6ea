/* optimal: contiguous runs of modules per GPU, in execution order, chosen by an
 * exact dynamic program to minimise what users see: the schedule's predicted
 * latency at the run's device profile (machine.pricing, the harness's cost model),
 * within each GPU's memory budget. A sequential pass runs one stage at a time, so its
 * latency is the sum of its stages' times plus the copies between them; ties (splits
 * of equal latency) go to the one whose slowest stage is fastest. naive and auto are
 * contiguous splits too, so on that measure the optimum is never worse than either.
 * Without pricing, the stages' nominal work (module_work) with free copies.
 *
 * place_balanced_split, the pipeline's split, minimises the slowest GPU's nominal
 * work instead: a pipeline's throughput is its slowest stage. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include "../base/check.h"
#include "strategy.h"

struct split_problem {
    int n;                 /* modules */
    double prefix_work[PB_MAX_MODULES + 1];     /* nominal work, prefix sums */
    uint64_t prefix_bytes[PB_MAX_MODULES + 1];  /* parameter bytes, prefix sums */
    uint64_t tied_extra;   /* bytes a tied lm_head costs when apart from embed_tokens */
    int head;              /* index of lm_head */
};

static void split_problem_init(const struct model_spec *m, const struct workload *w, const struct placement *p,
                               struct split_problem *sp)
{
    sp->n = p->n_modules;
    sp->head = p->n_modules - 1;
    sp->tied_extra = m->tie_embeddings ? p->modules[0].param_bytes : 0;
    sp->prefix_work[0] = 0;
    sp->prefix_bytes[0] = 0;
    for (int i = 0; i < sp->n; i++) {
        sp->prefix_work[i + 1] = sp->prefix_work[i] + module_work(m, &p->modules[i], w);
        sp->prefix_bytes[i + 1] = sp->prefix_bytes[i] + p->modules[i].param_bytes;
    }
}

/* Bytes of modules [i, j) on one GPU; a tied lm_head away from the embedding
 * needs its own copy of the shared matrix. */
static uint64_t group_bytes(const struct split_problem *sp, int i, int j)
{
    uint64_t b = sp->prefix_bytes[j] - sp->prefix_bytes[i];
    if (sp->tied_extra && i > 0 && sp->head >= i && sp->head < j) b += sp->tied_extra;
    return b;
}

/* best[k][j]: least possible max work placing modules [0, j) on GPUs [0, k]. */
static int solve_balanced(const struct split_problem *sp, const struct machine *mc, int *cut)
{
    int n = sp->n, g = mc->gpus;
    double *best = malloc(sizeof(double) * (size_t)g * (n + 1));
    int *from = malloc(sizeof(int) * (size_t)g * (n + 1));
    if (!best || !from) {
        free(best);
        free(from);
        return pb_fail("out of host memory splitting %d modules", n);
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

static int does_not_fit(const struct model_spec *m, const struct machine *mc, const struct split_problem *sp,
                        const char *who)
{
    return pb_fail("%s: %s does not fit in the memory of %d GPU(s) as contiguous parts (%.2f GiB of "
                   "parameters); add GPUs, raise --max-memory, or use auto to offload to cpu", who, m->name,
                   mc->gpus, sp->prefix_bytes[sp->n] / 1073741824.0);
}

int place_balanced_split(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                         const char *who, struct placement *out)
{
    if (mc->gpus < 1) return pb_fail("%s needs at least one GPU", who);
    placement_init(out, m, w->dtype, mc->gpus);
    static struct split_problem sp;   /* large; strategies run one at a time */
    split_problem_init(m, w, out, &sp);
    int cut[PB_MAX_DEVICES];
    if (solve_balanced(&sp, mc, cut) != PB_OK) return does_not_fit(m, mc, &sp, who);
    for (int k = 0; k < mc->gpus; k++) {
        int end = k + 1 < mc->gpus ? cut[k + 1] : sp.n;
        for (int i = cut[k]; i < end; i++) out->device[i] = k;
    }
    return PB_OK;
}

/* ---- least latency ------------------------------------------------------------- */

struct latency_cell {
    double total;     /* stages and copies so far, ms */
    double slowest;   /* the slowest stage so far: the tie-break */
    int from_i, from_k;   /* the stage before: it ended at module from_i on GPU from_k (-1: none) */
    int set;
};

/* Lexicographic (total, slowest); totals within a relative 1e-9 count as equal, so a
 * tie of sums rounded differently still goes to balance. */
static int better(double total, double slowest, const struct latency_cell *c)
{
    if (!c->set) return 1;
    double tol = 1e-9 * fmax(fabs(total), fabs(c->total));
    if (total < c->total - tol) return 1;
    return total <= c->total + tol && slowest < c->slowest;
}

static int stage_cost(const struct split_problem *sp, const struct machine *mc, int i, int j, int k, double *ms)
{
    if (!mc->pricing) {
        *ms = (sp->prefix_work[j] - sp->prefix_work[i]) * 1e3;
        return PB_OK;
    }
    return mc->pricing->stage_ms(mc->pricing, i, j, k, ms);
}

static int copy_cost(const struct machine *mc, int at, int from, int to, double *ms)
{
    *ms = 0;
    return mc->pricing ? mc->pricing->copy_ms(mc->pricing, at, from, to, ms) : PB_OK;
}

#define NO_SPLIT_FITS 1   /* solve_latency: every split breaks a GPU's memory budget */

/* cell[k][j]: the best split of modules [0, j) whose last stage, ending at j, is on GPU
 * k. GPU 0 holds module 0; the GPUs after the last stage are left empty, and so may
 * any GPU between two stages. */
static int solve_latency(const struct split_problem *sp, const struct machine *mc, int *device)
{
    int n = sp->n, g = mc->gpus;
    struct latency_cell *cell = calloc((size_t)g * (n + 1), sizeof *cell);
    if (!cell) return pb_fail("out of host memory splitting %d modules", n);
    int rc = PB_OK;
    for (int k = 0; k < g && rc == PB_OK; k++)
        for (int j = 1; j <= n && rc == PB_OK; j++) {
            struct latency_cell *c = &cell[k * (n + 1) + j];
            for (int i = 0; i < j && rc == PB_OK; i++) {
                if ((i == 0) != (k == 0) || group_bytes(sp, i, j) > mc->gpu_memory[k]) continue;
                double stage;
                if ((rc = stage_cost(sp, mc, i, j, k, &stage)) != PB_OK) break;
                if (i == 0) {
                    if (better(stage, stage, c)) *c = (struct latency_cell){stage, stage, 0, -1, 1};
                    continue;
                }
                for (int kp = 0; kp < k && rc == PB_OK; kp++) {
                    const struct latency_cell *prev = &cell[kp * (n + 1) + i];
                    double copy;
                    if (!prev->set || (rc = copy_cost(mc, i, kp, k, &copy)) != PB_OK) continue;
                    double total = prev->total + copy + stage, slowest = fmax(prev->slowest, stage);
                    if (better(total, slowest, c)) *c = (struct latency_cell){total, slowest, i, kp, 1};
                }
            }
        }
    int last = -1;
    for (int k = 0; rc == PB_OK && k < g; k++) {
        const struct latency_cell *c = &cell[k * (n + 1) + n];
        if (c->set && (last < 0 || better(c->total, c->slowest, &cell[last * (n + 1) + n]))) last = k;
    }
    if (rc == PB_OK && last < 0) rc = NO_SPLIT_FITS;
    for (int k = last, j = n; rc == PB_OK && k >= 0;) {
        const struct latency_cell *c = &cell[k * (n + 1) + j];
        for (int x = c->from_i; x < j; x++) device[x] = k;
        j = c->from_i;
        k = c->from_k;
    }
    free(cell);
    return rc;
}

static int optimal_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                         struct placement *out)
{
    if (mc->gpus < 1) return pb_fail("optimal needs at least one GPU");
    placement_init(out, m, w->dtype, mc->gpus);
    static struct split_problem sp;   /* large; strategies run one at a time */
    split_problem_init(m, w, out, &sp);
    int device[PB_MAX_MODULES];
    int rc = solve_latency(&sp, mc, device);
    if (rc == NO_SPLIT_FITS) return does_not_fit(m, mc, &sp, "optimal");
    PB_TRY(rc);   /* pricing failed: its message stands */
    for (int i = 0; i < sp.n; i++) out->device[i] = device[i];
    return PB_OK;
}

const struct strategy optimal_strategy = {
    .name = "optimal",
    .help = "contiguous layers per GPU with the least predicted latency at the device profile (exact), within memory",
    .place = optimal_place,
    .plan = plan_one_pass,
};
