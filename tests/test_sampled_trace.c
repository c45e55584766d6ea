/* The cost model keeps records of only a sample of decode passes (first, last, a few
 * between) and exact totals of all of them: the metrics must be those of the run that
 * keeps every record, number for number, and the trace and reports must say so. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/executor.h"
#include "../harness/exec/model/device_profile.h"
#include "../harness/measure/metrics.h"
#include "../harness/run/run_common.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement placed;

/* The cost model's trace of one llama-tiny point on 2 GPUs; *keep (if given) gets the program. */
static int predict_keeping(const char *strategy, int tokens, int every_pass, struct trace *t, double *ms,
                           struct program *keep)
{
    static struct device_profile prof;
    struct model_spec m;
    if (device_profile_load("h200", &prof) != PB_OK || model_spec_load("models/llama-tiny.json", &m) != PB_OK)
        return PB_ERR;
    struct machine mc = {.gpus = 2, .cpu_memory = 512 * GIB, .budgets_from_user = 1};
    for (int d = 0; d < 2; d++) mc.gpu_memory[d] = 141 * GIB;
    struct workload w = {.batch = 4, .seq = 16, .context = 16, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    const struct strategy *st = strategy_find(strategy);
    struct program g;
    if (st->place(&m, &w, &mc, &placed) != PB_OK || program_plan(st, &m, &placed, &w, tokens, &g) != PB_OK)
        return PB_ERR;
    struct device_map map = {.n = 2, .ordinal = {0, 1}};
    struct exec_config c = {.m = &m, .p = &placed, .g = &g, .map = &map, .world = exec_world_single(),
                            .label = strategy, .profile = &prof, .every_pass = every_pass};
    void *e = NULL;
    trace_init(t, 2);
    int rc = model_executor_ops.create(&c, &e);
    if (rc == PB_OK) rc = model_executor_ops.run(e, 0, t, ms);
    if (e) model_executor_ops.destroy(e);
    if (keep) *keep = g;
    else program_free(&g);
    return rc;
}

static int predict(const char *strategy, int tokens, int every_pass, struct trace *t, double *ms)
{
    return predict_keeping(strategy, tokens, every_pass, t, ms, NULL);
}

static void check_same_metrics(int *failures_, const struct iteration_metrics *a, const struct iteration_metrics *b)
{
    CHECK_EQ_INT(a->n_devices, b->n_devices);
    for (int d = 0; d < a->n_devices; d++) {
        const struct gpu_metrics *x = &a->gpu[d], *y = &b->gpu[d];
        CHECK(x->window_ms == y->window_ms && x->compute_ms == y->compute_ms && x->comm_ms == y->comm_ms);
        CHECK(x->copy_ms == y->copy_ms && x->idle_ms == y->idle_ms && x->utilisation == y->utilisation);
        CHECK(x->own_span_ms == y->own_span_ms && x->known == y->known);
    }
    CHECK(a->allreduce_ms == b->allreduce_ms);
    CHECK_EQ_INT(a->n_links, b->n_links);
    for (int k = 0; k < a->n_links && k < b->n_links; k++) {
        CHECK_EQ_INT(a->link[k].src, b->link[k].src);
        CHECK_EQ_INT(a->link[k].dst, b->link[k].dst);
        CHECK_EQ_INT(a->link[k].bytes, b->link[k].bytes);
        CHECK(a->link[k].ms == b->link[k].ms && a->link[k].gbps == b->link[k].gbps);
    }
}

TEST(test_sampled_decode_trace_gives_the_full_traces_metrics_exactly)
{
    /* pipeline: peer copies between the stages; tp: all-reduces on both GPUs. */
    const char *strategies_[] = {"naive", "pipeline", "tp"};
    for (int i = 0; i < 3; i++) {
        struct trace full, sampled;
        double full_ms = 0, sampled_ms = 0;
        CHECK_EQ_INT(predict(strategies_[i], 64, 1, &full, &full_ms), PB_OK);
        CHECK_EQ_INT(predict(strategies_[i], 64, 0, &sampled, &sampled_ms), PB_OK);
        CHECK(full_ms == sampled_ms);
        CHECK_EQ_INT(full.n_totals, 0);
        CHECK_EQ_INT(sampled.n_totals, 1);
        CHECK(sampled.n * 4 < full.n);   /* 9 of 65 passes kept */
        struct iteration_metrics a, b;
        CHECK_EQ_INT(metrics_mean(&full, 1, &a), PB_OK);
        CHECK_EQ_INT(metrics_mean(&sampled, 1, &b), PB_OK);
        CHECK(a.gpu[0].window_ms > 0 && a.gpu[1].compute_ms > 0);
        check_same_metrics(failures_, &a, &b);
        if (i == 1) CHECK(a.n_links > 0);
        if (i == 2) CHECK(a.allreduce_ms > 0);
        trace_free(&full);
        trace_free(&sampled);
    }
}

TEST(test_sampled_trace_names_its_passes_and_says_totals_cover_all)
{
    struct trace t;
    double ms;
    char note[256];
    CHECK_EQ_INT(predict("naive", 64, 0, &t, &ms), PB_OK);
    CHECK_EQ_INT(t.sample.passes, 65);
    CHECK_EQ_INT(trace_sample_describe(&t, note, sizeof note), 1);
    CHECK(strcmp(note, "the prompt pass and decode passes 1, 2, 14, 26, 38, 50, 63, 64 of 64 shown; "
                       "totals cover all") == 0);
    trace_free(&t);
    /* A short generation is drawn whole and says nothing. */
    CHECK_EQ_INT(predict("naive", 8, 0, &t, &ms), PB_OK);
    CHECK_EQ_INT(trace_sample_describe(&t, note, sizeof note), 0);
    CHECK_EQ_INT(t.n_totals, 0);
    trace_free(&t);
}

TEST(test_long_decode_keeps_a_trace_no_larger_than_a_short_ones)
{
    /* Memory no longer grows with the tokens: 1000 tokens keep the records of 64. */
    struct trace short_run, long_run;
    double ms;
    CHECK_EQ_INT(predict("tp", 64, 0, &short_run, &ms), PB_OK);
    CHECK_EQ_INT(predict("tp", 1000, 0, &long_run, &ms), PB_OK);
    CHECK_EQ_INT(long_run.n, short_run.n);
    CHECK_EQ_INT(long_run.sample.passes, 1001);
    trace_free(&short_run);
    trace_free(&long_run);
}

/* Idle time by cause and busy time by step kind of a sampled trace: split by the
 * cost model from every pass's intervals, so the same numbers as a trace that keeps
 * every record, on every GPU (pipeline: peer waits; tp: collectives). */
static void attribute(const char *strategy, int every_pass, struct point_result *r, int *failures_)
{
    struct trace t;
    struct program g;
    double ms;
    CHECK_EQ_INT(predict_keeping(strategy, 64, every_pass, &t, &ms, &g), PB_OK);
    CHECK_EQ_INT(t.n_totals > 0, !every_pass);
    memset(r, 0, sizeof *r);
    r->busy_known = 1;
    CHECK_EQ_INT(metrics_mean(&t, 1, &r->metrics), PB_OK);
    run_attribute(r, &t, &g, 1, NULL);
    program_free(&g);
    trace_free(&t);
}

TEST(test_sampled_trace_splits_idle_by_cause_as_the_whole_trace_does)
{
    const char *strategies[] = {"pipeline", "tp", "naive"};
    for (int k = 0; k < 3; k++) {
        static struct point_result sampled, whole;
        attribute(strategies[k], 0, &sampled, failures_);
        attribute(strategies[k], 1, &whole, failures_);
        double peer = 0;
        for (int d = 0; d < whole.metrics.n_devices; d++) {
            const struct gpu_metrics *a = &sampled.metrics.gpu[d], *b = &whole.metrics.gpu[d];
            CHECK(!isnan(a->idle_peer_wait_ms) && !isnan(a->idle_host_ms) && !isnan(a->idle_other_ms));
            CHECK_NEAR(a->idle_peer_wait_ms, b->idle_peer_wait_ms, 1e-9);
            CHECK_NEAR(a->idle_host_ms, b->idle_host_ms, 1e-9);
            CHECK_NEAR(a->idle_other_ms, b->idle_other_ms, 1e-9);
            CHECK_NEAR(a->idle_peer_wait_ms + a->idle_host_ms + a->idle_other_ms, a->idle_ms, 1e-6);
            for (int w = 0; w < PB_WORK_KINDS; w++) CHECK_NEAR(a->work_ms[w], b->work_ms[w], 1e-9);
            peer += a->idle_peer_wait_ms;
        }
        if (k == 0) CHECK(peer > 0);   /* a pipeline's later stages wait on earlier ones */
    }
}
