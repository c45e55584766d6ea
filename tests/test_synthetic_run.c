/* The synthetic 2-GPU run behind the plot, explain and report tests (see
 * synthetic_run.h), and a check that its metrics say what it was built to say. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../harness/report/placement_view.h"
#include "synthetic_run.h"
#include "test.h"

static int add(struct trace *t, enum record_kind kind, int dev, int stream, double t0_ms, double t1_ms, int it,
               const char *name)
{
    struct record r = {.kind = kind, .device = dev, .stream = stream, .iteration = it, .src_device = -1,
                       .dst_device = -1};
    /* Iterations 1 ms apart from each other in time, each at its own base. */
    double base = it * 1000.0;
    r.start_ns = (uint64_t)llround((base + t0_ms) * 1e6);
    r.end_ns = (uint64_t)llround((base + t1_ms) * 1e6);
    snprintf(r.name, sizeof r.name, "%s", name);
    if (kind == REC_MEMCPY) {
        r.copy = COPY_PTOP;
        r.src_device = 0;
        r.dst_device = 1;
        r.bytes = 8ull * 128 * 256 * 2;
    }
    return trace_add(t, &r);
}

/* Layers 0-2 on GPU 0 then 3-5 on GPU 1, one GPU at a time; `extra` ms of host
 * overhead between steps (accelerate's hooks). */
static void sequential(struct trace *t, int it, double extra)
{
    double c = 0;
    add(t, REC_KERNEL, 0, 0, c, c + 1, it, "embed");
    c += 1 + extra;
    for (int l = 0; l < 3; l++, c += 16 + extra) {
        char n[32];
        snprintf(n, sizeof n, "layer %d", l);
        add(t, REC_KERNEL, 0, 0, c, c + 16, it, n);
    }
    add(t, REC_MEMCPY, 1, 1, c, c + 0.5, it, "copy 0->1");
    c += 0.5;
    for (int l = 3; l < 6; l++, c += 16 + extra) {
        char n[32];
        snprintf(n, sizeof n, "layer %d", l);
        add(t, REC_KERNEL, 1, 0, c, c + 16, it, n);
    }
    add(t, REC_KERNEL, 1, 0, c, c + 2, it, "norm+lm_head");
}

static void single_trace(struct trace *t, int it)
{
    add(t, REC_KERNEL, 0, 0, 0, 1, it, "embed");
    add(t, REC_KERNEL, 0, 0, 1, 97, it, "layers 0-5");
    add(t, REC_KERNEL, 0, 0, 97, 99, it, "norm+lm_head");
}

/* GPipe: stage s of microbatch k starts when stage s-1 of k and stage s of k-1 end. */
static void pipeline_trace(struct trace *t, int it, int mbs)
{
    double per = 96.0 / 2 / mbs, end0 = 0, end1 = 0;
    for (int k = 0; k < mbs; k++) {
        char n[48];
        snprintf(n, sizeof n, "layers 0-2 mb%d", k);
        add(t, REC_KERNEL, 0, 0, end0, end0 + per, it, n);
        end0 += per;
        snprintf(n, sizeof n, "copy 0->1 mb%d", k);
        add(t, REC_MEMCPY, 1, 1, end0, end0 + 0.2, it, n);
        double s1 = end0 + 0.2 > end1 ? end0 + 0.2 : end1;
        snprintf(n, sizeof n, "layers 3-5 mb%d", k);
        add(t, REC_KERNEL, 1, 0, s1, s1 + per, it, n);
        end1 = s1 + per;
    }
}

static void tp_trace(struct trace *t, int it)
{
    double c = 0;
    for (int l = 0; l < 6; l++) {
        char n[48];
        for (int d = 0; d < 2; d++) {
            snprintf(n, sizeof n, "attention %d", l);
            add(t, REC_KERNEL, d, 0, c, c + 3, it, n);
            add(t, REC_COMM, d, 0, c + 3, c + 3.5, it, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL");
            snprintf(n, sizeof n, "mlp %d", l);
            add(t, REC_KERNEL, d, 0, c + 3.5, c + 8.5, it, n);
            add(t, REC_COMM, d, 0, c + 8.5, c + 9, it, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL");
        }
        c += 9;
    }
}

static int point(struct synthetic_run *s, int i, const char *strategy, int devices, int mbs)
{
    struct point_result *r = &s->r[i];
    struct trace *t = &s->t[i];
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", strategy);
    r->w = (struct workload){.batch = 8, .seq = 128, .context = 128, .microbatches = mbs, .dtype = DTYPE_BF16};
    r->n_devices = devices;
    r->ordinal[1] = 1;
    r->microbatches = mbs;
    r->stages = strcmp(strategy, "tp") ? devices : 1;
    r->iters = 3;
    r->gpipe_bound = NAN;
    r->speedup = NAN;
    trace_init(t, devices);
    s->traces[i] = t;
    const struct strategy *st = strategy_find(strategy);
    struct machine mc = {.gpus = devices, .cpu_memory = 512ull << 30, .budgets_from_user = 1};
    for (int d = 0; d < devices; d++) mc.gpu_memory[d] = 80ull << 30;
    r->placement = malloc(sizeof *r->placement);
    if (!st || !r->placement || st->place(&s->m, &r->w, &mc, r->placement) != PB_OK) return -1;
    placement_summary(r->placement, r->placement_summary, sizeof r->placement_summary);
    return 0;
}

/* Latency, metrics and the derived columns, as the run loop computes them. */
static int finish(struct point_result *r, const struct trace *t, double single_p50)
{
    r->ok = 1;
    r->busy_known = 1;
    r->logits_checked = 1;
    r->logits_match = 1;
    r->latency_ms = malloc(3 * sizeof *r->latency_ms);
    if (!r->latency_ms || metrics_mean(t, 3, &r->metrics) != PB_OK) return -1;
    double window = r->metrics.gpu[0].window_ms;
    for (int k = 0; k < 3; k++) r->latency_ms[k] = window + 0.1 * k;
    r->p50_ms = metrics_percentile(r->latency_ms, 3, 50);
    r->p90_ms = metrics_percentile(r->latency_ms, 3, 90);
    r->p99_ms = metrics_percentile(r->latency_ms, 3, 99);
    r->mean_ms = r->p50_ms;
    r->tokens_per_s = r->w.batch * r->w.seq / (r->p50_ms / 1e3);
    r->speedup = single_p50 > 0 ? single_p50 / r->p50_ms : NAN;
    for (int k = 0; k < r->metrics.n_links; k++) {
        r->transfer_bytes += (double)r->metrics.link[k].bytes;
        r->transfer_ms += r->metrics.link[k].ms;
    }
    if (r->microbatches > 1) {
        r->gpipe_bound = metrics_gpipe_bound(r->stages, r->microbatches, 1);
        for (int d = 0; d < r->stages; d++) r->bubble[d] = metrics_bubble(&r->metrics, d);
    }
    return 0;
}

int synthetic_run_make(struct synthetic_run *s)
{
    memset(s, 0, sizeof *s);
    if (model_spec_load("models/llama-tiny.json", &s->m) != PB_OK) return -1;
    s->n = SYN_POINTS;
    const char *names[SYN_POINTS] = {"single", "naive", "auto", "pipeline", "pipeline", "tp", "optimal"};
    int devices[SYN_POINTS] = {1, 2, 2, 2, 2, 2, 2}, mbs[SYN_POINTS] = {1, 1, 1, 2, 4, 1, 1};
    for (int i = 0; i < SYN_POINTS; i++)
        if (point(s, i, names[i], devices[i], mbs[i]) != 0) return -1;
    for (int it = 0; it < 3; it++) {
        single_trace(&s->t[0], it);
        sequential(&s->t[1], it, 0);
        sequential(&s->t[2], it, 0.4);
        pipeline_trace(&s->t[3], it, 2);
        pipeline_trace(&s->t[4], it, 4);
        tp_trace(&s->t[5], it);
    }
    if (finish(&s->r[0], &s->t[0], 0) != 0) return -1;
    for (int i = 1; i < 6; i++)
        if (finish(&s->r[i], &s->t[i], s->r[0].p50_ms) != 0) return -1;
    snprintf(s->r[6].reason, sizeof s->r[6].reason, "out of memory on GPU 1 (synthetic)");
    s->traces[6] = NULL;
    s->env.n_gpus = 2;
    snprintf(s->env.weights, sizeof s->env.weights, "random");
    for (int d = 0; d < 2; d++) {
        snprintf(s->env.gpu_name[d], sizeof s->env.gpu_name[d], "NVIDIA H200 <test & \"quotes\">");
        s->env.gpu_memory[d] = 150ull << 30;
    }
    s->env.peer[0][1] = s->env.peer[1][0] = 1;
    s->env.driver_version = 13000;
    s->env.runtime_version = 13000;
    s->env.cupti_enabled = 1;
    snprintf(s->env.model, sizeof s->env.model, "llama-tiny");
    snprintf(s->env.command, sizeof s->env.command, "bench --model llama-tiny --gpus 2 --batch 8 --seq 128");
    snprintf(s->env.started, sizeof s->env.started, "2025-01-01T00:00:00Z");
    s->env.iters = 3;
    s->env.warmup = 1;
    s->o.iters = 3;
    snprintf(s->o.command, sizeof s->o.command, "%s", s->env.command);
    return 0;
}

void synthetic_run_free(struct synthetic_run *s)
{
    for (int i = 0; i < s->n; i++) {
        point_result_free(&s->r[i]);
        trace_free(&s->t[i]);
    }
}

int synthetic_run_write(const struct synthetic_run *s, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    PB_TRY(summary_write_csv(dir, &s->env, s->r, s->n));
    PB_TRY(summary_write_json(dir, &s->env, s->r, s->n));
    return trace_json_write(path, &s->env, s->r, s->traces, s->n);
}

TEST(test_synthetic_run_shows_one_gpu_at_a_time_for_naive)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    const struct point_result *naive = &s.r[1], *pipe = &s.r[4];
    /* Naive: each GPU about half busy; together about one GPU. */
    CHECK(naive->metrics.gpu[0].utilisation > 0.4 && naive->metrics.gpu[0].utilisation < 0.6);
    CHECK(naive->metrics.gpu[0].utilisation + naive->metrics.gpu[1].utilisation < 1.01);
    /* Pipeline with 4 microbatches: faster than naive, bubble near the GPipe bound 1/5. */
    CHECK(pipe->p50_ms < naive->p50_ms);
    CHECK_NEAR(pipe->gpipe_bound, 0.2, 1e-9);
    CHECK(pipe->bubble[0] > 0.15 && pipe->bubble[0] < 0.3);
    synthetic_run_free(&s);
}
