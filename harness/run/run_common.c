/* See run_common.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "run_common.h"
#include "predict.h"
#include "../measure/hw_use.h"
#include "../measure/idle_cause.h"

void run_prompt_tokens(int *out, int n, int vocab, uint64_t seed)
{
    /* splitmix64: cheap, well spread, and the same on every platform. */
    uint64_t x = seed ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        x += 0x9e3779b97f4a7c15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        out[i] = (int)((z ^ (z >> 31)) % (uint64_t)vocab);
    }
}

void run_prompt_fill(int *out, const int *given, int n, int vocab, uint64_t seed)
{
    if (given) memcpy(out, given, (size_t)n * sizeof *out);
    else run_prompt_tokens(out, n, vocab, seed);
}

static double bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

double run_tp_tolerance(const struct placement *p)
{
    int layers = 0;
    for (int i = 0; p && i < p->n_modules; i++) layers += p->modules[i].kind == MODULE_LAYER;
    return RUN_TP_REL_TOLERANCE * (layers > 4 ? layers / 4.0 : 1);
}

static void check_logits(struct point_result *r, const struct reference *ref, const uint16_t *got, int rows,
                         int vocab, const int *tokens)
{
    if (!ref->logits || rows != ref->rows || vocab != ref->vocab) return;
    size_t n = (size_t)rows * vocab;
    double diff = 0, sq_diff = 0, sq_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double a = bf16_to_float(ref->logits[i]), d = fabs(a - bf16_to_float(got[i]));
        if (!(d <= diff)) diff = d;   /* NAN sticks */
        sq_diff += d * d;
        sq_ref += a * a;
    }
    r->logits_checked = 1;
    r->max_abs_diff = diff;
    r->rel_error = sq_ref > 0 ? sqrt(sq_diff / sq_ref) : (sq_diff > 0 ? INFINITY : 0);
    /* Tensor parallel sums each layer's shards in another order than single's GEMM,
     * so its logits are another bf16 forward of the same weights. The GPU suite's
     * peer test judges that arithmetic against the fp32 forward (tp is as close to it
     * as single there); this check is for a wrong shard or a lost rank, which moves
     * the logits by their own size. Its bar: the peer test's for two bf16 forwards of
     * a 4-layer model (2e-2 relative), times layers / 4, since a rounding difference
     * grows as it passes through the layers (random Llama-2-7B on an H200: tp against
     * single 0.057 after 32 layers, where the 4-layer peer models differ by 0.6-0.9%).
     * The largest single difference is reported, not judged: over millions of logits
     * one tail value is always several bf16 steps away. */
    int sums_shards = r->placement ? r->placement->tensor_parallel : !strcmp(r->strategy, "tp");
    r->tolerance = sums_shards ? run_tp_tolerance(r->placement) : 0;
    /* Generate mode: once tp's greedy pick parts from single's at a near-tie the two
     * runs continue different texts, and their last logits are not comparable. Said,
     * not judged; the prompt pass is judged in prefill mode (and by the peer test). */
    if (sums_shards && tokens && ref->tokens && memcmp(tokens, ref->tokens, (size_t)r->w.batch * sizeof(int))) {
        r->logits_checked = 0;
        r->tokens_parted = 1;
        return;
    }
    int same = r->tolerance == 0 ? memcmp(ref->logits, got, n * sizeof *got) == 0 : r->rel_error <= r->tolerance;
    if (same && tokens && ref->tokens && r->tolerance == 0)
        same = memcmp(tokens, ref->tokens, (size_t)r->w.batch * sizeof(int)) == 0;
    r->logits_match = same;
}

/* A fingerprint of a run's output, so two jobs' results can be compared from
 * their summary.json files alone. */
static void fingerprint(struct point_result *r, const uint16_t *logits, size_t n, const int *tokens, int n_tokens)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = (const unsigned char *)logits;
    for (size_t i = 0; i < n * sizeof *logits; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    b = (const unsigned char *)tokens;
    for (size_t i = 0; tokens && i < (size_t)n_tokens * sizeof *tokens; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    snprintf(r->logits_fnv1a, sizeof r->logits_fnv1a, "%016llx", (unsigned long long)h);
}

void run_reference_or_check(struct point_result *r, struct reference *ref, uint16_t **logits, int rows,
                            int vocab, int **tokens)
{
    if (!*logits) return;
    fingerprint(r, *logits, (size_t)rows * vocab, *tokens, r->decode_tokens ? r->w.batch : 0);
    if (strcmp(r->strategy, "single") || ref->logits) {
        check_logits(r, ref, *logits, rows, vocab, *tokens);
        return;
    }
    /* The reference itself: nothing to compare it with. */
    *ref = (struct reference){*logits, rows, vocab, *tokens, r->p50_ms};
    *logits = NULL;
    *tokens = NULL;
}

void run_reference_free(struct reference *ref)
{
    free(ref->logits);
    free(ref->tokens);
    memset(ref, 0, sizeof *ref);
}

static void latencies(struct point_result *r)
{
    r->p50_ms = metrics_percentile(r->latency_ms, r->iters, 50);
    r->p90_ms = metrics_percentile(r->latency_ms, r->iters, 90);
    r->p99_ms = metrics_percentile(r->latency_ms, r->iters, 99);
    double sum = 0;
    for (int i = 0; i < r->iters; i++) sum += r->latency_ms[i];
    r->mean_ms = r->iters ? sum / r->iters : NAN;
    double tokens = r->decode_tokens ? (double)r->w.batch * r->decode_tokens : (double)r->w.batch * r->w.seq;
    r->tokens_per_s = tokens / (r->p50_ms / 1e3);
    r->profiled_p50_ms = r->cupti_overhead_pct = NAN;
    if (r->profile_iters > 0 && r->profiled_ms) {
        r->profiled_p50_ms = metrics_percentile(r->profiled_ms, r->profile_iters, 50);
        r->cupti_overhead_pct = (r->profiled_p50_ms - r->p50_ms) / r->p50_ms * 100;
    }
}

void run_summarise(struct point_result *r, const struct trace *t, const struct placement *p, int trace_iters)
{
    latencies(r);
    metrics_mean(t, trace_iters, &r->metrics);
    r->busy_known = t->busy_known && trace_iters > 0 && r->metrics.gpu[0].known;
    /* Without CUPTI the window is the event-timed latency; busy time stays unknown. */
    if (!r->busy_known)
        for (int d = 0; d < r->n_devices; d++) r->metrics.gpu[d].window_ms = r->mean_ms;
    r->dropped = t->dropped;
    r->transfer_bytes = r->transfer_ms = 0;
    for (int k = 0; k < r->metrics.n_links; k++) {
        r->transfer_bytes += (double)r->metrics.link[k].bytes;
        r->transfer_ms += r->metrics.link[k].ms;
    }
    r->gpipe_bound = NAN;
    if (r->microbatches > 1) {
        int sd[PB_MAX_DEVICES];
        int stages = placement_stage_devices(p, sd);
        for (int s = 0; s < stages; s++)
            r->bubble[s] = metrics_bubble(&r->metrics, placement_exec_device(sd[s]));
        r->gpipe_bound = metrics_gpipe_bound(stages, r->microbatches, p->virtual_stages);
    }
}

void run_env_weights(struct run_env *env, const struct options *o)
{
    snprintf(env->weights, sizeof env->weights, "%s", o->weights ? "safetensors" : "random");
    snprintf(env->weights_dir, sizeof env->weights_dir, "%s", o->weights ? o->weights : "");
    env->seed = o->seed;
}

void run_weights_describe(const struct options *o, char *buf, size_t len)
{
    if (o->weights) snprintf(buf, len, "safetensors from %s", o->weights);
    else snprintf(buf, len, "random (seed %llu)", (unsigned long long)o->seed);
}

/* The causes and kinds the executor split, mean over iterations [0, iters); unknown
 * (NAN) unless every iteration has them. */
static void attributed_mean(const struct trace *t, int iters, struct iteration_metrics *m)
{
    int runs = iters > 0 ? iters : 1;
    for (int d = 0; d < m->n_devices; d++) {
        struct gpu_metrics *gm = &m->gpu[d];
        double cause[3] = {0}, work[PB_WORK_KINDS] = {0};
        int all = 1;
        for (int i = 0; i < runs && all; i++) {
            const struct activity_totals *a = trace_totals_of(t, iters > 0 ? i : 0);
            if (!a || !a->attributed) all = 0;
            for (int k = 0; all && k < 3; k++) cause[k] += a->idle_cause_ms[d][k] / runs;
            for (int k = 0; all && k < PB_WORK_KINDS; k++) work[k] += a->work_ms[d][k] / runs;
        }
        gm->idle_peer_wait_ms = all ? cause[0] : NAN;
        gm->idle_host_ms = all ? cause[1] : NAN;
        gm->idle_other_ms = all ? cause[2] : NAN;
        for (int k = 0; k < PB_WORK_KINDS; k++) gm->work_ms[k] = all ? work[k] : NAN;
    }
}

void run_attribute(struct point_result *r, const struct trace *t, const struct program *g, int iters,
                   const struct device_profile *prof)
{
    if (!r->busy_known) return;
    const struct schedule *s = idle_causes_schedule(g);
    /* A trace that keeps a sample of its passes (the cost model's long generations) has
     * not every gap: its executor split them from every pass (activity_totals.attributed). */
    int whole = t->n_totals == 0;
    if (!whole) attributed_mean(t, iters, &r->metrics);
    if (whole && idle_causes_mean(t, iters, s, &r->metrics) != PB_OK)
        fprintf(stderr, "bench: note: %s: idle time not split by cause (%s)\n", r->strategy, pb_last_error());
    if (whole && work_kinds_mean(t, iters, s, &r->metrics) != PB_OK)
        fprintf(stderr, "bench: note: %s: busy time not split by step kind (%s)\n", r->strategy, pb_last_error());
    if (!prof) return;
    struct step_work w;
    step_work_of_program(g, &w);
    hw_use_fill(&r->metrics, &w, prof->hbm_gbps, prof->bf16_tflops);
}

const struct device_profile *run_ceilings_profile(const char *gpu_profile, const char *gpu_name,
                                                  struct device_profile *storage)
{
    const char *name = gpu_profile ? gpu_profile : predict_profile_for_gpu(gpu_name);
    if (name && device_profile_load(name, storage) == PB_OK) return storage;
    fprintf(stderr, "bench: note: no device profile for \"%s\" (--gpu-profile names one): MBU and MFU "
                    "unknown\n", gpu_name);
    return NULL;
}

int run_write_reports(const char *dir, const struct run_env *env, const struct point_result *res,
                      const struct trace *const *traces, int n)
{
    PB_TRY(summary_write_csv(dir, env, res, n));
    PB_TRY(summary_write_json(dir, env, res, n));
    char path[4200];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    PB_TRY(trace_json_write(path, env, res, traces, n));
    return trace_hta_write(dir, env, res, traces, n);
}

/* One schedule's collectives, `times` passes of it: each step is one rank's part of a
 * call over tp_world ranks, so a call's size is counted once over its ranks' steps. */
static void schedule_collectives(const struct schedule *s, double times, double *size, double *bus)
{
    int n = s->tp_world > 1 ? s->tp_world : 1;
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        if (!step_is_collective(st) || n < 2) continue;
        /* nccl-tests' size: an all-reduce's buffer; an all-gather's gathered output. */
        double call = st->kind == STEP_ALLGATHER ? (double)st->bytes * n : (double)st->bytes;
        double factor = st->kind == STEP_ALLGATHER ? (n - 1.0) / n : 2.0 * (n - 1) / n;
        *size += times * call / n;
        *bus += times * call * factor;
    }
}

void run_collectives(struct point_result *r, const struct program *g, int copies_are_kernels)
{
    double size = 0, bus = 0, comm_ms = 0;
    int copies = 0;
    schedule_collectives(&g->prompt, 1, &size, &bus);
    schedule_collectives(&g->decode, g->tokens, &size, &bus);
    for (int i = 0; i < g->prompt.n_steps; i++) copies += g->prompt.steps[i].kind == STEP_COPY;
    for (int d = 0; d < r->n_devices; d++) comm_ms += r->metrics.gpu[d].comm_ms;
    r->collective_bytes = size;
    /* bus is summed over the ranks' parts and comm_ms over the ranks: the rank-mean
     * busbw, bytes per ms / 1e6 = GB/s. */
    int known = r->busy_known && comm_ms > 0 && size > 0 && !(copies_are_kernels && copies);
    r->collective_busbw_gbps = known ? bus / comm_ms / 1e6 : NAN;
}
