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
static void check_ranks_share(const struct schedule *s, int tokens_to, int *failures_)
{
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        int issued = 0, received = 0;
        for (int r = 0; r < s->n_devices; r++) {
            struct step_here h = step_place_rank(s, i, r, tokens_to);
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
                    CHECK_EQ_INT(st->kind, STEP_HEAD);
                    CHECK_EQ_INT(r, tokens_to);
                }
            }
        }
        CHECK_EQ_INT(issued, 1);
        CHECK_EQ_INT(received, st->kind == STEP_COPY || (st->kind == STEP_HEAD && tokens_to >= 0 && tokens_to != st->device));
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
        check_ranks_share(&g.prompt, -1, failures_);
        check_ranks_share(&g.decode, -1, failures_);
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
        struct step_here h = step_place_rank(&g.decode, i, 0, 0);
        CHECK_EQ_INT(h.role, STEP_RECEIVED);
        CHECK_EQ_INT(h.stream, 0);
        CHECK_EQ_INT(step_place_rank(&g.decode, i, 1, 0).role, STEP_ISSUED);
    }
    CHECK(heads > 0);
    check_ranks_share(&g.decode, 0, failures_);
    program_free(&g);
}
