/* bench --simulate end to end on the CPU: points filled like measured ones and
 * the report files written. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include "../base/check.h"
#include "../harness/run/simulate_run.h"
#include "test.h"

static void base_options(struct options *o)
{
    memset(o, 0, sizeof *o);
    o->model_path = "models/llama-2-7b.json";
    for (int i = 0; strategies[i]; i++) o->strategies[o->n_strategies++] = strategies[i]->name;
    o->batches[0] = 8;
    o->n_batches = 1;
    o->seqs[0] = 128;
    o->n_seqs = 1;
    o->n_microbatches = 1;
    o->dtype = DTYPE_BF16;
    o->gpus = 2;
    o->simulate = 1;
    o->gpu_profile = "h200";
    o->iters = 20;
}

static int file_exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

TEST(test_simulate_writes_predicted_reports)
{
    static struct options o;
    base_options(&o);
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    o.out_dir = dir;
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load(o.model_path, &m), PB_OK);
    CHECK_EQ_INT(run_simulated(&o, &m), PB_OK);
    CHECK(file_exists(dir, "summary.csv"));
    CHECK(file_exists(dir, "summary.json"));
    CHECK(file_exists(dir, "trace.json"));
    CHECK(file_exists(dir, "profile.json"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q '\"predicted\":true' %s/trace.json && grep -q 'predicted' "
             "%s/summary.json", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

TEST(test_simulated_point_matches_its_trace)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h100", &prof), PB_OK);
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct workload w = {.batch = 8, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc = {.gpus = 4, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1};
    for (int d = 0; d < 4; d++) mc.gpu_memory[d] = prof.memory_bytes;
    const struct strategy *st = strategy_find("pipeline");
    static struct placement p;
    CHECK_EQ_INT(st->place(&m, &w, &mc, &p), PB_OK);
    struct point_result r;
    struct trace t;
    CHECK_EQ_INT(simulate_point(&prof, &m, st, &p, &w, 0, &r, &t), PB_OK);
    CHECK(r.ok && t.predicted);
    CHECK_EQ_INT(r.iters, 1);
    CHECK_NEAR(r.p50_ms, r.metrics.gpu[0].window_ms, 1e-6);
    CHECK_NEAR(r.tokens_per_s, 8 * 128 / (r.p50_ms / 1e3), 1e-6);
    CHECK_EQ_INT(r.microbatches, 8);
    CHECK_NEAR(r.gpipe_bound, 3.0 / 11.0, 1e-12);
    for (int s = 0; s < r.stages; s++) CHECK(r.bubble[s] >= r.gpipe_bound - 0.05);
    CHECK(r.transfer_bytes > 0);
    point_result_free(&r);
    trace_free(&t);

    /* Generate mode: the prefill plus one pass per token, slower than the prefill alone. */
    double prefill = r.p50_ms;
    CHECK_EQ_INT(simulate_point(&prof, &m, st, &p, &w, 8, &r, &t), PB_OK);
    CHECK(r.p50_ms > prefill);
    CHECK_NEAR(r.tokens_per_s, 8 * 8 / (r.p50_ms / 1e3), 1e-6);
    point_result_free(&r);
    trace_free(&t);
}

TEST(test_simulate_records_strategies_that_cannot_be_placed)
{
    static struct options o;
    base_options(&o);
    const char *only[] = {"tp"};
    o.strategies[0] = only[0];
    o.n_strategies = 1;
    o.gpus = 3;   /* 32 heads do not split over 3 GPUs */
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    o.out_dir = dir;
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load(o.model_path, &m), PB_OK);
    CHECK_EQ_INT(run_simulated(&o, &m), PB_ERR);
    CHECK(file_exists(dir, "summary.csv"));   /* the failure is reported, not lost */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q 'do not divide' %s/summary.csv && rm -rf %s", dir, dir);
    CHECK(system(cmd) == 0);
}

TEST(test_simulate_refuses_an_unknown_profile)
{
    static struct options o;
    base_options(&o);
    o.gpu_profile = "tpu-v5";
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load(o.model_path, &m), PB_OK);
    CHECK_EQ_INT(run_simulated(&o, &m), PB_ERR);
    CHECK(strstr(pb_last_error(), "tpu-v5"));
}

/* A simulated point of strategy on 4 H200s, batch 8 x 512. */
static int simulate_4(const char *strategy, int tp, int virtual_stages, struct point_result *r)
{
    struct device_profile prof;
    struct model_spec m;
    PB_TRY(device_profile_load("h200", &prof));
    PB_TRY(model_spec_load("models/llama-2-7b.json", &m));
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc = {.gpus = 4, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1, .tp = tp,
                         .virtual_stages = virtual_stages};
    for (int d = 0; d < 4; d++) mc.gpu_memory[d] = prof.memory_bytes;
    const struct strategy *st = strategy_find(strategy);
    static struct placement p;
    PB_TRY(st->place(&m, &w, &mc, &p));
    struct trace t;
    int rc = simulate_point(&prof, &m, st, &p, &w, 0, r, &t);
    if (rc == PB_OK) trace_free(&t);
    return rc;
}

TEST(test_simulated_hybrid_pipelines_two_tp_stages)
{
    struct point_result h, single;
    CHECK_EQ_INT(simulate_4("hybrid", 2, 0, &h), PB_OK);
    CHECK_EQ_INT(simulate_4("single", 0, 0, &single), PB_OK);
    CHECK(h.ok);
    CHECK_EQ_INT(h.stages, 2);
    CHECK_EQ_INT(h.microbatches, 4);   /* the default: 2 x stages */
    CHECK(strstr(h.placement_summary, "tp x2 | 0-1: embed, layers 0-15") != NULL);
    /* Faster than one GPU but not 4x: each stage's GPUs pay all-reduces and the pipeline a bubble. */
    CHECK(h.p50_ms > single.p50_ms / 4 && h.p50_ms < single.p50_ms / 2);
    CHECK(h.metrics.allreduce_ms > 0);
    CHECK(h.transfer_bytes > 0);   /* the copies between the stages */
    CHECK_NEAR(h.gpipe_bound, 1.0 / 5.0, 1e-12);
    for (int s = 0; s < h.stages; s++) CHECK(h.bubble[s] >= h.gpipe_bound - 0.05);
    point_result_free(&h);
    point_result_free(&single);
}

TEST(test_simulated_interleaving_shrinks_the_bubble_toward_its_bound)
{
    struct point_result one, two;
    CHECK_EQ_INT(simulate_4("pipeline", 0, 0, &one), PB_OK);
    CHECK_EQ_INT(simulate_4("pipeline", 0, 2, &two), PB_OK);
    CHECK_EQ_INT(two.stages, 4);
    CHECK_EQ_INT(two.microbatches, 8);
    CHECK_NEAR(one.gpipe_bound, 3.0 / 11.0, 1e-12);
    CHECK_NEAR(two.gpipe_bound, 3.0 / 19.0, 1e-12);   /* (p-1)/(V*m+p-1) */
    CHECK(two.p50_ms < one.p50_ms);
    for (int s = 0; s < 4; s++) {
        CHECK(two.bubble[s] < one.bubble[s]);
        CHECK(two.bubble[s] >= two.gpipe_bound - 0.05);
    }
    point_result_free(&one);
    point_result_free(&two);
}

/* Llama-2-7B, 8 x 512 on 2 GPUs: 64 all-reduces of 8 x 512 x 4096 bf16 (32 MiB) and the
 * head's all-gather of 8 x 512 x 32000 bf16 logits; the bus bandwidth, nccl-tests'
 * factor x bytes / time, just under the profile's rate (each call also pays its launch
 * and step latencies). */
TEST(test_tp_counts_its_all_reduce_bytes_and_bus_bandwidth)
{
    struct device_profile prof;
    struct model_spec m;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc = {.gpus = 2, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1};
    for (int d = 0; d < 2; d++) mc.gpu_memory[d] = prof.memory_bytes;
    static struct placement p;
    const struct strategy *tp = strategy_find("tp"), *naive = strategy_find("naive");
    CHECK_EQ_INT(tp->place(&m, &w, &mc, &p), PB_OK);
    struct point_result r;
    struct trace t;
    CHECK_EQ_INT(simulate_point(&prof, &m, tp, &p, &w, 0, &r, &t), PB_OK);
    double all_reduce = 8.0 * 512 * 4096 * 2, all_gather = 8.0 * 512 * 32000 * 2;
    CHECK_NEAR(r.collective_bytes, 64 * all_reduce + all_gather, 0.5);
    CHECK(r.collective_busbw_gbps > 0.8 * prof.allreduce.bus_gbps);
    CHECK(r.collective_busbw_gbps <= prof.allreduce.bus_gbps);
    /* The same figure from the trace by hand: bus bytes over the ranks' NCCL time. */
    double comm = r.metrics.gpu[0].comm_ms + r.metrics.gpu[1].comm_ms;
    double bus_per_rank = 64 * all_reduce * (2.0 * 1 / 2) + all_gather * (1.0 / 2);
    CHECK_NEAR(r.collective_busbw_gbps, 2 * bus_per_rank / comm / 1e6, 1e-6);
    point_result_free(&r);
    trace_free(&t);

    CHECK_EQ_INT(naive->place(&m, &w, &mc, &p), PB_OK);
    CHECK_EQ_INT(simulate_point(&prof, &m, naive, &p, &w, 0, &r, &t), PB_OK);
    CHECK_NEAR(r.collective_bytes, 0, 0);
    CHECK(isnan(r.collective_busbw_gbps));
    point_result_free(&r);
    trace_free(&t);
}
