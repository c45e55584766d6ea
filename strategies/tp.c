/* tp: tensor parallelism on all N GPUs (Megatron-style). Attention is split by
 * heads (kv heads too, or replicated when there are fewer kv heads than GPUs),
 * the MLP by intermediate columns, lm_head by vocabulary. Each layer needs two
 * all-reduces (after the attention output projection and after the MLP down
 * projection). The embedding table is replicated, so it needs no collective;
 * the lm_head slices are joined by one all-gather of the logits. The steps of one
 * group are written once here and used by hybrid too (a group per pipeline stage). */
#include "../base/check.h"
#include "strategy.h"

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
    out->tp_degree = n;   /* one group of every GPU: device[] stays 0 */
    return placement_check_memory(out, mc, "tp");
}

/* One rank's step, waiting on that rank's previous step. */
static int add_rank_step(struct schedule *s, struct step st, int dep)
{
    st.n_deps = dep >= 0 ? 1 : 0;
    st.deps[0] = dep;
    return schedule_add(s, &st);
}

/* A step of microbatch g's shape on rank r of the group. */
static struct step group_step(const struct tp_group *g, enum step_kind kind, int r, int rows)
{
    struct step st = {.kind = kind, .device = g->first + r, .microbatch = g->microbatch, .stage = g->stage,
                      .rows = rows, .batch = g->batch, .batch_offset = g->batch_offset, .group = g->group};
    return st;
}

/* All ranks' parts of one collective, each after its own rank's previous step. */
static int add_collective(struct schedule *s, const struct tp_group *g, enum step_kind kind, uint64_t bytes,
                          int rows, int *collective, int *last)
{
    int id = (*collective)++;
    for (int r = 0; r < g->degree; r++) {
        struct step st = group_step(g, kind, r, rows);
        st.collective = id;
        st.bytes = bytes;
        if ((last[r] = add_rank_step(s, st, last[r])) < 0) return PB_ERR;
    }
    return PB_OK;
}

int tp_add_embed(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                 int *last)
{
    int rows = g->batch * w->seq;
    for (int r = 0; r < g->degree; r++) {
        struct step st = group_step(g, STEP_EMBED, r, rows);
        st.mem_bytes = 2.0 * rows * m->hidden * dtype_size(w->dtype);
        if ((last[r] = add_rank_step(s, st, -1)) < 0) return PB_ERR;
    }
    return PB_OK;
}

/* Attention on this rank's heads, all-reduce, MLP on its columns, all-reduce (no
 * collective when the group is one GPU). */
int tp_add_layer(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                 int layer, int *collective, int *last)
{
    int n = g->degree, rows = g->batch * w->seq, size = dtype_size(w->dtype);
    uint64_t hidden_bytes = (uint64_t)rows * m->hidden * size;
    double attn_params = (double)model_attention_params(m), mlp_params = (double)model_mlp_params(m);
    double layer_flops = model_layer_flops(m, g->batch, w->seq, w->context);
    double mlp_flops = 2.0 * rows * mlp_params;
    for (int r = 0; r < n; r++) {
        struct step st = group_step(g, STEP_ATTENTION, r, rows);
        st.layer = layer;
        st.count = 1;
        st.flops = (layer_flops - mlp_flops) / n;
        st.mem_bytes = attn_params * size / n + 2.0 * hidden_bytes;
        if ((last[r] = add_rank_step(s, st, last[r])) < 0) return PB_ERR;
    }
    if (g->collectives && add_collective(s, g, STEP_ALLREDUCE, hidden_bytes, rows, collective, last)) return PB_ERR;
    for (int r = 0; r < n; r++) {
        struct step st = group_step(g, STEP_MLP, r, rows);
        st.layer = layer;
        st.count = 1;
        st.flops = mlp_flops / n;
        st.mem_bytes = mlp_params * size / n + 2.0 * hidden_bytes;
        if ((last[r] = add_rank_step(s, st, last[r])) < 0) return PB_ERR;
    }
    if (g->collectives && add_collective(s, g, STEP_ALLREDUCE, hidden_bytes, rows, collective, last)) return PB_ERR;
    return PB_OK;
}

/* Final norm and this rank's vocabulary slice of lm_head, then the slices gathered. */
int tp_add_head(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                int *collective, int *last)
{
    int n = g->degree, rows = g->batch * w->seq, size = dtype_size(w->dtype);
    for (int r = 0; r < n; r++) {
        struct step st = group_step(g, STEP_HEAD, r, rows);
        st.flops = model_head_flops(m, rows) / n;
        st.mem_bytes = ((double)m->vocab * m->hidden / n + (double)rows * m->vocab / n) * size;
        if ((last[r] = add_rank_step(s, st, last[r])) < 0) return PB_ERR;
    }
    if (n == 1) return PB_OK;
    return add_collective(s, g, STEP_ALLGATHER, (uint64_t)rows * (m->vocab / n) * size, rows, collective, last);
}

static int tp_plan(const struct model_spec *m, const struct placement *p, const struct workload *w,
                   struct schedule *out)
{
    int n = p->n_devices, last[PB_MAX_DEVICES], coll = 0;
    schedule_init(out, n);
    schedule_set_groups(out, n);
    /* tp on one GPU keeps its (one-rank) all-reduces, as it always ran. */
    struct tp_group g = {.first = 0, .degree = n, .batch = w->batch, .collectives = 1};
    if (tp_add_embed(out, m, w, &g, last)) goto fail;
    for (int l = 0; l < m->layers; l++)
        if (tp_add_layer(out, m, w, &g, l, &coll, last)) goto fail;
    if (tp_add_head(out, m, w, &g, &coll, last)) goto fail;
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
