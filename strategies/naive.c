/* naive: the hand split from the seed script: layers_per_gpu = L // N, layer i on
 * GPU min(i // layers_per_gpu, N-1), embeddings on GPU 0, norm and lm_head on the
 * last GPU (which therefore gets the remainder of the layers). */
#include "../base/check.h"
#include "strategy.h"

static int naive_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                       struct placement *out)
{
    int n = mc->gpus;
    if (n < 1) return pb_fail("naive needs at least one GPU");
    if (m->layers < n)
        return pb_fail("naive: %d layers over %d GPUs gives layers_per_gpu = %d // %d = 0, and the "
                       "script divides by it (ZeroDivisionError); use at most %d GPUs",
                       m->layers, n, m->layers, n, m->layers);
    int per = m->layers / n;
    placement_init(out, m, w->dtype, n);
    for (int i = 0; i < out->n_modules; i++) {
        const struct module *mod = &out->modules[i];
        switch (mod->kind) {
        case MODULE_EMBED:
        case MODULE_ROTARY: out->device[i] = 0; break;
        case MODULE_LAYER: out->device[i] = mod->layer / per < n - 1 ? mod->layer / per : n - 1; break;
        default: out->device[i] = n - 1; break;
        }
    }
    return placement_check_memory(out, mc, "naive");
}

const struct strategy naive_strategy = {
    .name = "naive",
    .help = "the seed script: L//N layers per GPU, remainder on the last, embed on 0, head on last",
    .place = naive_place,
    .plan = plan_one_pass,
};
