/* Schedule invariants for every strategy: each layer runs once per microbatch,
 * dependencies point backwards and follow the data, copies sit exactly where the
 * activations change device and carry microbatch x seq x hidden x dtype bytes. */
#include <stdlib.h>
#include "../base/check.h"
#include "../strategies/strategy.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement shared_placement;

/* virtual_stages: --virtual-stages (0: one chunk per GPU). */
static int make_schedule_v(const char *strategy, const char *model, int gpus, int virtual_stages, struct workload w,
                           struct model_spec *m, struct schedule *s)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 512 * GIB, .virtual_stages = virtual_stages};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = 80 * GIB;
    if (model_spec_load(model, m) != PB_OK) return PB_ERR;
    const struct strategy *st = strategy_find(strategy);
    if (st->place(m, &w, &mc, &shared_placement) != PB_OK) return PB_ERR;
    return st->plan(m, &shared_placement, &w, s);
}

static int make_schedule(const char *strategy, const char *model, int gpus, struct workload w,
                         struct model_spec *m, struct schedule *s)
{
    return make_schedule_v(strategy, model, gpus, 0, w, m, s);
}

/* Sequential schedules: follow each microbatch from embed to head. */
static void check_sequential(int *failures_, const struct model_spec *m, const struct workload *w,
                             const struct schedule *s)
{
    int per = w->batch / s->microbatches;
    for (int mb = 0; mb < s->microbatches; mb++) {
        int *ran = calloc((size_t)m->layers, sizeof *ran);
        int prev = -1, at = -1, heads = 0, next_layer = 0;
        for (int i = 0; i < s->n_steps; i++) {
            const struct step *st = &s->steps[i];
            for (int d = 0; d < st->n_deps; d++) CHECK(st->deps[d] < i && st->deps[d] >= 0);
            if (st->microbatch != mb) continue;
            if (st->kind == STEP_EMBED) {
                CHECK_EQ_INT(prev, -1);
                at = st->device;
            } else {
                CHECK_EQ_INT(st->n_deps, 1);
                CHECK_EQ_INT(st->deps[0], prev);   /* waits for exactly what produced its input */
            }
            if (st->kind == STEP_COPY) {
                CHECK_EQ_INT(st->src, at);
                CHECK(st->dst != st->src);
                CHECK_EQ_INT(st->bytes, (uint64_t)per * w->seq * m->hidden * dtype_size(w->dtype));
                at = st->dst;
            } else if (st->kind != STEP_EMBED) {
                CHECK_EQ_INT(st->device, at);      /* no compute without its input on its device */
            }
            if (st->kind == STEP_LAYERS) {
                CHECK_EQ_INT(st->layer, next_layer);   /* layers in order */
                next_layer = st->layer + st->count;
                for (int l = st->layer; l < st->layer + st->count; l++) ran[l]++;
            }
            if (st->kind == STEP_HEAD) heads++;
            CHECK_EQ_INT(st->batch, per);
            CHECK_EQ_INT(st->batch_offset, mb * per);
            prev = i;
        }
        for (int l = 0; l < m->layers; l++) CHECK_EQ_INT(ran[l], 1);
        CHECK_EQ_INT(heads, 1);
        free(ran);
    }
}

/* Copies only where consecutive compute steps of a microbatch change device. */
static int device_changes(const struct schedule *s, int mb)
{
    int changes = 0, last = -1;
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        if (st->microbatch != mb || st->kind == STEP_COPY) continue;
        if (last >= 0 && st->device != last) changes++;
        last = st->device;
    }
    return changes;
}

static int count_kind(const struct schedule *s, enum step_kind k, int mb)
{
    int n = 0;
    for (int i = 0; i < s->n_steps; i++) n += s->steps[i].kind == k && (mb < 0 || s->steps[i].microbatch == mb);
    return n;
}

TEST(test_sequential_schedules_run_every_layer_once_with_copies_at_boundaries)
{
    const char *strategies_[] = {"single", "naive", "auto", "optimal", "pipeline"};
    const char *models[] = {"models/llama-2-7b.json", "models/tinyllama-1.1b.json", "models/llama-tiny.json"};
    int gpus[] = {1, 2, 3, 4};
    for (int si = 0; si < 5; si++)
        for (int mi = 0; mi < 3; mi++)
            for (int gi = 0; gi < 4; gi++) {
                struct model_spec m;
                struct schedule s;
                struct workload w = {.batch = 8, .seq = 64, .context = 64, .mode = MODE_PREFILL,
                                     .dtype = DTYPE_BF16};
                if (make_schedule(strategies_[si], models[mi], gpus[gi], w, &m, &s) != PB_OK) {
                    CHECK(!"strategy failed");
                    continue;
                }
                check_sequential(failures_, &m, &w, &s);
                for (int mb = 0; mb < s.microbatches; mb++)
                    CHECK_EQ_INT(count_kind(&s, STEP_COPY, mb), device_changes(&s, mb));
                schedule_free(&s);
            }
}

TEST(test_naive_on_two_gpus_copies_once_per_pass)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(make_schedule("naive", "models/llama-2-7b.json", 2, w, &m, &s), PB_OK);
    CHECK_EQ_INT(count_kind(&s, STEP_COPY, -1), 1);
    CHECK_EQ_INT(s.steps[2].bytes, 8ull * 512 * 4096 * 2);   /* 32 MiB of bf16 activations */
    schedule_free(&s);
}

TEST(test_pipeline_defaults_to_two_microbatches_per_stage)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 8, .seq = 128, .context = 128, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(make_schedule("pipeline", "models/llama-2-7b.json", 2, w, &m, &s), PB_OK);
    CHECK_EQ_INT(s.stages, 2);
    CHECK_EQ_INT(s.microbatches, 4);
    CHECK_EQ_INT(count_kind(&s, STEP_HEAD, -1), 4);
    schedule_free(&s);
}

TEST(test_pipeline_rejects_batch_that_microbatches_cannot_split)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 6, .seq = 128, .context = 128, .microbatches = 4, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(make_schedule("pipeline", "models/llama-2-7b.json", 2, w, &m, &s), PB_ERR);
    CHECK(strstr(pb_last_error(), "cannot be split") != NULL);
    w.microbatches = 3;
    CHECK_EQ_INT(make_schedule("pipeline", "models/llama-2-7b.json", 2, w, &m, &s), PB_OK);
    CHECK_EQ_INT(s.microbatches, 3);
    schedule_free(&s);
}

TEST(test_tp_has_two_allreduces_per_layer_and_one_logit_gather)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 4, .seq = 64, .context = 64, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(make_schedule("tp", "models/llama-2-7b.json", 4, w, &m, &s), PB_OK);
    CHECK_EQ_INT(s.tp_world, 4);
    /* each collective has one step per rank */
    CHECK_EQ_INT(count_kind(&s, STEP_ALLREDUCE, -1), 2 * m.layers * 4);
    CHECK_EQ_INT(count_kind(&s, STEP_ALLGATHER, -1), 4);
    CHECK_EQ_INT(count_kind(&s, STEP_COPY, -1), 0);
    CHECK_EQ_INT(count_kind(&s, STEP_ATTENTION, -1), m.layers * 4);
    CHECK_EQ_INT(count_kind(&s, STEP_MLP, -1), m.layers * 4);
    for (int i = 0; i < s.n_steps; i++) {
        const struct step *st = &s.steps[i];
        for (int d = 0; d < st->n_deps; d++) {
            CHECK(st->deps[d] < i);
            CHECK_EQ_INT(s.steps[st->deps[d]].device, st->device);   /* ranks meet only in collectives */
        }
        if (st->kind == STEP_ALLREDUCE) CHECK_EQ_INT(st->bytes, 4ull * 64 * 4096 * 2);
        if (st->kind == STEP_ALLREDUCE) CHECK(s.steps[st->deps[0]].kind == STEP_ATTENTION ||
                                              s.steps[st->deps[0]].kind == STEP_MLP);
    }
    schedule_free(&s);
}

TEST(test_interleaved_pipeline_puts_virtual_stage_c_times_p_plus_g_on_gpu_g)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 8, .seq = 64, .context = 64, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(make_schedule_v("pipeline", "models/llama-2-7b.json", 4, 2, w, &m, &s), PB_OK);
    const struct placement *p = &shared_placement;
    CHECK_EQ_INT(p->virtual_stages, 2);
    /* 32 layers in 8 chunks of 4: chunk k on GPU k % 4 (GPU 0 holds layers 0-3 and 16-19) */
    for (int i = 0; i < p->n_modules; i++) {
        const struct module *mod = &p->modules[i];
        if (mod->kind == MODULE_LAYER) CHECK_EQ_INT(p->device[i], (mod->layer / 4) % 4);
        if (mod->kind == MODULE_EMBED) CHECK_EQ_INT(p->device[i], 0);
        if (mod->kind == MODULE_HEAD || mod->kind == MODULE_NORM) CHECK_EQ_INT(p->device[i], 3);
    }
    CHECK_EQ_INT(s.stages, 4);
    CHECK_EQ_INT(s.virtual_stages, 2);
    schedule_free(&s);
}

TEST(test_interleaved_schedules_run_every_layer_once_in_order_with_copies_at_device_changes)
{
    int gpus[] = {2, 2, 4, 3}, vs[] = {2, 4, 2, 3}, mbs[] = {0, 8, 4, 2};
    for (int c = 0; c < 4; c++) {
        struct model_spec m;
        struct schedule s;
        struct workload w = {.batch = 8, .seq = 64, .context = 64, .microbatches = mbs[c], .dtype = DTYPE_BF16};
        if (make_schedule_v("pipeline", "models/llama-2-7b.json", gpus[c], vs[c], w, &m, &s) != PB_OK) {
            CHECK(!"interleaved pipeline failed");
            continue;
        }
        check_sequential(failures_, &m, &w, &s);
        for (int mb = 0; mb < s.microbatches; mb++) {
            CHECK_EQ_INT(count_kind(&s, STEP_COPY, mb), device_changes(&s, mb));
            /* the microbatch visits GPU 0, 1, ..., p-1, then GPU 0 again: V x p - 1 moves */
            CHECK_EQ_INT(device_changes(&s, mb), vs[c] * gpus[c] - 1);
        }
        schedule_free(&s);
    }
}

TEST(test_interleaved_order_is_megatrons_on_every_gpu)
{
    /* 2 stages, 2 chunks, 4 microbatches: a GPU runs chunk 0 of microbatches 0 and 1,
     * chunk 1 of the same two, then the next two. */
    struct pipeline_unit u[4 * 2 * 2];
    CHECK_EQ_INT(pipeline_order(2, 2, 4, u), PB_OK);
    int want_mb[] = {0, 1, 0, 1, 2, 3, 2, 3}, want_chunk[] = {0, 0, 1, 1, 0, 0, 1, 1};
    for (int g = 0; g < 2; g++) {
        int k = 0;
        for (int i = 0; i < 16; i++) {
            if (u[i].stage != g) continue;
            CHECK_EQ_INT(u[i].microbatch, want_mb[k]);
            CHECK_EQ_INT(u[i].chunk, want_chunk[k]);
            k++;
        }
        CHECK_EQ_INT(k, 8);
    }
    /* every unit after the one it takes its input from */
    for (int i = 0; i < 16; i++)
        for (int j = i + 1; j < 16; j++)
            CHECK(!(u[j].microbatch == u[i].microbatch &&
                    u[j].chunk * 2 + u[j].stage == u[i].chunk * 2 + u[i].stage - 1));
}

TEST(test_interleaving_refuses_a_chunk_left_empty)
{
    struct model_spec m;
    struct schedule s;
    struct workload w = {.batch = 8, .seq = 64, .context = 64, .dtype = DTYPE_BF16};
    /* llama-tiny has 6 layers: 4 GPUs x 2 chunks = 8 */
    CHECK_EQ_INT(make_schedule_v("pipeline", "models/llama-tiny.json", 4, 2, w, &m, &s), PB_ERR);
    CHECK(strstr(pb_last_error(), "8 chunks of layers but llama-tiny has 6 layers") != NULL);
    CHECK_EQ_INT(make_schedule_v("pipeline", "models/llama-tiny.json", 1, 2, w, &m, &s), PB_ERR);
    CHECK(strstr(pb_last_error(), "needs at least 2 GPUs") != NULL);
    CHECK_EQ_INT(make_schedule_v("pipeline", "models/llama-tiny.json", 3, 2, w, &m, &s), PB_OK);
    schedule_free(&s);
}

TEST(test_auto_offloaded_layers_run_on_gpu_0_streaming_weights)
{
    struct model_spec m;
    struct machine mc = {.gpus = 2, .cpu_memory = 512 * GIB, .budgets_from_user = 1};
    mc.gpu_memory[0] = 4 * GIB;
    mc.gpu_memory[1] = 4 * GIB;
    struct workload w = {.batch = 1, .seq = 16, .context = 16, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    CHECK_EQ_INT(strategy_find("auto")->place(&m, &w, &mc, &shared_placement), PB_OK);
    struct schedule s;
    CHECK_EQ_INT(strategy_find("auto")->plan(&m, &shared_placement, &w, &s), PB_OK);
    int offloaded = 0;
    for (int i = 0; i < s.n_steps; i++)
        if (s.steps[i].offloaded) {
            offloaded++;
            CHECK_EQ_INT(s.steps[i].device, 0);
            CHECK(s.steps[i].bytes > 0);
        }
    CHECK(offloaded > 0);
    schedule_free(&s);
}

TEST(test_step_labels_come_from_one_table_and_name_microbatches)
{
    struct schedule s = {.microbatches = 1};
    char b[PB_LABEL_LEN];
    struct step layers = {.kind = STEP_LAYERS, .layer = 0, .count = 16};
    step_label(&s, &layers, b, sizeof b);
    CHECK(!strcmp(b, "layers 0-15"));
    struct step one = {.kind = STEP_LAYERS, .layer = 3, .count = 1};
    step_label(&s, &one, b, sizeof b);
    CHECK(!strcmp(b, "layer 3"));
    struct step ar = {.kind = STEP_ALLREDUCE, .collective = 7};
    step_label(&s, &ar, b, sizeof b);
    CHECK(!strcmp(b, "allreduce 7") && !strcmp(step_kind_name(STEP_ALLREDUCE), "allreduce"));
    struct step copy = {.kind = STEP_COPY, .src = 0, .dst = 1, .microbatch = 2};
    s.microbatches = 4;
    step_label(&s, &copy, b, sizeof b);
    CHECK(!strcmp(b, "copy 0->1 mb2"));
    struct step head = {.kind = STEP_HEAD};
    step_label(&s, &head, b, sizeof b);
    CHECK(!strcmp(b, "head mb0"));
    CHECK(!strcmp(step_kind_name((enum step_kind)99), "unknown"));
}

TEST(test_cpu_offloaded_modules_run_on_gpu_0)
{
    CHECK_EQ_INT(placement_exec_device(PB_DEVICE_CPU), 0);
    CHECK_EQ_INT(placement_exec_device(3), 3);
}
