/* pipeline: the balanced split's stages (place_balanced_split), with the batch cut into m microbatches that flow
 * through them GPipe-style (forward only: inference has no backward wave). With
 * --virtual-stages V each GPU holds V chunks of layers instead of one run, chunk c
 * of GPU g being virtual stage c * N + g (Megatron-LM's interleaved schedule): the
 * pipeline fills V times faster, for V times as many copies. */
#include "../base/check.h"
#include "strategy.h"

static int interleaved_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                             struct placement *out)
{
    int v = mc->virtual_stages, n = mc->gpus, first[PB_MAX_LAYERS];
    if (n < 2)
        return pb_fail("pipeline: --virtual-stages %d needs at least 2 GPUs (chunks interleave across "
                       "stages)", v);
    PB_TRY(layer_chunks(m, w, v * n, first, "pipeline"));
    placement_init(out, m, w->dtype, n);
    out->virtual_stages = v;
    placement_assign_chunks(out, first, v * n, n);
    return placement_check_memory(out, mc, "pipeline");
}

static int pipeline_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                          struct placement *out)
{
    if (mc->virtual_stages > 1) return interleaved_place(m, w, mc, out);
    return place_balanced_split(m, w, mc, "pipeline", out);
}

/* The default keeps every stage busy twice over: m = 2 x stages, capped by the batch. */
int pipeline_microbatches(const struct placement *p, const struct workload *w)
{
    if (w->microbatches > 0) return w->microbatches;
    int sd[PB_MAX_DEVICES];
    int stages = placement_stage_devices(p, sd);
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
    if (p->virtual_stages > 1) return plan_interleaved(m, p, w, mb, out);
    return plan_sequential(m, p, w, mb, out);
}

const struct strategy pipeline_strategy = {
    .name = "pipeline",
    .help = "optimal's stages running m microbatches at once, GPipe (--microbatches, default 2 x stages; "
            "--virtual-stages V: V interleaved chunks per GPU)",
    .place = pipeline_place,
    .plan = pipeline_plan,
    .takes_microbatches = 1,
};
