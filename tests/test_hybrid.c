/* hybrid: tensor parallel of degree D inside each of N / D pipeline stages, on the
 * CPU: its placement, its schedule (collectives inside a stage's group, copies
 * rank to rank between stages, microbatches pipelined), its memory and its refusals. */
#include <stdlib.h>
#include "../base/check.h"
#include "../strategies/strategy.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement hybrid_placement;

static struct machine machine_of(int gpus, int tp, int virtual_stages, uint64_t each)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 512 * GIB, .tp = tp, .virtual_stages = virtual_stages};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = each;
    return mc;
}

static struct workload prefill(int batch, int seq, int microbatches)
{
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .microbatches = microbatches,
                         .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    return w;
}

static int hybrid_place(const struct model_spec *m, const struct workload *w, const struct machine *mc)
{
    return strategy_find("hybrid")->place(m, w, mc, &hybrid_placement);
}

static int module_group(const struct placement *p, enum module_kind kind, int layer)
{
    for (int i = 0; i < p->n_modules; i++)
        if (p->modules[i].kind == kind && (kind != MODULE_LAYER || p->modules[i].layer == layer)) return p->device[i];
    return -99;
}

TEST(test_hybrid_places_balanced_stages_each_sharded_over_its_group)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct workload w = prefill(8, 512, 0);
    struct machine mc = machine_of(4, 2, 0, 80 * GIB);
    struct placement *p = &hybrid_placement;
    CHECK_EQ_INT(hybrid_place(&m, &w, &mc), PB_OK);
    CHECK(p->tensor_parallel);
    CHECK_EQ_INT(p->tp_degree, 2);
    CHECK_EQ_INT(p->n_devices, 4);
    /* Two stages of two GPUs; the embedding's and the head's work even out at 16/16. */
    for (int l = 0; l < 32; l++) CHECK_EQ_INT(module_group(p, MODULE_LAYER, l), l < 16 ? 0 : 1);
    CHECK_EQ_INT(module_group(p, MODULE_EMBED, -1), 0);
    CHECK_EQ_INT(module_group(p, MODULE_NORM, -1), 1);
    CHECK_EQ_INT(module_group(p, MODULE_HEAD, -1), 1);
    int sd[PB_MAX_DEVICES];
    CHECK_EQ_INT(placement_stage_devices(p, sd), 2);
    CHECK_EQ_INT(sd[0], 0);
    CHECK_EQ_INT(sd[1], 2);
    /* Each GPU: the whole embedding (replicated, as tp does) or half the head, and half its stage's layers. */
    uint64_t params[PB_MAX_DEVICES], cpu, layer = model_layer_params(&m) * 2, table = p->modules[0].param_bytes;
    placement_device_params(p, params, &cpu);
    CHECK_EQ_INT(cpu, 0);
    CHECK_EQ_INT(params[0], table + 16 * layer / 2);
    CHECK_EQ_INT(params[1], params[0]);
    CHECK_EQ_INT(params[2], 16 * layer / 2 + (uint64_t)m.hidden * 2 / 2 + table / 2);
    CHECK_EQ_INT(params[3], params[2]);
}

TEST(test_hybrid_tied_head_on_the_last_stage_holds_its_share_of_the_table)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-3.2-1b.json", &m), PB_OK);
    CHECK(m.tie_embeddings);
    struct workload w = prefill(4, 128, 0);
    struct machine mc = machine_of(4, 2, 0, 80 * GIB);
    CHECK_EQ_INT(hybrid_place(&m, &w, &mc), PB_OK);
    uint64_t params[PB_MAX_DEVICES], cpu, table = hybrid_placement.modules[0].param_bytes;
    placement_device_params(&hybrid_placement, params, &cpu);
    int last_stage_layers = 0;
    for (int l = 0; l < m.layers; l++) last_stage_layers += module_group(&hybrid_placement, MODULE_LAYER, l) == 1;
    CHECK_EQ_INT(params[3], last_stage_layers * model_layer_params(&m) * 2 / 2 + (uint64_t)m.hidden * 2 / 2 +
                                table / 2);
}

/* hybrid_place refuses (gpus, --tp, --virtual-stages, budget) with a message containing `why`. */
static void check_refused(int *failures_, const struct model_spec *m, int gpus, int tp, int v, uint64_t budget,
                          const char *why)
{
    struct workload w = prefill(8, 128, 0);
    struct machine mc = machine_of(gpus, tp, v, budget);
    CHECK_EQ_INT(hybrid_place(m, &w, &mc), PB_ERR);
    if (!strstr(pb_last_error(), why)) {
        fprintf(stderr, "  expected a message with \"%s\"\n", why);
        (*failures_)++;
    }
}

TEST(test_hybrid_refuses_a_degree_that_does_not_divide_the_gpus)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    check_refused(failures_, &m, 4, 3, 0, 80 * GIB, "--tp 3 does not divide --gpus 4");
}

TEST(test_hybrid_refuses_a_degree_that_does_not_divide_heads_or_kv_heads)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    check_refused(failures_, &m, 6, 3, 0, 80 * GIB, "--tp 3 does not divide the 32 attention heads");
    m.kv_heads = 3;   /* 3 kv heads over 2 GPUs: neither split nor replicated evenly */
    check_refused(failures_, &m, 4, 2, 0, 80 * GIB, "--tp 2 does not divide the 3 kv heads");
}

TEST(test_hybrid_refuses_more_stages_than_layers)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);   /* 6 layers */
    check_refused(failures_, &m, 8, 1, 0, 80 * GIB, "8 stages x 1 virtual stages = 8 chunks");
    check_refused(failures_, &m, 4, 2, 4, 80 * GIB, "2 stages x 4 virtual stages = 8 chunks");
    check_refused(failures_, &m, 4, 4, 2, 80 * GIB, "--virtual-stages 2 needs at least 2 stages");
}

TEST(test_hybrid_refuses_a_stage_over_its_gpus_budget)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-70b.json", &m), PB_OK);
    /* 138 GB over 4 GPUs is 34 GB each */
    check_refused(failures_, &m, 4, 2, 0, 30 * GIB, "hybrid: GPU 0 would hold");
    struct workload w = prefill(1, 128, 0);
    struct machine mc = machine_of(4, 2, 0, 40 * GIB);
    CHECK_EQ_INT(hybrid_place(&m, &w, &mc), PB_OK);
}

static int make_hybrid(const char *model, int gpus, int tp, int v, struct workload w, struct model_spec *m,
                       struct schedule *s)
{
    if (model_spec_load(model, m) != PB_OK) return PB_ERR;
    struct machine mc = machine_of(gpus, tp, v, 80 * GIB);
    if (hybrid_place(m, &w, &mc) != PB_OK) return PB_ERR;
    return strategy_find("hybrid")->plan(m, &hybrid_placement, &w, s);
}

/* Walks each (microbatch, rank) chain: every layer's attention and MLP once and in
 * order, all-reduces only among the ranks of the stage that runs them, and a copy to
 * the same rank of the next stage exactly where the layers change stage. */
static void check_hybrid(int *failures_, const struct model_spec *m, const struct workload *w, const struct schedule *s,
                         int d)
{
    int per = w->batch / s->microbatches;
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        for (int k = 0; k < st->n_deps; k++) {
            const struct step *dep = &s->steps[st->deps[k]];
            CHECK(st->deps[k] < i);
            CHECK_EQ_INT(dep->microbatch, st->microbatch);
            /* a step waits on its own rank, or (after a copy) on the rank that sent it the rows */
            CHECK(dep->device == st->device || (dep->kind == STEP_COPY && dep->dst == st->device));
        }
        if (st->kind == STEP_ALLREDUCE || st->kind == STEP_ALLGATHER) {
            CHECK_EQ_INT(st->group, st->device / d);
            CHECK_EQ_INT(s->group_of[st->device], st->group);
            int members = 0;
            for (int j = 0; j < s->n_steps; j++)
                if (s->steps[j].kind == st->kind && s->steps[j].collective == st->collective) {
                    members++;
                    CHECK_EQ_INT(s->steps[j].group, st->group);
                }
            CHECK_EQ_INT(members, d);
        }
    }
    for (int mb = 0; mb < s->microbatches; mb++)
        for (int rank = 0; rank < d; rank++) {
            int next_attn = 0, next_mlp = 0, stage = -1, heads = 0, embeds = 0, copies = 0, changes = 0;
            int at = -1;
            for (int i = 0; i < s->n_steps; i++) {
                const struct step *st = &s->steps[i];
                if (st->microbatch != mb) continue;
                if (st->kind == STEP_COPY) {
                    if (st->src % d != rank) continue;
                    CHECK_EQ_INT(st->src, at);
                    CHECK_EQ_INT(st->dst % d, rank);   /* rank r to rank r */
                    CHECK(st->dst / d != st->src / d);
                    CHECK_EQ_INT(st->bytes, (uint64_t)per * w->seq * m->hidden * 2);
                    at = st->dst;
                    copies++;
                    continue;
                }
                if (st->device % d != rank) continue;
                if (st->kind != STEP_EMBED) CHECK_EQ_INT(st->device, at);
                at = st->device;
                if (st->device / d != stage) {
                    changes += stage >= 0;
                    stage = st->device / d;
                }
                CHECK_EQ_INT(st->stage, st->device / d);
                CHECK_EQ_INT(st->batch, per);
                CHECK_EQ_INT(st->batch_offset, mb * per);
                if (st->kind == STEP_EMBED) embeds++;
                if (st->kind == STEP_ATTENTION) CHECK_EQ_INT(st->layer, next_attn++);
                if (st->kind == STEP_MLP) CHECK_EQ_INT(st->layer, next_mlp++);
                if (st->kind == STEP_HEAD) heads++;
            }
            CHECK_EQ_INT(next_attn, m->layers);
            CHECK_EQ_INT(next_mlp, m->layers);
            CHECK_EQ_INT(embeds, 1);
            CHECK_EQ_INT(heads, 1);
            CHECK_EQ_INT(copies, changes);
        }
}

TEST(test_hybrid_collectives_stay_inside_each_stage_and_copies_go_rank_to_rank)
{
    int gpus[] = {4, 8, 8, 4}, tps[] = {2, 2, 4, 1}, vs[] = {1, 2, 1, 2};
    for (int c = 0; c < 4; c++) {
        struct model_spec m;
        struct schedule s;
        struct workload w = prefill(8, 64, 0);
        if (make_hybrid("models/llama-2-7b.json", gpus[c], tps[c], vs[c], w, &m, &s) != PB_OK) {
            CHECK(!"hybrid failed");
            continue;
        }
        int stages = gpus[c] / tps[c];
        CHECK_EQ_INT(s.tp_world, tps[c]);
        CHECK_EQ_INT(s.n_groups, stages);
        CHECK_EQ_INT(s.stages, stages);
        CHECK_EQ_INT(s.virtual_stages, vs[c]);
        CHECK_EQ_INT(s.microbatches, 2 * stages <= 8 ? 2 * stages : 8);
        check_hybrid(failures_, &m, &w, &s, tps[c]);
        schedule_free(&s);
    }
}

TEST(test_hybrid_on_one_stage_is_tp)
{
    struct model_spec m;
    struct schedule h, t;
    struct workload w = prefill(4, 64, 0);   /* one stage: one microbatch by default */
    CHECK_EQ_INT(make_hybrid("models/llama-2-7b.json", 2, 2, 0, w, &m, &h), PB_OK);
    CHECK_EQ_INT(h.microbatches, 1);
    struct machine mc = machine_of(2, 0, 0, 80 * GIB);
    static struct placement tp_placement;
    CHECK_EQ_INT(strategy_find("tp")->place(&m, &w, &mc, &tp_placement), PB_OK);
    CHECK_EQ_INT(strategy_find("tp")->plan(&m, &tp_placement, &w, &t), PB_OK);
    CHECK_EQ_INT(h.n_steps, t.n_steps);
    for (int i = 0; i < h.n_steps && i < t.n_steps; i++) {
        CHECK_EQ_INT(h.steps[i].kind, t.steps[i].kind);
        CHECK_EQ_INT(h.steps[i].device, t.steps[i].device);
        CHECK_EQ_INT(h.steps[i].layer, t.steps[i].layer);
        CHECK_EQ_INT(h.steps[i].bytes, t.steps[i].bytes);
        CHECK_NEAR(h.steps[i].flops, t.steps[i].flops, 1e-6 * t.steps[i].flops);
    }
    schedule_free(&h);
    schedule_free(&t);
}

TEST(test_hybrid_runs_microbatches_in_order_on_every_gpu)
{
    /* Each GPU's compute stream takes microbatch 0, then 1, ...: stage 1 works on
     * microbatch k while stage 0 goes on to k + 1 (the timing is the cost model's test). */
    struct model_spec m;
    struct schedule s;
    struct workload w = prefill(8, 64, 4);
    CHECK_EQ_INT(make_hybrid("models/llama-2-7b.json", 4, 2, 0, w, &m, &s), PB_OK);
    CHECK_EQ_INT(s.microbatches, 4);
    for (int d = 0; d < 4; d++) {
        int seen = 0;
        for (int i = 0; i < s.n_steps; i++) {
            const struct step *st = &s.steps[i];
            if (st->device != d || st->kind == STEP_COPY) continue;
            CHECK(st->microbatch >= seen);
            seen = st->microbatch;
        }
        CHECK_EQ_INT(seen, 3);
    }
    schedule_free(&s);
}
