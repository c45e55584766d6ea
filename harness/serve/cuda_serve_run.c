/* bench --serve on GPUs: the logical devices (--devices, else --gpus or every
 * visible GPU), their free memory as the budgets, CUPTI for per-GPU busy time,
 * then serve_run_on with the CUDA executor: the same streams, policy and reports
 * as --serve --simulate, every step run and timed on the GPUs. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>
#include "../measure/cupti.h"
#include "../run/predict.h"
#include "../run/run.h"
#include "serve_run.h"

static void describe_devices(const struct device_map *map, const char *name, char *buf, size_t len)
{
    int distinct = 0;
    for (int d = 0; d < map->n; d++) {
        int seen = 0;
        for (int k = 0; k < d; k++) seen |= map->ordinal[k] == map->ordinal[d];
        distinct += !seen;
    }
    snprintf(buf, len, "%d logical device%s on %d x %.80s", map->n, map->n == 1 ? "" : "s", distinct, name);
}

int serve_measured_run(const struct options *o, const struct model_spec *m)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return pb_fail("--serve without --simulate runs on GPUs, and none was found (%s); add --simulate for "
                       "the cost model's prediction", err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA devices");
    static struct serve_target t;
    t = (struct serve_target){.ops = &cuda_executor_ops, .weights = o->weights};
    t.map.n = o->n_devices_listed ? o->n_devices_listed : (o->gpus ? o->gpus : count);
    for (int d = 0; d < t.map.n; d++) {
        t.map.ordinal[d] = o->n_devices_listed ? o->devices[d] : d;
        if (t.map.ordinal[d] >= count) return pb_fail("GPU %d does not exist (%d visible)", t.map.ordinal[d], count);
    }
    PB_TRY(run_gpu_budgets(o, t.map.ordinal, t.map.n, &t.mc));
    struct cudaDeviceProp prop;
    char name[128] = "GPU";
    if (cudaGetDeviceProperties(&prop, t.map.ordinal[0]) == cudaSuccess) snprintf(name, sizeof name, "%.100s", prop.name);
    describe_devices(&t.map, name, t.device, sizeof t.device);
    t.allreduce_table = predict_allreduce_table(o->allreduce, name);
    char note[256] = "";
    cupti_set_detail(o->profile_steps);
    t.records = !o->no_cupti && cupti_start(note, sizeof note) == PB_OK;
    if (!o->no_cupti && !t.records)
        fprintf(stderr, "bench: warning: %s; step times from CUDA events only, per-GPU busy time unknown\n", note);
    int rc = serve_run_on(o, m, &t);
    if (t.records) cupti_stop();
    return rc;
}
