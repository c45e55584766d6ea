/* The one sweep (harness/run/sweep.c) and the executor interface: points in one
 * order, any executor driven through warm-up, timed and profiled iterations and
 * checked against single; --plan, --simulate and --predict on the same programs. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/executor.h"
#include "../harness/exec/model/device_profile.h"
#include "../harness/run/sweep.h"
#include "test.h"

#define GIB (1ull << 30)

static void options(struct options *o, const char *strategies_csv, int gpus)
{
    memset(o, 0, sizeof *o);
    o->model_path = "models/llama-tiny.json";
    char buf[128];
    snprintf(buf, sizeof buf, "%s", strategies_csv);
    static char names[PB_MAX_LIST][32];
    for (char *t = strtok(buf, ","); t && o->n_strategies < PB_MAX_LIST; t = strtok(NULL, ",")) {
        snprintf(names[o->n_strategies], sizeof names[0], "%s", t);
        o->strategies[o->n_strategies] = names[o->n_strategies];
        o->n_strategies++;
    }
    o->batches[0] = 4;
    o->n_batches = 1;
    o->seqs[0] = 16;
    o->n_seqs = 1;
    o->dtype = DTYPE_BF16;
    o->gpus = gpus;
    o->iters = 3;
    o->warmup = 2;
    o->profile_iters = 2;
}

static void sweep_for(struct sweep *s, const struct options *o, const struct model_spec *m)
{
    *s = (struct sweep){.o = o, .m = m, .world = exec_world_single()};
    s->mc = (struct machine){.gpus = o->gpus, .cpu_memory = 512 * GIB, .budgets_from_user = 1};
    s->map.n = o->gpus;
    for (int d = 0; d < o->gpus; d++) {
        s->mc.gpu_memory[d] = 80 * GIB;
        s->map.ordinal[d] = d;
    }
}

TEST(test_points_run_single_first_and_repeat_only_strategies_that_take_microbatches)
{
    static struct options o;
    options(&o, "pipeline,naive,single", 2);
    o.microbatches[0] = 2;
    o.microbatches[1] = 4;
    o.n_microbatches = 2;
    o.batches[1] = 8;
    o.n_batches = 2;
    struct sweep_point p[32];
    int n = sweep_points(&o, p, 32);
    CHECK_EQ_INT(n, 2 * (3 + 1));   /* per batch: all three at m=2, the pipeline again at m=4 */
    CHECK(!strcmp(p[0].strategy, "single") && !strcmp(p[1].strategy, "pipeline") && !strcmp(p[2].strategy, "naive"));
    CHECK(!strcmp(p[3].strategy, "pipeline") && p[3].w.microbatches == 4);
    CHECK(p[4].w.batch == 8 && !strcmp(p[4].strategy, "single"));
    CHECK_EQ_INT(sweep_points(&o, p, 3), -1);
}

/* A fake executor: counts what the sweep asks of it; its "logits" are the same for
 * every strategy, so every point matches single. */
static struct fake_calls {
    int create, run, warm, timed, profiled, profiling_off, profiling_on, collect_into, collect_drop, outputs, destroy;
    int last_passes;
} calls;

static int fake_create(const struct exec_config *c, void **state)
{
    calls.create++;
    calls.last_passes = c->g->n_passes;
    *state = &calls;
    return PB_OK;
}

static int fake_run(void *state, int iteration, struct trace *t, double *ms)
{
    (void)state;
    calls.run++;
    if (iteration < 0) calls.warm++;
    else if (t) calls.profiled++;
    else calls.timed++;
    *ms = 2.0;
    return PB_OK;
}

static int fake_profiling(void *state, int on)
{
    (void)state;
    if (on) calls.profiling_on++;
    else calls.profiling_off++;
    return PB_OK;
}

static int fake_collect(void *state, struct trace *t, int iteration)
{
    (void)state;
    if (!t) {
        calls.collect_drop++;
        return PB_OK;
    }
    calls.collect_into++;
    struct record r = {.kind = REC_KERNEL, .device = 0, .start_ns = 0, .end_ns = 1000000, .iteration = iteration,
                       .src_device = -1, .dst_device = -1};
    snprintf(r.name, sizeof r.name, "kernel");
    return trace_add(t, &r);
}

static int fake_outputs(void *state, struct exec_outputs *out)
{
    (void)state;
    calls.outputs++;
    *out = (struct exec_outputs){.rows = 1, .vocab = 4};
    out->logits = calloc(4, sizeof *out->logits);
    for (int i = 0; out->logits && i < 4; i++) out->logits[i] = (uint16_t)(0x3f80 + i);
    return out->logits ? PB_OK : PB_ERR;
}

static void fake_destroy(void *state)
{
    (void)state;
    calls.destroy++;
}

static const struct executor_ops fake_ops = {.name = "fake", .create = fake_create, .run = fake_run,
                                             .profiling = fake_profiling, .collect = fake_collect,
                                             .outputs = fake_outputs, .destroy = fake_destroy};

TEST(test_any_executor_is_driven_through_warmup_timed_and_profiled_iterations)
{
    static struct options o;
    options(&o, "single,naive", 2);
    o.decode_tokens = 3;
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load(o.model_path, &m), PB_OK);
    static struct sweep s;
    sweep_for(&s, &o, &m);
    s.ex = &fake_ops;
    s.cupti_on = 1;
    memset(&calls, 0, sizeof calls);
    struct sweep_out out;
    CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
    CHECK_EQ_INT(out.n, 2);
    CHECK_EQ_INT(calls.create, 2);
    CHECK_EQ_INT(calls.destroy, 2);
    CHECK_EQ_INT(calls.last_passes, 4);                       /* the prompt and three decode passes */
    CHECK_EQ_INT(calls.warm, 2 * (o.warmup + 1));             /* warm-up, and one pass before profiling */
    CHECK_EQ_INT(calls.timed, 2 * o.iters);
    CHECK_EQ_INT(calls.profiled, 2 * o.profile_iters);
    CHECK_EQ_INT(calls.profiling_off, 2);
    CHECK_EQ_INT(calls.profiling_on, 2);
    CHECK_EQ_INT(calls.collect_into, 2 * o.profile_iters);
    CHECK_EQ_INT(out.failed, 0);
    for (int i = 0; i < out.n; i++) {
        const struct point_result *r = &out.res[i];
        CHECK(r->ok);
        CHECK_EQ_INT(r->iters, o.iters);
        CHECK_EQ_INT(r->profile_iters, o.profile_iters);
        CHECK_NEAR(r->p50_ms, 2.0, 1e-12);
        CHECK(r->busy_known);
        CHECK_NEAR(r->metrics.gpu[0].window_ms, 1.0, 1e-9);   /* from the collected records */
        CHECK_NEAR(r->speedup, 1.0, 1e-12);
    }
    CHECK(!out.res[0].logits_checked);                         /* single is the reference */
    CHECK(out.res[1].logits_checked && out.res[1].logits_match);
    sweep_out_free(&out);
}

TEST(test_plan_simulate_and_predict_agree_on_placement_and_steps)
{
    static struct options o;
    options(&o, "single,naive,pipeline,tp", 2);
    o.decode_tokens = 2;
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load(o.model_path, &m), PB_OK);
    static struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h100", &prof), PB_OK);
    static struct sweep plan, sim, meas;
    sweep_for(&plan, &o, &m);
    plan.profile = &prof;   /* --plan prices each GPU's work at its roofline */
    sweep_for(&sim, &o, &m);
    sim.ex = &model_executor_ops;
    sim.profile = &prof;
    sweep_for(&meas, &o, &m);
    meas.ex = &fake_ops;
    meas.predict = &prof;
    struct sweep_out p, s, f;
    CHECK_EQ_INT(sweep_run(&plan, &p), PB_OK);
    CHECK_EQ_INT(sweep_run(&sim, &s), PB_OK);
    CHECK_EQ_INT(sweep_run(&meas, &f), PB_OK);
    CHECK_EQ_INT(p.n, 4);
    CHECK(p.n == s.n && s.n == f.n);
    for (int i = 0; i < p.n && i < s.n && i < f.n; i++) {
        CHECK(p.plans[i].ok && s.res[i].ok && f.res[i].ok);
        CHECK(!strcmp(p.plans[i].strategy->name, s.res[i].strategy));
        CHECK(!strcmp(s.res[i].placement_summary, f.res[i].placement_summary));
        CHECK(!strcmp(s.res[i].placement_summary, p.res[i].placement_summary));
        CHECK_EQ_INT(p.plans[i].schedule.n_steps, s.res[i].steps);
        CHECK_EQ_INT(s.res[i].steps, f.res[i].steps);
        CHECK_EQ_INT(p.plans[i].schedule.microbatches, s.res[i].microbatches);
        CHECK(s.res[i].predicted && !f.res[i].predicted);
        /* --predict ran the cost model on the program the fake executor ran: --simulate's number. */
        CHECK_NEAR(f.res[i].predicted_ms, s.res[i].p50_ms, 1e-9);
        CHECK_NEAR(f.res[i].prediction_error_pct, (s.res[i].p50_ms - 2.0) / 2.0 * 100, 1e-6);
    }
    sweep_out_free(&p);
    sweep_out_free(&s);
    sweep_out_free(&f);
}

/* --simulate's sweep of naive on 2 GPUs of the h100 profile. */
static int cost_model_sweep(struct sweep *s, struct options *o, struct model_spec *m)
{
    static struct device_profile prof;
    options(o, "naive", 2);
    if (model_spec_load(o->model_path, m) != PB_OK || device_profile_load("h100", &prof) != PB_OK) return PB_ERR;
    sweep_for(s, o, m);
    s->ex = &model_executor_ops;
    s->profile = &prof;
    return PB_OK;
}

TEST(test_the_cost_model_runs_every_pass_of_the_program)
{
    static struct options o;
    static struct model_spec m;
    static struct sweep s;
    CHECK_EQ_INT(cost_model_sweep(&s, &o, &m), PB_OK);
    int heads[2];
    double ms[2];
    for (int k = 0; k < 2; k++) {
        o.decode_tokens = k ? 4 : 0;
        struct sweep_out out;
        CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
        heads[k] = 0;
        for (int i = 0; i < out.traces[0].n; i++) heads[k] += !strcmp(out.traces[0].rec[i].name, "head");
        ms[k] = out.res[0].p50_ms;
        CHECK(out.traces[0].predicted);
        sweep_out_free(&out);
    }
    CHECK_EQ_INT(heads[0], 1);
    CHECK_EQ_INT(heads[1], 5);   /* the prompt's head and one per greedy token */
    CHECK(ms[1] > ms[0]);
}

TEST(test_simulated_devices_follow_the_device_map)
{
    static struct options o;
    static struct model_spec m;
    static struct sweep s;
    CHECK_EQ_INT(cost_model_sweep(&s, &o, &m), PB_OK);
    s.map.ordinal[1] = 0;   /* --devices 0,0 */
    struct sweep_out out;
    CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
    CHECK(out.res[0].ok);
    CHECK_EQ_INT(out.res[0].ordinal[0], 0);
    CHECK_EQ_INT(out.res[0].ordinal[1], 0);
    sweep_out_free(&out);
}

/* hybrid in the default list on 2 GPUs with --virtual-stages 2: its default degree (2)
 * leaves one stage, which cannot interleave; the row says so and is skipped, while a
 * hybrid the user named fails with the placement's message. */
TEST(test_default_hybrid_that_cannot_place_is_skipped_not_failed)
{
    static struct options o;
    static struct model_spec m;
    static struct sweep s;
    CHECK_EQ_INT(cost_model_sweep(&s, &o, &m), PB_OK);
    options(&o, "single,hybrid", 2);
    s.mc.virtual_stages = 2;
    struct sweep_out out;
    CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
    CHECK_EQ_INT(out.n, 2);
    CHECK(out.res[0].ok);
    CHECK(!out.res[1].ok && out.res[1].skipped);
    CHECK(strstr(out.res[1].reason, "default list") && strstr(out.res[1].reason, "--virtual-stages 2"));
    CHECK_EQ_INT(out.skipped, 1);
    CHECK_EQ_INT(out.failed, 0);
    sweep_out_free(&out);
    o.strategies_named = 1;
    CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
    CHECK(!out.res[1].ok && !out.res[1].skipped);
    CHECK_EQ_INT(out.failed, 1);
    sweep_out_free(&out);
    /* on 4 GPUs the default (2 stages of 2) places and runs */
    options(&o, "single,hybrid", 4);
    const struct device_profile *prof = s.profile;
    sweep_for(&s, &o, &m);
    s.ex = &model_executor_ops;
    s.profile = prof;
    s.mc.virtual_stages = 2;
    CHECK_EQ_INT(sweep_run(&s, &out), PB_OK);
    CHECK(out.res[1].ok);
    CHECK_EQ_INT(out.failed, 0);
    sweep_out_free(&out);
}
