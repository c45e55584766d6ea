/* --predict: which shipped profile the cost model uses beside a measured run. The
 * prediction itself is the cost-model executor run on each point's very program
 * (sweep.c). */
#include <stdio.h>
#include <string.h>
#include "predict.h"

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
