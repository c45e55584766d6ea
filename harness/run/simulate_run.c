/* bench --simulate: the measured run's loop with the cost model in place of the
 * GPUs. Points are filled exactly as run_measured fills them, so summary.csv,
 * summary.json and trace.json come from the same writers; what marks them as
 * predicted is the environment (GPU names, cupti_note), trace.json's "predicted"
 * flag, the folder name and the profile.json written beside them. */
#include "simulate_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include "../measure/metrics.h"
#include "../report/placement_view.h"
#include "results_dir.h"
#include "run_common.h"
#include "run_outputs.h"
#include "../exec/model/simulate.h"

#define GIB (1ull << 30)
#define DEFAULT_PROFILE "h200"      /* the GPUs this project measured on */
#define DEFAULT_CPU_BUDGET (512 * GIB)

/* Append src's device records shifted by `offset` ns; its ranges are dropped (the
 * caller adds one range for the whole iteration). */
static int trace_append(struct trace *dst, const struct trace *src, uint64_t offset)
{
    for (int i = 0; i < src->n; i++) {
        struct record r = src->rec[i];
        if (r.kind == REC_RANGE) continue;
        r.start_ns += offset;
        r.end_ns += offset;
        PB_TRY(trace_add(dst, &r));
    }
    return PB_OK;
}

/* Replay one schedule and append it at `*clock`, which moves to its end. */
static int replay(const struct device_profile *prof, const struct model_spec *m,
                  const struct schedule *s, const int *ordinal, struct trace *t, double *clock_ms)
{
    struct trace piece;
    double ms;
    PB_TRY(simulate_schedule_on(prof, m, s, ordinal, 1, &piece, &ms));
    int rc = trace_append(t, &piece, (uint64_t)llround(*clock_ms * 1e6));
    trace_free(&piece);
    *clock_ms += ms;
    return rc;
}

/* Generate mode: one greedy pass per token, each attending to the prompt and the
 * tokens before it, as the executor's decode loop does. */
static int replay_decode(const struct device_profile *prof, const struct model_spec *m,
                         const struct strategy *st, const struct placement *p,
                         const struct workload *w, int tokens, const int *ordinal, struct trace *t,
                         double *clock_ms)
{
    for (int k = 0; k < tokens; k++) {
        struct workload d = *w;
        d.mode = MODE_DECODE;
        d.seq = 1;
        d.context = w->seq + k + 1;
        struct schedule s;
        PB_TRY(st->plan(m, p, &d, &s));
        int rc = replay(prof, m, &s, ordinal, t, clock_ms);
        schedule_free(&s);
        PB_TRY(rc);
    }
    return PB_OK;
}

static void fill_metrics(const struct trace *t, const struct schedule *s, const struct placement *p,
                         struct point_result *r)
{
    metrics_mean(t, 1, &r->metrics);
    r->transfer_bytes = r->transfer_ms = 0;
    for (int k = 0; k < r->metrics.n_links; k++) {
        r->transfer_bytes += (double)r->metrics.link[k].bytes;
        r->transfer_ms += r->metrics.link[k].ms;
    }
    /* Bubbles per stage where microbatches flow through stages; GPipe's bound beside. */
    r->gpipe_bound = NAN;
    if (s->microbatches > 1) {
        int sd[PB_MAX_DEVICES];
        int stages = placement_stage_devices(p, sd);
        for (int i = 0; i < stages; i++) r->bubble[i] = metrics_bubble(&r->metrics, placement_exec_device(sd[i]));
        r->gpipe_bound = metrics_gpipe_bound(stages, s->microbatches, s->virtual_stages);
    }
}

int simulate_point(const struct device_profile *prof, const struct model_spec *m,
                   const struct strategy *st, const struct placement *p, const struct workload *w,
                   int decode_tokens, struct point_result *r, struct trace *t)
{
    return simulate_point_on(prof, m, st, p, w, decode_tokens, NULL, r, t);
}

int simulate_point_on(const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct placement *p, const struct workload *w,
                      int decode_tokens, const int *ordinal, struct point_result *r, struct trace *t)
{
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", st->name);
    r->w = *w;
    r->decode_tokens = decode_tokens;
    r->speedup = NAN;
    r->gpipe_bound = NAN;
    r->n_devices = p->n_devices;
    for (int d = 0; d < p->n_devices; d++) r->ordinal[d] = d;
    trace_init(t, p->n_devices);
    t->predicted = 1;

    struct schedule s;
    PB_TRY(st->plan(m, p, w, &s));
    r->stages = s.stages;
    r->microbatches = s.microbatches;
    r->w.microbatches = s.microbatches;
    r->steps = s.n_steps;
    double clock = 0;
    int rc = replay(prof, m, &s, ordinal, t, &clock);
    if (rc == PB_OK && decode_tokens > 0) rc = replay_decode(prof, m, st, p, w, decode_tokens, ordinal, t, &clock);
    struct record range = {.kind = REC_RANGE, .device = -1, .src_device = -1, .dst_device = -1,
                           .end_ns = (uint64_t)llround(clock * 1e6)};
    snprintf(range.name, sizeof range.name, "iteration 0 (predicted)");
    if (rc == PB_OK) rc = trace_add(t, &range);
    if (rc == PB_OK) {
        r->placement = malloc(sizeof *r->placement);
        r->latency_ms = malloc(sizeof *r->latency_ms);
        if (!r->placement || !r->latency_ms) rc = pb_fail("out of host memory for a predicted point");
    }
    if (rc != PB_OK) {
        schedule_free(&s);
        point_result_free(r);
        trace_free(t);
        return rc;
    }
    *r->placement = *p;
    placement_summary(p, r->placement_summary, sizeof r->placement_summary);
    fill_metrics(t, &s, p, r);
    /* The model is deterministic: one iteration stands for all of them. */
    r->iters = 1;
    r->latency_ms[0] = r->p50_ms = r->p90_ms = r->p99_ms = r->mean_ms = clock;
    double tokens = (double)w->batch * (decode_tokens > 0 ? decode_tokens : w->seq);
    r->tokens_per_s = clock > 0 ? tokens / (clock / 1e3) : NAN;
    r->busy_known = 1;
    r->ok = 1;
    r->predicted = 1;
    r->predicted_ms = clock;
    r->prediction_error_pct = NAN;   /* nothing measured to compare with */
    /* One decode pass stands for all: they differ in context only. */
    struct schedule dec = {0};
    int have_dec = 0;
    if (decode_tokens > 0) {
        struct workload d = *w;
        d.mode = MODE_DECODE;
        d.seq = 1;
        d.context = w->seq + 1;
        have_dec = st->plan(m, p, &d, &dec) == PB_OK;
    }
    run_attribute(r, t, m, &s, have_dec ? &dec : NULL, 1, prof);
    if (have_dec) schedule_free(&dec);
    schedule_free(&s);
    return PB_OK;
}

/* Budgets for placement: --max-memory if given, else every GPU's full memory as the
 * profile states it (what a fresh GPU reports free, less its CUDA context). */
static int simulated_machine(const struct options *o, const struct device_profile *prof,
                             struct machine *mc)
{
    *mc = o->machine;
    mc->gpus = o->gpus;
    if (o->max_memory_given) {
        for (int d = 0; d < PB_MAX_DEVICES; d++)
            if (d >= o->gpus && mc->gpu_memory[d])
                return pb_fail("--max-memory: GPU %d has a budget but only %d GPUs are simulated "
                               "(--gpus)", d, o->gpus);
        return PB_OK;
    }
    for (int d = 0; d < o->gpus; d++) mc->gpu_memory[d] = prof->memory_bytes;
    mc->cpu_memory = DEFAULT_CPU_BUDGET;
    mc->budgets_from_user = 0;
    return PB_OK;
}

static void fill_env(const struct options *o, const struct model_spec *m,
                     const struct device_profile *prof, struct run_env *env)
{
    memset(env, 0, sizeof *env);
    env->n_gpus = o->gpus;
    for (int d = 0; d < o->gpus; d++) {
        snprintf(env->gpu_name[d], sizeof env->gpu_name[d], "predicted: %.52s (profile %.20s)",
                 prof->gpu, prof->name);
        env->gpu_memory[d] = prof->memory_bytes;
        for (int e = 0; e < o->gpus; e++) env->peer[d][e] = prof->peer_link == LINK_NVLINK;
    }
    snprintf(env->cupti_note, sizeof env->cupti_note,
             "predicted by the cost model from %.200s; nothing was measured", prof->path);
    snprintf(env->model, sizeof env->model, "%s", m->name);
    snprintf(env->command, sizeof env->command, "%s", o->command);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(env->started, sizeof env->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    env->iters = 1;
}

static void print_header(FILE *f, const struct device_profile *prof, const struct options *o,
                         const struct model_spec *m)
{
    fprintf(f, "PREDICTED by the cost model (not measured): %s on %d x %s (profile %s%s), "
               "%s between GPUs\n", m->name, o->gpus, prof->gpu, prof->name,
            prof->measured ? ", calibrated" : "", link_kind_name(prof->peer_link));
    fprintf(f, "%-9s %5s %5s %6s %4s %12s %12s %8s %6s  %s\n", "strategy", "batch", "seq", "decode",
            "mb", "latency_ms", "tokens/s", "speedup", "xfer", "utilisation per GPU");
}

static void print_point(FILE *f, const struct point_result *r)
{
    if (!r->ok) {
        fprintf(f, "%-9s %5d %5d %6d %4s  not possible: %s\n", r->strategy, r->w.batch, r->w.seq,
                r->decode_tokens, "-", r->reason);
        return;
    }
    char util[512] = "";
    size_t used = 0;
    for (int d = 0; d < r->n_devices && used + 8 < sizeof util; d++)
        used += (size_t)snprintf(util + used, sizeof util - used, "%s%.2f", d ? " " : "",
                                 r->metrics.gpu[d].utilisation);
    char speed[16] = "-";
    if (!isnan(r->speedup)) snprintf(speed, sizeof speed, "%.2fx", r->speedup);
    fprintf(f, "%-9s %5d %5d %6d %4d %12.3f %12.0f %8s %5.0fM  %s\n", r->strategy, r->w.batch,
            r->w.seq, r->decode_tokens, r->microbatches, r->p50_ms, r->tokens_per_s, speed,
            r->transfer_bytes / 1e6, util);
}

/* Speedup against `single` on the same workload, as the measured run reports it. */
static void fill_speedups(struct point_result *r, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            if (strcmp(r[j].strategy, "single") || !r[j].ok || !r[i].ok) continue;
            if (r[j].w.batch != r[i].w.batch || r[j].w.seq != r[i].w.seq ||
                r[j].decode_tokens != r[i].decode_tokens)
                continue;
            r[i].speedup = r[j].p50_ms / r[i].p50_ms;
        }
    }
}

/* One strategy x workload: place, then predict; a failure is recorded, not fatal.
 * `ordinal` (--devices, or NULL) maps logical devices onto simulated GPUs. */
static void run_point(const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct workload *w, int decode_tokens,
                      const struct machine *mc, const int *ordinal, struct point_result *r,
                      struct trace **t)
{
    struct placement *p = malloc(sizeof *p);
    *t = malloc(sizeof **t);
    int rc = p && *t ? PB_OK : pb_fail("out of host memory placing %s", st->name);
    if (rc == PB_OK) rc = st->place(m, w, mc, p);
    if (rc == PB_OK) rc = simulate_point_on(prof, m, st, p, w, decode_tokens, ordinal, r, *t);
    free(p);
    if (rc == PB_OK) return;
    free(*t);
    *t = NULL;
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", st->name);
    r->w = *w;
    r->decode_tokens = decode_tokens;
    r->speedup = r->gpipe_bound = NAN;
    r->predicted = 1;
    snprintf(r->reason, sizeof r->reason, "%s", pb_last_error());
}

static int write_reports(const char *dir, const struct run_env *env, const struct device_profile *prof,
                         struct point_result *r, struct trace **t, int n)
{
    char path[4200];
    PB_TRY(summary_write_csv(dir, r, n));
    PB_TRY(summary_write_json(dir, env, r, n));
    PB_TRY(path_join(path, sizeof path, dir, "trace.json"));
    PB_TRY(trace_json_write(path, env, r, (const struct trace *const *)t, n));
    /* The profile beside the numbers it produced, sources included. */
    PB_TRY(path_join(path, sizeof path, dir, "profile.json"));
    return device_profile_write(prof, path);
}

int run_simulated(const struct options *o, const struct model_spec *m)
{
    static struct device_profile prof;   /* large; one per run, read-only after loading */
    const char *name = o->gpu_profile ? o->gpu_profile : DEFAULT_PROFILE;
    if (!o->gpu_profile)
        fprintf(stderr, "bench: --simulate without --gpu-profile: using %s\n", DEFAULT_PROFILE);
    PB_TRY(device_profile_load(name, &prof));
    if (o->gpus < 1) return pb_fail("--simulate needs --gpus N (simulated GPUs, 1..%d)", PB_MAX_DEVICES);
    struct machine mc;
    PB_TRY(simulated_machine(o, &prof, &mc));

    int cap = o->n_strategies * o->n_batches * o->n_seqs * (o->n_microbatches ? o->n_microbatches : 1);
    struct point_result *r = calloc((size_t)cap + 1, sizeof *r);
    struct trace **t = calloc((size_t)cap + 1, sizeof *t);
    if (!r || !t) {
        free(r);
        free(t);
        return pb_fail("out of host memory for %d simulated points", cap);
    }
    /* --devices 0,0 predicts what the measured run does: logical devices on one GPU
     * share its engines, as --predict does beside a measured run. */
    const int *ordinal = o->n_devices_listed > 0 ? o->devices : NULL;
    int n = 0, failed = 0;
    for (int si = 0; si < o->n_strategies; si++) {
        const struct strategy *st = strategy_find(o->strategies[si]);
        if (!st) continue;   /* the command line already refused unknown names */
        for (int b = 0; b < o->n_batches; b++)
            for (int q = 0; q < o->n_seqs; q++)
                for (int k = 0; k < (o->n_microbatches ? o->n_microbatches : 1); k++) {
                    if (k > 0 && !st->takes_microbatches) continue;
                    struct workload w = {.batch = o->batches[b], .seq = o->seqs[q], .context = o->seqs[q],
                                         .microbatches = o->n_microbatches ? o->microbatches[k] : 0,
                                         .mode = MODE_PREFILL, .dtype = o->dtype};
                    run_point(&prof, m, st, &w, o->decode_tokens, &mc, ordinal, &r[n], &t[n]);
                    failed += !r[n].ok;
                    n++;
                }
    }
    fill_speedups(r, n);
    print_header(stdout, &prof, o, m);
    for (int i = 0; i < n; i++) print_point(stdout, &r[i]);

    char dir[4096];
    struct run_env env;
    fill_env(o, m, &prof, &env);
    int rc = results_dir_create(o->out_dir, m->name, "-simulate", dir, sizeof dir);
    if (rc == PB_OK) rc = write_reports(dir, &env, &prof, r, t, n);
    if (rc == PB_OK) rc = run_outputs_write(o, &env, r, n, (const struct trace *const *)t, dir);
    if (rc == PB_OK) printf("wrote %s/summary.csv, summary.json, trace.json, profile.json (predicted)\n", dir);
    for (int i = 0; i < n; i++) {
        point_result_free(&r[i]);
        if (t[i]) trace_free(t[i]);
        free(t[i]);
    }
    free(r);
    free(t);
    if (rc == PB_OK && failed)
        return pb_fail("%d of %d points could not be placed or predicted (reasons above and in "
                       "summary.json)", failed, n);
    return rc;
}
