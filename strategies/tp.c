/* tp: tensor parallelism on all N GPUs (Megatron-style). Attention is split by
 * heads (kv heads too, or replicated when there are fewer kv heads than GPUs),
 * the MLP by intermediate columns, lm_head by vocabulary. Each layer needs two
 * all-reduces (after the attention output projection and after the MLP down
 * projection). The embedding table is replicated, so it needs no collective;
 * the lm_head slices are joined by one all-gather of the logits. */
#include "../base/check.h"
#include "strategy.h"

#define TP_SHARDED (-2)

static int tp_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                    struct placement *out)
{
    int n = mc->gpus;
    if (n < 1) return pb_fail("tp needs at least one GPU");
    char why[128];
    if (model_tp_split_check(m, n, why, sizeof why))
        return pb_fail("tp: %d GPUs do not divide %s of %s; use a GPU count that does", n, why, m->name);
    placement_init(out, m, w->dtype, n);
    out->tensor_parallel = 1;
    for (int i = 0; i < out->n_modules; i++) out->device[i] = TP_SHARDED;
    return placement_check_memory(out, mc, "tp");
}

/* One rank's step of a layer half, waiting on that rank's previous step. */
static int add_rank_step(struct schedule *s, struct step st, int dep)
{
    st.n_deps = dep >= 0 ? 1 : 0;
    st.deps[0] = dep;
    return schedule_add(s, &st);
}

/* All ranks' parts of one collective, each after its own rank's previous step. */
static int add_collective(struct schedule *s, enum step_kind kind, int id, uint64_t bytes, int rows,
                          int batch, int *last)
{
    for (int d = 0; d < s->n_devices; d++) {
        struct step st = {.kind = kind, .device = d, .collective = id, .bytes = bytes, .rows = rows,
                          .batch = batch};
        if ((last[d] = add_rank_step(s, st, last[d])) < 0) return PB_ERR;
    }
    return PB_OK;
}

static int tp_plan(const struct model_spec *m, const struct placement *p, const struct workload *w,
                   struct schedule *out)
{
    int n = p->n_devices, rows = w->batch * w->seq, size = dtype_size(w->dtype);
    schedule_init(out, n);
    out->tp_world = n;
    int last[PB_MAX_DEVICES];
    uint64_t hidden_bytes = (uint64_t)rows * m->hidden * size;
    double h = m->hidden, attn_params = (double)model_attention_params(m), mlp_params = (double)model_mlp_params(m);
    double layer_flops = model_layer_flops(m, w->batch, w->seq, w->context);
    double mlp_flops = 2.0 * rows * mlp_params;
    int coll = 0;
    for (int d = 0; d < n; d++) {
        struct step st = {.kind = STEP_EMBED, .device = d, .rows = rows, .batch = w->batch,
                          .mem_bytes = 2.0 * hidden_bytes};
        if ((last[d] = schedule_add(out, &st)) < 0) goto fail;
    }
    for (int l = 0; l < m->layers; l++) {
        for (int d = 0; d < n; d++) {
            struct step st = {.kind = STEP_ATTENTION, .device = d, .layer = l, .count = 1, .rows = rows,
                              .batch = w->batch, .flops = (layer_flops - mlp_flops) / n,
                              .mem_bytes = attn_params * size / n + 2.0 * hidden_bytes};
            if ((last[d] = add_rank_step(out, st, last[d])) < 0) goto fail;
        }
        if (add_collective(out, STEP_ALLREDUCE, coll++, hidden_bytes, rows, w->batch, last)) goto fail;
        for (int d = 0; d < n; d++) {
            struct step st = {.kind = STEP_MLP, .device = d, .layer = l, .count = 1, .rows = rows,
                              .batch = w->batch, .flops = mlp_flops / n,
                              .mem_bytes = mlp_params * size / n + 2.0 * hidden_bytes};
            if ((last[d] = add_rank_step(out, st, last[d])) < 0) goto fail;
        }
        if (add_collective(out, STEP_ALLREDUCE, coll++, hidden_bytes, rows, w->batch, last)) goto fail;
    }
    for (int d = 0; d < n; d++) {
        struct step st = {.kind = STEP_HEAD, .device = d, .rows = rows, .batch = w->batch,
                          .flops = model_head_flops(m, rows) / n,
                          .mem_bytes = ((double)m->vocab * h / n + (double)rows * m->vocab / n) * size};
        if ((last[d] = add_rank_step(out, st, last[d])) < 0) goto fail;
    }
    if (n > 1 && add_collective(out, STEP_ALLGATHER, coll++, (uint64_t)rows * (m->vocab / n) * size, rows,
                                w->batch, last))
        goto fail;
    return PB_OK;
fail:
    schedule_free(out);
    return PB_ERR;
}

const struct strategy tp_strategy = {
    .name = "tp",
    .help = "tensor parallel on all GPUs: heads, MLP columns and vocabulary split; 2 all-reduces a layer",
    .place = tp_place,
    .plan = tp_plan,
};
