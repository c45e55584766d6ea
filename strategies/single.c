/* single: the whole model on one GPU, the baseline every strategy is compared with. */
#include "../base/check.h"
#include "strategy.h"

static int single_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                        struct placement *out)
{
    if (mc->gpus < 1) return pb_fail("single needs one GPU");
    placement_init(out, m, w->dtype, 1);
    for (int i = 0; i < out->n_modules; i++) out->device[i] = 0;
    return placement_check_memory(out, mc, "single");
}

const struct strategy single_strategy = {
    .name = "single",
    .help = "everything on GPU 0: the baseline",
    .place = single_place,
    .plan = plan_one_pass,
};
