/* The measure optimal minimises and the reports print: a module's time on a
 * nominal GPU by the roofline, max(FLOPs / rate, bytes / bandwidth). The nominal
 * rates only weigh FLOPs against bytes; the split they choose does not depend on
 * their scale. */
#include "../base/check.h"
#include "strategy.h"

#define NOMINAL_FLOPS 800e12 /* bf16 dense, H100/H200 class (measured ~790-798 TFLOP/s) */
#define NOMINAL_BYTES 3.0e12 /* HBM bytes/s, H100 class */

double module_roofline(const struct model_spec *m, const struct module *mod, const struct workload *w,
                       double flops_per_s, double bytes_per_s)
{
    double f = module_flops(m, mod, w) / flops_per_s;
    double b = module_mem_bytes(m, mod, w) / bytes_per_s;
    return f > b ? f : b;
}

double module_work(const struct model_spec *m, const struct module *mod, const struct workload *w)
{
    return module_roofline(m, mod, w, NOMINAL_FLOPS, NOMINAL_BYTES);
}

double placement_device_work(const struct model_spec *m, const struct placement *p,
                             const struct workload *w, double *per_device)
{
    return placement_device_roofline(m, p, w, NOMINAL_FLOPS, NOMINAL_BYTES, per_device);
}

double placement_device_roofline(const struct model_spec *m, const struct placement *p, const struct workload *w,
                                 double flops_per_s, double bytes_per_s, double *per_device)
{
    for (int d = 0; d < p->n_devices; d++) per_device[d] = 0;
    double worst = 0;
    for (int i = 0; i < p->n_modules; i++) {
        int d = p->device[i];
        if (p->tensor_parallel) {
            for (int r = 0; r < p->tp_degree; r++)
                per_device[d * p->tp_degree + r] +=
                    module_roofline(m, &p->modules[i], w, flops_per_s, bytes_per_s) / p->tp_degree;
            continue;
        }
        per_device[placement_exec_device(d)] += module_roofline(m, &p->modules[i], w, flops_per_s, bytes_per_s);
    }
    for (int d = 0; d < p->n_devices; d++)
        if (per_device[d] > worst) worst = per_device[d];
    return worst;
}

void placement_device_params(const struct placement *p, uint64_t *per_device, uint64_t *cpu)
{
    for (int d = 0; d < p->n_devices; d++) per_device[d] = 0;
    *cpu = 0;
    int embed = -1;
    for (int i = 0; i < p->n_modules; i++)
        if (p->modules[i].kind == MODULE_EMBED) embed = i;
    for (int i = 0; i < p->n_modules; i++) {
        int d = p->device[i];
        if (p->tensor_parallel) {
            /* tp replicates the embedding table (see tp.c); everything else is split */
            const struct module *mod = &p->modules[i];
            uint64_t bytes = mod->param_bytes;
            /* A tied lm_head (no bytes of its own) on another group than the embedding
             * needs its own slice of the shared matrix. */
            if (mod->kind == MODULE_HEAD && !bytes && embed >= 0 && p->device[embed] != d)
                bytes = p->modules[embed].param_bytes;
            uint64_t share = mod->kind == MODULE_EMBED ? bytes : bytes / p->tp_degree;
            for (int r = 0; r < p->tp_degree; r++) per_device[d * p->tp_degree + r] += share;
        } else if (d == PB_DEVICE_CPU) {
            *cpu += p->modules[i].param_bytes;
        } else {
            per_device[d] += p->modules[i].param_bytes;
        }
    }
}

int placement_check_memory(const struct placement *p, const struct machine *mc, const char *strategy)
{
    uint64_t params[PB_MAX_DEVICES], cpu;
    placement_device_params(p, params, &cpu);
    for (int d = 0; d < p->n_devices; d++)
        if (params[d] > mc->gpu_memory[d])
            return pb_fail("%s: GPU %d would hold %.2f GiB of parameters but its budget is %.2f GiB; "
                           "use more GPUs, --max-memory, or auto (which offloads to cpu)",
                           strategy, d, params[d] / 1073741824.0, mc->gpu_memory[d] / 1073741824.0);
    return PB_OK;
}
