/* hybrid: tensor parallel of degree D (--tp) inside each of N / D pipeline stages,
 * as Megatron-LM and vLLM combine them. Stage s is GPUs s*D .. s*D + D - 1; it holds
 * a contiguous run of layers balanced like pipeline's (or, with --virtual-stages V,
 * V interleaved chunks), each module sharded over its D GPUs as tp shards them:
 * embedding replicated on stage 0, norm and lm_head (split by vocabulary) on the
 * last stage. A stage's all-reduces span only its own ranks; between stages rank r
 * copies the (all-reduced, hence whole) activations to rank r of the next stage;
 * microbatches flow through the stages as in pipeline. */
#include <stdlib.h>
#include "../base/check.h"
#include "strategy.h"

/* Without --tp: pairs of GPUs where the count is even (2 x 2 on 4 GPUs, 4 x 2 on 8),
 * else one GPU per stage. */
static int default_degree(const struct model_spec *m, int gpus)
{
    char why[128];
    return gpus % 2 == 0 && !model_tp_split_check(m, 2, why, sizeof why) ? 2 : 1;
}

static int hybrid_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                        struct placement *out)
{
    int n = mc->gpus, d = mc->tp > 0 ? mc->tp : default_degree(m, n);
    int v = mc->virtual_stages > 1 ? mc->virtual_stages : 1, first[PB_MAX_LAYERS];
    if (n < 1) return pb_fail("hybrid needs at least one GPU");
    if (n % d)
        return pb_fail("hybrid: --tp %d does not divide --gpus %d into equal stages; use a degree that "
                       "divides %d", d, n, n);
    int stages = n / d;
    char why[128];
    if (model_tp_split_check(m, d, why, sizeof why))
        return pb_fail("hybrid: --tp %d does not divide %s of %s; use a degree that does", d, why, m->name);
    if (v > 1 && stages < 2)
        return pb_fail("hybrid: --virtual-stages %d needs at least 2 stages, but --tp %d on %d GPUs makes one",
                       v, d, n);
    if (stages * v > m->layers)
        return pb_fail("hybrid: %d stages x %d virtual stages = %d chunks of layers, but %s has %d layers; "
                       "use a larger --tp or fewer --virtual-stages", stages, v, stages * v, m->name, m->layers);
    PB_TRY(layer_chunks(m, w, stages * v, first, "hybrid"));
    placement_init(out, m, w->dtype, n);
    out->tensor_parallel = 1;
    out->tp_degree = d;
    out->virtual_stages = v;
    placement_assign_chunks(out, first, stages * v, stages);
    return placement_check_memory(out, mc, "hybrid");
}

/* Rank r of the stage that has the activations copies them to rank r of `to`. */
static int copy_between_stages(struct schedule *s, const struct model_spec *m, const struct workload *w,
                               const struct tp_group *from, const struct tp_group *to, int *last)
{
    uint64_t bytes = (uint64_t)to->batch * w->seq * m->hidden * dtype_size(w->dtype);
    for (int r = 0; r < to->degree; r++)
        if ((last[r] = schedule_add_copy(s, from->first + r, to->first + r, bytes, to->microbatch, last[r])) < 0)
            return PB_ERR;
    return PB_OK;
}

static int hybrid_plan(const struct model_spec *m, const struct placement *p, const struct workload *w,
                       struct schedule *out)
{
    int d = p->tp_degree, n = p->n_devices, v = p->virtual_stages, stages = n / d;
    /* One stage has no pipeline to fill: microbatches would only shrink its GEMMs. */
    int mb_count = stages == 1 && w->microbatches <= 0 ? 1 : pipeline_microbatches(p, w);
    PB_TRY(plan_check_microbatches(w, mb_count));
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int chunks = placement_stages(p, sd, sf, sc);
    size_t n_units = (size_t)mb_count * chunks;
    struct pipeline_unit *order = malloc(n_units * sizeof *order);
    int *last = malloc((size_t)mb_count * d * sizeof *last), *at = malloc((size_t)mb_count * sizeof *at);
    int rc = order && last && at ? pipeline_order(stages, v, mb_count, order)
                                 : pb_fail("hybrid: out of host memory planning %d microbatches", mb_count);
    schedule_init(out, n);
    schedule_set_groups(out, d);
    out->stages = stages;
    out->virtual_stages = v;
    out->microbatches = mb_count;
    int per = w->batch / mb_count, coll = 0;
    for (size_t u = 0; rc == PB_OK && u < n_units; u++) {
        int mb = order[u].microbatch, stage = order[u].stage, run = order[u].chunk * stages + stage;
        int *mine = last + (size_t)mb * d;
        struct tp_group g = {.first = stage * d, .degree = d, .group = stage, .stage = stage, .microbatch = mb,
                             .batch_offset = mb * per, .batch = per, .collectives = d > 1};
        if (run == 0) {
            rc = tp_add_embed(out, m, w, &g, mine);
        } else if (at[mb] != stage) {
            struct tp_group from = g;
            from.first = at[mb] * d;
            rc = copy_between_stages(out, m, w, &from, &g, mine);
        }
        at[mb] = stage;
        for (int l = sf[run]; rc == PB_OK && l < sf[run] + sc[run]; l++) rc = tp_add_layer(out, m, w, &g, l, &coll, mine);
        if (rc == PB_OK && run == chunks - 1) rc = tp_add_head(out, m, w, &g, &coll, mine);
    }
    free(order);
    free(last);
    free(at);
    if (rc != PB_OK) schedule_free(out);
    return rc;
}

const struct strategy hybrid_strategy = {
    .name = "hybrid",
    .help = "tensor parallel of degree --tp D inside each of N/D pipeline stages (Megatron/vLLM style)",
    .place = hybrid_place,
    .plan = hybrid_plan,
    .takes_microbatches = 1,
};
