/* Serving through an executor's step op (harness/serve/serve_exec.c), the path
 * measured serving takes on GPUs: a fake executor checks what each step hands
 * it (slots, positions, the tokens fed back), the cost-model executor checks
 * that the path prices a request as the cost-model path does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../base/check.h"
#include "../base/csv_read.h"
#include "../base/text_file.h"
#include "../harness/exec/model/device_profile.h"
#include "../harness/serve/serve_cost.h"
#include "../harness/serve/serve_exec.h"
#include "../harness/serve/serve_metrics.h"
#include "../harness/serve/serve_report.h"
#include "../harness/serve/serve_run.h"
#include "../harness/cli/cli.h"
#include "../harness/run/simulate_run.h"
#include "../harness/serve/serve_stream.h"
#include "test.h"

#define FAKE_SLOTS 8
#define FAKE_CALLS 64

/* What the fake saw: the program it was sized by, and each step. */
struct fake_call {
    int slot0, batch, seq, pos;
    int slot_pos[FAKE_SLOTS];   /* decode; prefill: all -2 */
};
static struct {
    int slots, seq, tokens;
    int len[FAKE_SLOTS], decoded[FAKE_SLOTS];   /* per slot: prompt length, decode steps since */
    int wrong_position;
    int n;
    struct fake_call call[FAKE_CALLS];
} fake;

static int fake_create(const struct exec_config *c, void **state)
{
    fake.slots = c->g->batch;
    fake.seq = c->g->seq;
    fake.tokens = c->g->tokens;
    *state = &fake;
    return PB_OK;
}

/* Greedy stand-in: the next token is the last one fed plus one. Prefill 1 ms a
 * prompt, decode 0.5 ms a step; no device records. */
static int fake_step(void *state, const struct exec_step *x, struct trace *t, double *ms)
{
    (void)state;
    (void)t;
    struct fake_call *c = fake.n < FAKE_CALLS ? &fake.call[fake.n] : NULL;
    fake.n++;
    if (c) *c = (struct fake_call){.slot0 = x->slot0, .batch = x->batch, .seq = x->seq, .pos = x->pos};
    for (int k = 0; k < x->batch; k++) {
        int slot = x->slot0 + k;
        if (!x->slot_pos) {
            fake.len[slot] = x->seq;
            fake.decoded[slot] = 0;
            if (c) c->slot_pos[k] = -2;
            x->next[k] = x->tokens[(k + 1) * x->seq - 1] + 1;
            continue;
        }
        if (c) c->slot_pos[k] = x->slot_pos[k];
        if (x->slot_pos[k] < 0) {
            x->next[k] = -7;   /* an empty slot's row: never anyone's token */
            continue;
        }
        fake.wrong_position |= x->slot_pos[k] != fake.len[slot] + fake.decoded[slot];
        fake.decoded[slot]++;
        x->next[k] = x->tokens[k] + 1;
    }
    *ms = x->slot_pos ? 0.5 : 1.0;
    return PB_OK;
}

static int fake_outputs(void *state, struct exec_outputs *out)
{
    (void)state;
    *out = (struct exec_outputs){0};
    return PB_OK;
}

static void fake_destroy(void *state) { (void)state; }

static const struct executor_ops fake_ops = {.name = "fake", .create = fake_create, .outputs = fake_outputs,
                                             .destroy = fake_destroy, .step = fake_step};

static int load_tiny(struct model_spec *m, struct placement *p, const char *strategy, int gpus)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 1ull << 34};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = 1ull << 34;
    struct workload w = {.batch = 4, .seq = 16, .context = 16, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    PB_TRY(model_spec_load("models/llama-tiny.json", m));
    return strategy_find(strategy)->place(m, &w, &mc, p);
}

static int64_t test_kv_positions = 1 << 20;   /* the placement's KV cache, in positions */

static int serve_with(const struct executor_ops *ops, const char *strategy, const struct serve_request *req, int n,
                      int max_batch, int groups, const struct device_profile *prof, struct serve_exec *x,
                      struct serve_request_result *res, struct serve_totals *tot)
{
    static struct model_spec m;
    static struct placement p;
    static struct device_map map = {.n = 2, .ordinal = {0, 1}};
    PB_TRY(load_tiny(&m, &p, strategy, 2));
    struct serve_exec_config c = {.ops = ops, .m = &m, .st = strategy_find(strategy), .p = &p, .map = &map,
                                  .dtype = DTYPE_BF16, .seed = 3, .profile = prof};
    PB_TRY(serve_exec_open(x, &c, req, n, max_batch, groups, test_kv_positions));
    struct serve_policy pol = {.max_batch = max_batch, .groups = groups, .kv_capacity_tokens = test_kv_positions,
                               .max_context = m.max_position};
    struct serve_executor ex = serve_exec_executor(x);
    PB_TRY(serve_exec_reset(x, req, n));
    return serve_engine_run(&ex, &pol, req, n, res, tot);
}

/* One serving run on the fake: each request's result, and the executor holding its tokens. */
#define FAKE_RUN_REQUESTS 4
struct fake_run {
    struct serve_request_result res[FAKE_RUN_REQUESTS];
    struct serve_totals tot;
    struct serve_exec x;
};

/* Serves req on the fake executor, its record of calls cleared first. */
static int serve_on_fake(struct fake_run *r, const char *strategy, const struct serve_request *req, int n,
                         int max_batch, int groups)
{
    memset(r, 0, sizeof *r);
    memset(&fake, 0, sizeof fake);
    if (n > FAKE_RUN_REQUESTS) return pb_fail("serve_on_fake: %d requests, room for %d", n, FAKE_RUN_REQUESTS);
    return serve_with(&fake_ops, strategy, req, n, max_batch, groups, NULL, &r->x, r->res, &r->tot);
}

static void fake_run_free(struct fake_run *r, int n)
{
    serve_results_free(r->res, n);
    serve_exec_close(&r->x);
}

/* r0 finishes first and leaves slot 0 empty while r1 decodes in slot 1 (its row
 * at -1); r2, arriving later, takes the lowest free slot. Every token fed back is
 * the one the step before gave that sequence, at the position after its last. */
TEST(test_serve_exec_reuses_the_lowest_free_slot_and_leaves_empty_ones_at_minus_one)
{
    struct serve_request req[3] = {{0, 0, 5, 2}, {1, 0, 7, 4}, {2, 100, 4, 2}};
    struct fake_run run;
    CHECK_EQ_INT(serve_on_fake(&run, "naive", req, 3, 2, 1), PB_OK);
    CHECK_EQ_INT(fake.slots, 2);
    CHECK_EQ_INT(fake.seq, 7);                  /* the longest prompt */
    CHECK_EQ_INT(fake.seq + fake.tokens, 11);   /* the longest prompt + output */
    CHECK_EQ_INT(fake.wrong_position, 0);
    int first = 2;   /* calls 0-1: the warm-up's prefill and decode */
    CHECK_EQ_INT(fake.n, first + 7);
    const struct fake_call *c = &fake.call[first];
    CHECK(c[0].slot0 == 0 && c[0].seq == 5 && c[1].slot0 == 1 && c[1].seq == 7);   /* r0, r1: one prefill step */
    CHECK(c[2].slot0 == 0 && c[2].batch == 2 && c[2].slot_pos[0] == 5 && c[2].slot_pos[1] == 7 && c[2].pos == 7);
    CHECK(c[3].batch == 2 && c[3].slot_pos[0] == -1 && c[3].slot_pos[1] == 8 && c[3].pos == 8);
    CHECK(c[4].batch == 2 && c[4].slot_pos[0] == -1 && c[4].slot_pos[1] == 9);
    CHECK(c[5].slot0 == 0 && c[5].batch == 1 && c[5].seq == 4 && c[5].slot_pos[0] == -2);   /* r2 in slot 0 */
    CHECK(c[6].slot0 == 0 && c[6].batch == 1 && c[6].slot_pos[0] == 4);
    for (int r = 0; r < 3; r++) {
        int prompt[16];
        serve_prompt_tokens(3, r, req[r].prompt_tokens, 512, prompt);   /* llama-tiny's vocabulary */
        const int *out = serve_exec_tokens(&run.x, r);
        CHECK_EQ_INT(run.res[r].status, SERVE_DONE);
        for (int k = 0; out && k < req[r].output_tokens; k++) CHECK_EQ_INT(out[k], prompt[req[r].prompt_tokens - 1] + 1 + k);
    }
    /* times from the fake's: the prefill step of r0 and r1 takes two passes */
    CHECK(run.res[0].first_token_ms == 2.0 && run.res[1].first_token_ms == 2.0 && run.res[0].finish_ms == 2.5);
    CHECK(run.res[1].finish_ms == 3.5 && run.res[2].first_token_ms == 101.0 && run.res[2].finish_ms == 101.5);
    CHECK(isnan(run.tot.busy_ms[0]));   /* no device records: busy time unknown, not zero */
    fake_run_free(&run, 3);
}

/* Two groups own slots [0, 2) and [2, 4): the second group's steps run there. */
TEST(test_serve_exec_gives_each_group_its_own_slots)
{
    struct serve_request req[4] = {{0, 0, 3, 2}, {1, 0, 3, 2}, {2, 0, 3, 2}, {3, 0, 3, 2}};
    struct fake_run run;
    CHECK_EQ_INT(serve_on_fake(&run, "pipeline", req, 4, 4, 2), PB_OK);
    CHECK_EQ_INT(fake.slots, 4);
    CHECK_EQ_INT(fake.wrong_position, 0);
    int in_second = 0;
    for (int i = 2; i < fake.n && i < FAKE_CALLS; i++) {
        const struct fake_call *c = &fake.call[i];
        CHECK(c->slot0 == 0 || c->slot0 == 1 || c->slot0 == 2 || c->slot0 == 3);
        CHECK(c->slot0 + c->batch <= (c->slot0 < 2 ? 2 : 4));   /* never across the groups' boundary */
        in_second += c->slot0 >= 2;
    }
    CHECK(in_second > 0);
    for (int r = 0; r < 4; r++) CHECK_EQ_INT(run.res[r].status, SERVE_DONE);
    fake_run_free(&run, 4);
}

/* On the cost-model executor, one request through the step op costs what the
 * cost-model path gives it (prompt and context within the buckets' exact range):
 * the same schedules, replayed the same way. */
TEST(test_serve_exec_on_the_cost_model_prices_a_request_as_the_cost_model_path)
{
    static struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    struct serve_request req[1] = {{0, 0, 12, 5}};
    struct serve_request_result res[1], ref[1];
    struct serve_totals tot, ref_tot;
    struct serve_exec x;
    CHECK_EQ_INT(serve_with(&model_executor_ops, "naive", req, 1, 2, 1, &prof, &x, res, &tot), PB_OK);
    static struct model_spec m;
    static struct placement p;
    CHECK_EQ_INT(load_tiny(&m, &p, "naive", 2), PB_OK);
    struct serve_cost_model cost;
    int ordinal[2] = {0, 1};
    serve_cost_model_init(&cost, &prof, &m, strategy_find("naive"), &p, DTYPE_BF16, ordinal);
    struct serve_executor ex = serve_cost_model_executor(&cost);
    struct serve_policy pol = {.max_batch = 2, .groups = 1, .kv_capacity_tokens = 1 << 20, .max_context = 2048};
    CHECK_EQ_INT(serve_engine_run(&ex, &pol, req, 1, ref, &ref_tot), PB_OK);
    CHECK(res[0].first_token_ms > 0 && fabs(res[0].first_token_ms - ref[0].first_token_ms) < 1e-9);
    CHECK(fabs(res[0].finish_ms - ref[0].finish_ms) < 1e-9);
    for (int d = 0; d < 2; d++) CHECK(fabs(tot.busy_ms[d] - ref_tot.busy_ms[d]) < 1e-9);
    CHECK_EQ_INT(serve_exec_tokens(&x, 0)[0], -1);   /* the cost model computes no tokens */
    serve_results_free(res, 1);
    serve_results_free(ref, 1);
    serve_cost_model_free(&cost);
    serve_exec_close(&x);
}

/* A request the KV cache cannot hold even alone is refused by the engine and
 * never sizes the executor: the others are served on a cache sized for them. */
TEST(test_serve_exec_sizes_the_executor_without_the_requests_it_refuses)
{
    struct serve_request req[3] = {{0, 0, 6, 3}, {1, 0, 90, 20}, {2, 0, 4, 5}};
    struct fake_run run;
    test_kv_positions = 64;
    CHECK_EQ_INT(serve_on_fake(&run, "single", req, 3, 2, 1), PB_OK);
    test_kv_positions = 1 << 20;
    CHECK_EQ_INT(fake.seq, 6);
    CHECK_EQ_INT(fake.seq + fake.tokens, 9);
    CHECK_EQ_INT(run.res[1].status, SERVE_REFUSED);
    CHECK(strstr(run.res[1].reason, "KV cache") != NULL);
    CHECK(run.res[0].status == SERVE_DONE && run.res[2].status == SERVE_DONE);
    fake_run_free(&run, 3);
}

TEST(test_serve_exec_refuses_an_executor_without_a_step_op)
{
    struct executor_ops no_step = fake_ops;
    no_step.step = NULL;
    struct serve_request req[1] = {{0, 0, 4, 2}};
    struct serve_request_result res[1];
    struct serve_totals tot;
    struct serve_exec x;
    CHECK_EQ_INT(serve_with(&no_step, "single", req, 1, 1, 1, NULL, &x, res, &tot), PB_ERR);
    CHECK(strstr(pb_last_error(), "cannot run serving steps") != NULL);
    serve_exec_close(&x);
}

/* The prompts: seeded per request, the same whatever the rate or strategy. */
TEST(test_serve_prompt_tokens_depend_on_seed_and_request_only)
{
    int a[8], b[8], c[8];
    serve_prompt_tokens(5, 2, 8, 100, a);
    serve_prompt_tokens(5, 2, 8, 100, b);
    serve_prompt_tokens(5, 3, 8, 100, c);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    for (int i = 0; i < 8; i++) CHECK(a[i] >= 0 && a[i] < 100);
}

/* Measured serving needs GPUs; without any it says so and points to --simulate. */
TEST(test_serve_without_simulate_and_without_gpus_names_simulate)
{
    char dir[256], args[512], out[8192];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model models/llama-tiny.json --serve --requests 4 --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 1);
    CHECK(strstr(out, "runs on GPUs") && strstr(out, "--simulate"));
}

/* A measured point says so in every file, and busy time it could not measure
 * (no CUPTI) is empty, never "nan" or 0. */
TEST(test_serve_measured_points_are_marked_and_unknown_busy_is_empty)
{
    char dir[256], path[600];
    make_temp_dir(dir, sizeof dir);
    struct serve_point pt = {.strategy = "naive", .rate = INFINITY, .ok = 1, .measured = 1, .n_devices = 2,
                             .groups = 1, .max_batch = 2};
    pt.slo = (struct serve_slo){INFINITY, INFINITY};
    pt.tot.n_devices = 2;
    pt.tot.busy_ms[0] = pt.tot.busy_ms[1] = pt.tot.compute_ms[0] = pt.tot.compute_ms[1] = NAN;
    pt.met = (struct serve_point_metrics){.requests = 1, .completed = 1, .span_ms = 10, .requests_per_s = 100,
                                          .goodput_requests_per_s = NAN};
    snprintf(path, sizeof path, "%s/serve.csv", dir);
    CHECK_EQ_INT(serve_write_csv(path, &pt, 1), PB_OK);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK(!strcmp(csv_get(&t, 0, "predicted"), "0"));
    CHECK(!strcmp(csv_get(&t, 0, "utilisation_per_gpu"), ";"));
    CHECK(!strcmp(csv_get(&t, 0, "busy_ms_per_gpu"), ";"));
    csv_table_free(&t);
    static struct options o;
    static struct model_spec m;
    snprintf(o.command, sizeof o.command, "bench --serve");
    o.serve.prompt = o.serve.output = (struct length_spec){.kind = LENGTH_FIXED, .fixed = 4};
    snprintf(m.name, sizeof m.name, "tiny");
    snprintf(path, sizeof path, "%s/serve.json", dir);
    CHECK_EQ_INT(serve_write_json(path, &o, &m, NULL, "2 logical devices on 1 x H200", &pt, 1), PB_OK);
    char *json = text_file_read(path);
    CHECK(json && strstr(json, "\"predicted\":\tfalse") && strstr(json, "\"profile\":\tnull") &&
          strstr(json, "2 logical devices on 1 x H200"));
    free(json);
    char text[4096];
    o.serve.requests = 1;
    o.serve.max_batch = 2;
    o.serve.n_rates = 1;
    o.serve.rates[0] = INFINITY;
    serve_explain_text(&o, &pt, 1, text, sizeof text);
    CHECK(strstr(text, "through the CUDA executor") && strstr(text, "(measured)") && strstr(text, "busy unknown"));
    CHECK(!strstr(text, "nan"));
}

/* The whole measured path (serve_run_on with a target), driven on the CPU by the
 * cost-model executor standing in for the GPUs: every point served, every file and
 * the page written, passes counted, the table saying which executor ran it. */
TEST(test_serve_run_on_a_target_serves_every_point_and_writes_every_file)
{
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    char *argv[] = {"bench", "--model", "models/llama-tiny.json", "--serve", "--strategy", "single,naive,pipeline",
                    "--requests", "9", "--rate", "30,inf", "--prompt-len", "uniform:4-20", "--output-len",
                    "uniform:1-6", "--max-batch", "4", "--slo", "ttft=40ms,tpot=4ms", "--out", dir, NULL};
    static struct options o;
    static struct model_spec m;
    CHECK_EQ_INT(cli_parse((int)(sizeof argv / sizeof argv[0]) - 1, argv, &o), CLI_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);
    static struct device_profile prof;
    static struct serve_target t;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    t = (struct serve_target){.ops = &model_executor_ops, .map = {.n = 2, .ordinal = {0, 1}}, .records = 1,
                              .profile = &prof};
    snprintf(t.device, sizeof t.device, "2 x H200 (cost model)");
    o.gpus = 2;
    CHECK_EQ_INT(simulated_machine(&o, &prof, &t.mc), PB_OK);
    CHECK_EQ_INT(serve_run_on(&o, &m, &t), PB_OK);
    static const char *const files[] = {"serve.csv", "serve.json", "requests.csv", "serve.svg", "report.html"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = read_text_in(dir, files[i]);
        CHECK(text != NULL);
        free(text);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/serve.csv", dir);
    struct csv_table c;
    CHECK_EQ_INT(csv_read_file(path, &c), PB_OK);
    CHECK_EQ_INT(c.n_rows, 6);
    for (int i = 0; i < c.n_rows; i++) {
        CHECK(!strcmp(csv_get(&c, i, "status"), "ok"));
        CHECK(csv_get_num(&c, i, "completed") == 9);
        CHECK(csv_get_num(&c, i, "cost_evaluations") >= 9 + 1);   /* a pass per prompt, and decode steps */
        CHECK(csv_get_num(&c, i, "predicted") == 1);            /* the cost model stood in */
        CHECK(csv_list_num(csv_get(&c, i, "busy_ms_per_gpu"), 0) > 0);
    }
    csv_table_free(&c);
}
