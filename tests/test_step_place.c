/* Which process issues which step (harness/exec/step_place.c): the rule the one
 * issue loop follows in one process and on every MPI rank. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/step_place.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement shared;

static int plan(const char *strategy, int gpus, int tokens, struct model_spec *m, struct program *g)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 512 * GIB, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = 141 * GIB;
    struct workload w = {.batch = 4, .seq = 16, .context = 16, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    if (model_spec_load("models/llama-tiny.json", m) != PB_OK) return PB_ERR;
    const struct strategy *st = strategy_find(strategy);
    if (st->place(m, &w, &mc, &shared) != PB_OK) return PB_ERR;
    return program_plan(st, m, &shared, &w, tokens, g);
}

static int count_copies(const struct schedule *s)
{
    int n = 0;
    for (int i = 0; i < s->n_steps; i++) n += s->steps[i].kind == STEP_COPY;
    return n;
}

/* Every step is issued by exactly one rank, on that step's stream; a copy's
 * destination rank receives it on the stream of the step that reads its rows. */
/* Heads on any device send their tokens to tokens_to (-1: nowhere). */
static struct token_route heads_to(int tokens_to)
{
    struct token_route r;
    token_route_none(&r);
    for (int d = 0; d < PB_MAX_DEVICES; d++) r.to[d] = tokens_to;
    return r;
}

static void check_ranks_share(const struct schedule *s, const struct token_route *tokens, int *failures_)
{
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        int issued = 0, received = 0;
        for (int r = 0; r < s->n_devices; r++) {
            struct step_here h = step_place_rank(s, i, r, tokens);
            if (h.role != STEP_NOT_HERE) CHECK_EQ_INT(h.device, r);
            if (h.role == STEP_ISSUED) {
                issued++;
                CHECK_EQ_INT(r, st->kind == STEP_COPY ? st->src : st->device);
                CHECK_EQ_INT(h.stream, st->stream);
            }
            if (h.role == STEP_RECEIVED) {
                received++;
                if (st->kind == STEP_COPY) {
                    int c = exec_consumer(s, i);
                    CHECK_EQ_INT(r, st->dst);
                    CHECK(c >= 0 && s->steps[c].device == st->dst);
                    CHECK_EQ_INT(h.stream, s->steps[c].stream);
                } else {
                    CHECK_EQ_INT(st->kind, tokens->from);
                    CHECK_EQ_INT(r, tokens->to[st->device]);
                }
            }
        }
        int travels = tokens && st->kind == tokens->from && tokens->to[st->device] >= 0 && tokens->to[st->device] != st->device;
        CHECK_EQ_INT(issued, 1);
        CHECK_EQ_INT(received, st->kind == STEP_COPY || travels);
    }
}

TEST(test_one_process_issues_every_step_on_its_own_device_and_stream)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("pipeline", 2, 0, &m, &g), PB_OK);
    CHECK(count_copies(&g.prompt) > 0);
    for (int i = 0; i < g.prompt.n_steps; i++) {
        struct step_here h = step_place_all(&g.prompt, i);
        CHECK_EQ_INT(h.role, STEP_ISSUED);
        CHECK_EQ_INT(h.device, g.prompt.steps[i].device);
        CHECK_EQ_INT(h.stream, g.prompt.steps[i].stream);
    }
    program_free(&g);
}

TEST(test_each_rank_issues_its_own_steps_and_receives_the_copies_sent_to_it)
{
    const char *strategies[] = {"naive", "pipeline", "tp"};
    for (int k = 0; k < 3; k++) {
        struct model_spec m;
        struct program g;
        CHECK_EQ_INT(plan(strategies[k], 2, 3, &m, &g), PB_OK);
        check_ranks_share(&g.prompt, NULL, failures_);
        check_ranks_share(&g.decode, NULL, failures_);
        program_free(&g);
    }
}

TEST(test_the_embedding_rank_takes_delivery_of_the_heads_tokens_in_a_decode)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("naive", 2, 3, &m, &g), PB_OK);
    int heads = 0;
    for (int i = 0; i < g.decode.n_steps; i++) {
        if (g.decode.steps[i].kind != STEP_HEAD) continue;
        heads++;
        CHECK_EQ_INT(g.decode.steps[i].device, 1);
        struct token_route to0 = heads_to(0);
        struct step_here h = step_place_rank(&g.decode, i, 0, &to0);
        CHECK_EQ_INT(h.role, STEP_RECEIVED);
        CHECK_EQ_INT(h.stream, 0);
        CHECK_EQ_INT(step_place_rank(&g.decode, i, 1, &to0).role, STEP_ISSUED);
    }
    CHECK(heads > 0);
    struct token_route to0 = heads_to(0);
    check_ranks_share(&g.decode, &to0, failures_);
    program_free(&g);
}

/* hybrid, 2 stages of 2 ranks: rank r of the last stage picks tokens from its gathered
 * logits and hands them to rank r of the first, which receives that all-gather step. */
TEST(test_first_stage_ranks_take_delivery_of_the_last_stage_gathers_tokens)
{
    struct model_spec m;
    struct program g;
    CHECK_EQ_INT(plan("hybrid", 4, 3, &m, &g), PB_OK);
    CHECK_EQ_INT(g.decode.n_groups, 2);
    struct token_route route;
    token_route_none(&route);
    route.from = STEP_ALLGATHER;
    route.to[2] = 0;
    route.to[3] = 1;
    int gathers = 0;
    for (int i = 0; i < g.decode.n_steps; i++) {
        const struct step *st = &g.decode.steps[i];
        if (st->kind != STEP_ALLGATHER) continue;
        gathers++;
        CHECK(st->device >= 2);
        CHECK_EQ_INT(step_place_rank(&g.decode, i, st->device - 2, &route).role, STEP_RECEIVED);
        CHECK_EQ_INT(step_place_rank(&g.decode, i, 1 - (st->device - 2), &route).role, STEP_NOT_HERE);
    }
    CHECK(gathers > 0);
    check_ranks_share(&g.prompt, &route, failures_);
    check_ranks_share(&g.decode, &route, failures_);
    program_free(&g);
}
