/* --predict: every measured point replayed on the cost model with the same
 * placement and workload, so the table shows predicted beside measured. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "predict.h"
#include "simulate_run.h"

const char *predict_profile_for_gpu(const char *gpu_name)
{
    static const struct {
        const char *marker, *profile;
    } known[] = {{"H200", "h200"}, {"H100", "h100"}, {"A100", "a100"}, {"L40S", "l40s"}, {"4090", "rtx4090"}};
    for (size_t i = 0; gpu_name && i < sizeof known / sizeof known[0]; i++)
        if (strstr(gpu_name, known[i].marker)) return known[i].profile;
    return NULL;
}

struct allreduce_table predict_allreduce_table(enum allreduce_algo algo, const char *gpu_name)
{
    struct allreduce_table t = {0};
    const char *name = predict_profile_for_gpu(gpu_name);
    static struct device_profile prof;   /* large */
    if (algo != ALLREDUCE_AUTO || !name || device_profile_load(name, &prof) != PB_OK) return t;
    t = device_profile_allreduce_table(&prof);
    if (t.known)
        fprintf(stderr, "bench: --allreduce auto: one-shot up to %llu bytes, two-shot up to %llu, NCCL above "
                        "(profile %s)\n", (unsigned long long)t.oneshot_max_bytes,
                (unsigned long long)t.twoshot_max_bytes, prof.name);
    return t;
}

void predict_point(const struct device_profile *prof, const struct model_spec *m, struct point_result *r)
{
    r->predicted_ms = r->prediction_error_pct = NAN;
    const struct strategy *st = strategy_find(r->strategy);
    if (!r->ok || !r->placement || !st) return;
    struct point_result pred;
    struct trace t;
    /* The measured run's ordinals: logical devices on one GPU share it (--devices 0,0). */
    if (simulate_point_on(prof, m, st, r->placement, &r->w, r->decode_tokens, r->ordinal, r->allreduce, &pred, &t) != PB_OK) {
        fprintf(stderr, "bench: note: %s: no prediction (%s)\n", r->strategy, pb_last_error());
        return;
    }
    r->predicted_ms = pred.p50_ms;
    if (r->p50_ms > 0) r->prediction_error_pct = (pred.p50_ms - r->p50_ms) / r->p50_ms * 100;
    point_result_free(&pred);
    trace_free(&t);
}
