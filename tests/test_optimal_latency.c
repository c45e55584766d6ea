/* optimal on what users see: the least predicted latency at a device profile over
 * every contiguous split, priced by the cost model through struct split_pricing. */
#include <math.h>
#include "../base/check.h"
#include "../harness/exec/model/simulate.h"
#include "../harness/run/split_pricing.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement placed, rival;

/* The cost model's latency of one pass of p's schedule. */
static int predicted_ms(const struct device_profile *prof, const struct model_spec *m, const struct strategy *st,
                        const struct placement *p, const struct workload *w, double *ms)
{
    struct schedule s;
    PB_TRY(schedule_plan(st, m, p, w, &s));
    struct trace t;
    int rc = simulate_schedule(prof, m, &s, 1, &t, ms);
    schedule_free(&s);
    if (rc == PB_OK) trace_free(&t);
    return rc;
}

static void machine_of(struct machine *mc, int gpus, uint64_t each)
{
    memset(mc, 0, sizeof *mc);
    mc->gpus = gpus;
    for (int d = 0; d < gpus; d++) mc->gpu_memory[d] = each;
    mc->cpu_memory = 512 * GIB;
    mc->budgets_from_user = 1;
}

/* optimal placed with the cost model's prices; its predicted latency. */
static int optimal_ms(const struct device_profile *prof, const struct model_spec *m, const struct workload *w,
                      const struct machine *mc, double *ms)
{
    const struct strategy *st = strategy_find("optimal");
    struct split_pricer pricer;
    PB_TRY(split_pricer_init(&pricer, prof, m, st, w, NULL, mc->gpus));
    struct machine priced = *mc;
    priced.pricing = &pricer.ops;
    int rc = st->place(m, w, &priced, &placed);
    split_pricer_free(&pricer);
    return rc == PB_OK ? predicted_ms(prof, m, st, &placed, w, ms) : rc;
}

/* The h200 profile and a shipped model. */
static int h200_and(const char *model, struct device_profile *prof, struct model_spec *m)
{
    PB_TRY(device_profile_load("h200", prof));
    return model_spec_load(model, m);
}

TEST(test_optimal_has_the_least_predicted_latency_of_every_contiguous_split)
{
    struct device_profile prof;
    struct model_spec m;
    CHECK_EQ_INT(h200_and("models/tinyllama-1.1b.json", &prof, &m), PB_OK);
    struct workload w = {.batch = 4, .seq = 256, .context = 256, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc;
    machine_of(&mc, 3, GIB * 9 / 10);   /* 2.2 GB of weights: no two GPUs hold them all */
    double best_ms;
    CHECK_EQ_INT(optimal_ms(&prof, &m, &w, &mc, &best_ms), PB_OK);
    const struct strategy *st = strategy_find("optimal");
    int n = placed.n_modules, tried = 0;
    double least = INFINITY;
    for (int a = 1; a <= n; a++)
        for (int b = a; b <= n; b++) {
            placement_init(&rival, &m, w.dtype, 3);
            for (int i = 0; i < n; i++) rival.device[i] = i < a ? 0 : i < b ? 1 : 2;
            uint64_t params[PB_MAX_DEVICES], cpu;
            placement_device_params(&rival, params, &cpu);
            if (params[0] > mc.gpu_memory[0] || params[1] > mc.gpu_memory[1] || params[2] > mc.gpu_memory[2])
                continue;   /* as optimal's budget check: parameters within each GPU's */
            double ms;
            if (predicted_ms(&prof, &m, st, &rival, &w, &ms) != PB_OK) continue;
            tried++;
            if (ms < least) least = ms;
        }
    CHECK(tried > 10);
    CHECK_NEAR(best_ms, least, 1e-9 * least);
}

/* A sequential pass runs one stage at a time: a model that fits on one GPU is fastest
 * there (no copies), which is what optimal picks on 8 H200s; auto's split costs copies. */
TEST(test_optimal_keeps_a_model_that_fits_on_one_gpu_there)
{
    struct device_profile prof;
    struct model_spec m;
    CHECK_EQ_INT(h200_and("models/llama-2-7b.json", &prof, &m), PB_OK);
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc;
    machine_of(&mc, 8, prof.memory_bytes);
    double ms, auto_ms;
    CHECK_EQ_INT(optimal_ms(&prof, &m, &w, &mc, &ms), PB_OK);
    for (int i = 0; i < placed.n_modules; i++) CHECK_EQ_INT(placed.device[i], 0);
    const struct strategy *a = strategy_find("auto");
    CHECK_EQ_INT(a->place(&m, &w, &mc, &rival), PB_OK);
    CHECK_EQ_INT(predicted_ms(&prof, &m, a, &rival, &w, &auto_ms), PB_OK);
    CHECK(ms < auto_ms);
}

/* Over models x GPU counts x workloads x budgets (the GPUs' memory, and budgets that
 * force a split): optimal's predicted latency is never above naive's or auto's. */
TEST(test_optimal_is_never_slower_than_naive_or_auto_in_predicted_latency)
{
    const char *models[] = {"models/llama-2-7b.json", "models/tinyllama-1.1b.json", "models/llama-3-8b.json",
                            "models/llama-2-70b.json"};
    int gpus[] = {2, 4, 8};
    struct workload ws[] = {{.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16},
                            {.batch = 1, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16}};
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    int compared = 0;
    for (int mi = 0; mi < 4; mi++) {
        struct model_spec m;
        CHECK_EQ_INT(model_spec_load(models[mi], &m), PB_OK);
        placement_init(&rival, &m, DTYPE_BF16, 1);
        uint64_t total = 0;
        for (int i = 0; i < rival.n_modules; i++) total += rival.modules[i].param_bytes;
        for (int gi = 0; gi < 3; gi++)
            for (int wi = 0; wi < 2; wi++)
                for (int tight = 0; tight < 2; tight++) {
                    struct machine mc;
                    /* tight: room for 1.3x an even share of the weights on each GPU */
                    machine_of(&mc, gpus[gi], tight ? (uint64_t)(1.3 * total / gpus[gi]) : prof.memory_bytes);
                    double best;
                    if (optimal_ms(&prof, &m, &ws[wi], &mc, &best) != PB_OK) continue;   /* 70B on 2 */
                    const char *rivals[] = {"naive", "auto"};
                    for (int r = 0; r < 2; r++) {
                        const struct strategy *st = strategy_find(rivals[r]);
                        double theirs;
                        if (st->place(&m, &ws[wi], &mc, &rival) != PB_OK) continue;
                        if (predicted_ms(&prof, &m, st, &rival, &ws[wi], &theirs) != PB_OK) continue;
                        CHECK(best <= theirs * (1 + 1e-9));
                        compared++;
                    }
                }
    }
    CHECK(compared > 40);
}
