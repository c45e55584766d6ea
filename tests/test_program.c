/* Generation as schedule data (strategies/program.c): the prompt pass and one decode
 * template with a pass table, contexts that grow by one a pass, token feeds that
 * link each decode embed to the heads of its sequences. */
#include <stdlib.h>
#include "../base/check.h"
#include "../strategies/strategy.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement shared;

static int plan(const char *strategy, const char *model, int gpus, int batch, int seq, int tokens,
                struct model_spec *m, struct program *g)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 512 * GIB, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = 141 * GIB;
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    if (model_spec_load(model, m) != PB_OK) return PB_ERR;
    const struct strategy *st = strategy_find(strategy);
    if (st->place(m, &w, &mc, &shared) != PB_OK) return PB_ERR;
    return program_plan(st, m, &shared, &w, tokens, g);
}

TEST(test_decode_contexts_grow_by_one_per_pass)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("naive", "models/llama-tiny.json", 2, 4, 16, 5, &m, &g), PB_OK);
    CHECK_EQ_INT(g.n_passes, 6);
    CHECK_EQ_INT(g.passes[0].decode, 0);
    CHECK_EQ_INT(g.passes[0].context, 16);
    for (int i = 0; i < g.prompt.n_steps; i++) {
        CHECK_EQ_INT(g.prompt.steps[i].seq, 16);
        CHECK_EQ_INT(g.prompt.steps[i].context, 16);
    }
    for (int k = 1; k < g.n_passes; k++) {
        CHECK_EQ_INT(g.passes[k].decode, 1);
        CHECK_EQ_INT(g.passes[k].pos, 16 + k - 1);
        CHECK_EQ_INT(g.passes[k].context, 16 + k);
        for (int i = 0; i < g.decode.n_steps; i++) {
            CHECK_EQ_INT(g.decode.steps[i].seq, 1);
            CHECK_EQ_INT(program_step_context(&g, k, &g.decode.steps[i]), 16 + k);
        }
    }
    program_free(&g);
}

TEST(test_decode_work_grows_by_its_per_position_rate)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("tp", "models/llama-2-7b.json", 2, 4, 128, 3, &m, &g), PB_OK);
    /* The template at pass 1 plus 9 positions is the strategy's own plan at context 138. */
    const struct strategy *st = strategy_find("tp");
    struct workload d = {.batch = 4, .seq = 1, .context = 128 + 10, .mode = MODE_DECODE, .dtype = DTYPE_BF16};
    struct schedule at;
    CHECK_EQ_INT(st->plan(&m, &shared, &d, &at), PB_OK);
    CHECK_EQ_INT(at.n_steps, g.decode.n_steps);
    int grows = 0;
    for (int i = 0; i < at.n_steps && i < g.decode.n_steps; i++) {
        const struct step *t = &g.decode.steps[i];
        CHECK_NEAR(t->flops + 9 * t->flops_per_position, at.steps[i].flops, 1e-6 * (at.steps[i].flops + 1));
        CHECK_NEAR(t->mem_bytes + 9 * t->bytes_per_position, at.steps[i].mem_bytes, 1e-6 * (at.steps[i].mem_bytes + 1));
        grows += t->flops_per_position > 0;
    }
    CHECK(grows > 0);   /* attention's share grows with the KV cache */
    schedule_free(&at);
    program_free(&g);
}

TEST(test_token_feed_links_each_decode_embed_to_the_heads_of_its_sequences)
{
    const char *names[] = {"naive", "pipeline", "tp"};
    for (int n = 0; n < 3; n++) {
        struct model_spec m;
        struct program g;
        CHECK_EQ_INT(plan(names[n], "models/llama-tiny.json", 2, 8, 16, 2, &m, &g), PB_OK);
        for (int after = 0; after < 2; after++) {
            const struct schedule *prev = after ? &g.decode : &g.prompt;
            for (int i = 0; i < g.decode.n_steps; i++) {
                const struct step *e = &g.decode.steps[i];
                if (e->kind != STEP_EMBED) continue;
                int covered = 0;
                for (int f = 0; f < g.n_feed[after]; f++) {
                    if (g.feed[after][f].embed != i) continue;
                    const struct step *h = &prev->steps[g.feed[after][f].from];
                    CHECK(h->kind == STEP_HEAD || h->kind == STEP_ALLGATHER);
                    CHECK(h->batch_offset < e->batch_offset + e->batch && e->batch_offset < h->batch_offset + h->batch);
                    covered += h->batch;
                }
                CHECK(covered >= e->batch);   /* every sequence's token comes from somewhere */
            }
        }
        int n1;
        CHECK(program_pass_feed(&g, 0, &n1) == NULL && n1 == 0);
        CHECK(program_pass_feed(&g, 1, &n1) == g.feed[0] && n1 == g.n_feed[0]);
        CHECK(program_pass_feed(&g, 2, &n1) == g.feed[1] && n1 == g.n_feed[1]);
        program_free(&g);
    }
}

TEST(test_a_long_generation_holds_two_schedules_not_one_per_token)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("tp", "models/llama-2-70b.json", 8, 1, 512, 512, &m, &g), PB_OK);
    CHECK_EQ_INT(g.n_passes, 513);
    CHECK_EQ_INT(g.decode.n_steps, g.prompt.n_steps);   /* one template for all 512 decode passes */
    CHECK_EQ_INT(g.passes[512].context, 1024);
    program_free(&g);
}

TEST(test_prefill_only_programs_have_one_pass_and_no_template)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("single", "models/llama-tiny.json", 1, 2, 8, 0, &m, &g), PB_OK);
    CHECK_EQ_INT(g.n_passes, 1);
    CHECK_EQ_INT(g.decode.n_steps, 0);
    CHECK_EQ_INT(g.greedy, 0);
    CHECK_EQ_INT(program_streams_per_device(&g), 1);
    CHECK_EQ_INT(program_has_collectives(&g), 0);
    program_free(&g);
}
