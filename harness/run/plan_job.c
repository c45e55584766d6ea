/* --plan: the one sweep (sweep.c) with no executor: every point placed and planned,
 * its work priced at a device profile's roofline, printed, and written as plan.json
 * and plan.csv. No GPU involved. */
#include <stdio.h>
#include "../../base/check.h"
#include "plan.h"
#include "sweep.h"

int plan_run(const struct options *o, const struct model_spec *m, const char *dir, const char *detected_gpu)
{
    static struct device_profile prof;   /* large; read-only once loaded */
    const char *why;
    PB_TRY(device_profile_load(plan_profile_name(o, detected_gpu, &why), &prof));
    static struct sweep s;
    s = (struct sweep){.o = o, .m = m, .mc = o->machine, .profile = &prof, .world = exec_world_single()};
    s.map.n = o->machine.gpus;
    for (int d = 0; d < s.map.n && d < PB_MAX_DEVICES; d++)
        s.map.ordinal[d] = d < o->n_devices_listed ? o->devices[d] : d;
    printf("plan: %s on %d GPU(s), %s\n*ms: roofline time of each GPU's modules, max(FLOPs / %.0f TFLOP/s, "
           "bytes / %.0f GB/s): device profile %s (%s; %s)\n\n", m->name, o->machine.gpus, dtype_name(o->dtype),
           prof.bf16_tflops, prof.hbm_gbps, prof.name, prof.gpu, why);
    struct sweep_out out;
    PB_TRY(sweep_run(&s, &out));
    int status = plan_write(dir, o, m, &prof, out.plans, out.n);
    int failed = out.failed, n = out.n;
    sweep_out_free(&out);
    if (status == PB_OK && failed)
        return pb_fail("%d of %d plans were not possible (reasons above and in plan.json)", failed, n);
    return status;
}
