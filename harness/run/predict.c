/* --predict: which shipped profile the cost model uses beside a measured run. The
 * prediction itself is the cost-model executor run on each point's very program
 * (sweep.c). */
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
