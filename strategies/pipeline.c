/* pipeline: optimal's stages, with the batch cut into m microbatches that flow
 * through them GPipe-style (forward only: inference has no backward wave). */
#include "../base/check.h"
#include "strategy.h"

extern const struct strategy optimal_strategy;

static int pipeline_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                          struct placement *out)
{
    return optimal_strategy.place(m, w, mc, out);
}

/* The default keeps every stage busy twice over: m = 2 x stages, capped by the batch. */
int pipeline_microbatches(const struct placement *p, const struct workload *w)
{
    if (w->microbatches > 0) return w->microbatches;
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int stages = placement_stages(p, sd, sf, sc);
    int m = 2 * (stages > 0 ? stages : 1);
    while (m > 1 && (m > w->batch || w->batch % m)) m--;
    return m;
}

static int pipeline_plan(const struct model_spec *m, const struct placement *p, const struct workload *w,
                         struct schedule *out)
{
    int mb = pipeline_microbatches(p, w);
    if (mb > w->batch)
        return pb_fail("pipeline: %d microbatches need a batch of at least %d sequences (batch is %d)",
                       mb, mb, w->batch);
    return plan_sequential(m, p, w, mb, out);
}

const struct strategy pipeline_strategy = {
    .name = "pipeline",
    .help = "optimal's stages running m microbatches at once, GPipe (--microbatches, default 2 x stages)",
    .place = pipeline_place,
    .plan = pipeline_plan,
    .takes_microbatches = 1,
};
