/* The measured run: for every workload and strategy, place, plan, execute on the
 * GPUs with warm-up and timed iterations, collect CUPTI records per iteration,
 * compute the metrics, check the logits against `single`, then print the table
 * and write summary.csv, summary.json and trace.json. */
#include <cublas_api.h>
#include <cuda_runtime.h>
#include <cupti.h>
#include <math.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cupti.h"
#include "executor.h"
#include "placement_view.h"
#include "predict.h"
#include "run.h"
#include "run_outputs.h"

struct reference {              /* single's output for one workload */
    uint16_t *logits;
    int rows, vocab;
    int *tokens;
    double p50_ms;
};

static double bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void fill_env(struct run_env *env, const struct options *o, const struct model_spec *m, int n_gpus)
{
    memset(env, 0, sizeof *env);
    env->n_gpus = n_gpus < PB_MAX_DEVICES ? n_gpus : PB_MAX_DEVICES;
    for (int i = 0; i < env->n_gpus; i++) {
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
            snprintf(env->gpu_name[i], sizeof env->gpu_name[i], "%.95s", prop.name);
            env->gpu_memory[i] = prop.totalGlobalMem;
        }
        for (int j = 0; j < env->n_gpus; j++)
            if (i != j) cudaDeviceCanAccessPeer(&env->peer[i][j], i, j);
    }
    cudaDriverGetVersion(&env->driver_version);
    cudaRuntimeGetVersion(&env->runtime_version);
    ncclGetVersion(&env->nccl_version);
    int major = 0, minor = 0, patch = 0;
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    env->cublas_version = major * 10000 + minor * 100 + patch;
    uint32_t cv = 0;
    cuptiGetVersion(&cv);
    env->cupti_version = (int)cv;
    snprintf(env->model, sizeof env->model, "%s", m->name);
    snprintf(env->command, sizeof env->command, "%s", o->command);
    time_t now = time(NULL);
    strftime(env->started, sizeof env->started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    env->iters = o->iters;
    env->warmup = o->warmup;
}

/* Compare with single's logits: bit for bit, or within tol (tensor parallel sums in another order). */
static void check_logits(struct point_result *r, const struct reference *ref, const uint16_t *got, int rows,
                         int vocab, const int *tokens)
{
    if (!ref->logits || rows != ref->rows || vocab != ref->vocab) return;
    size_t n = (size_t)rows * vocab;
    double diff = 0, top = 0;
    for (size_t i = 0; i < n; i++) {
        double a = bf16_to_float(ref->logits[i]), b = bf16_to_float(got[i]);
        double d = fabs(a - b);
        if (!(d <= diff)) diff = d;   /* NAN sticks */
        if (fabs(a) > top) top = fabs(a);
    }
    r->logits_checked = 1;
    r->max_abs_diff = diff;
    /* Tensor parallel: a few bf16 steps at the largest logit (2^-6 relative). */
    r->tolerance = strcmp(r->strategy, "tp") == 0 ? top / 64 : 0;
    int same = r->tolerance == 0 ? memcmp(ref->logits, got, n * sizeof *got) == 0 : diff <= r->tolerance;
    if (same && tokens && ref->tokens && r->tolerance == 0)
        same = memcmp(tokens, ref->tokens, (size_t)r->w.batch * sizeof(int)) == 0;
    r->logits_match = same;
}

static void summarise(struct point_result *r, const struct trace *t, const struct placement *p)
{
    r->p50_ms = metrics_percentile(r->latency_ms, r->iters, 50);
    r->p90_ms = metrics_percentile(r->latency_ms, r->iters, 90);
    r->p99_ms = metrics_percentile(r->latency_ms, r->iters, 99);
    double sum = 0;
    for (int i = 0; i < r->iters; i++) sum += r->latency_ms[i];
    r->mean_ms = r->iters ? sum / r->iters : NAN;
    double tokens = r->decode_tokens ? (double)r->w.batch * r->decode_tokens : (double)r->w.batch * r->w.seq;
    r->tokens_per_s = tokens / (r->p50_ms / 1e3);
    metrics_mean(t, r->iters, &r->metrics);
    r->busy_known = t->busy_known && r->metrics.gpu[0].known;
    /* Without CUPTI the window is the event-timed latency; busy time stays unknown. */
    if (!r->busy_known)
        for (int d = 0; d < r->n_devices; d++) r->metrics.gpu[d].window_ms = r->mean_ms;
    r->dropped = t->dropped;
    for (int k = 0; k < r->metrics.n_links; k++) {
        r->transfer_bytes += (double)r->metrics.link[k].bytes;
        r->transfer_ms += r->metrics.link[k].ms;
    }
    r->gpipe_bound = NAN;
    if (r->microbatches > 1 && !p->tensor_parallel) {
        int sd[1024], sf[1024], sc[1024];
        int stages = placement_stages(p, sd, sf, sc);
        for (int s = 0; s < stages && s < PB_MAX_DEVICES; s++)
            r->bubble[s] = metrics_bubble(&r->metrics, sd[s] == PB_DEVICE_CPU ? 0 : sd[s]);
        r->gpipe_bound = metrics_gpipe_bound(stages, r->microbatches);
    }
}

/* Everything for one strategy at one workload; a failure is recorded, not fatal. */
static int run_point(const struct options *o, const struct model_spec *m, const struct machine *mc,
                     const int *ordinal, int n_dev, struct point_result *r, struct trace *t,
                     struct reference *ref, int cupti_on)
{
    const struct strategy *st = strategy_find(r->strategy);
    if (!st) return pb_fail("unknown strategy \"%s\"", r->strategy);
    r->microbatches = r->w.microbatches;   /* what was asked, for a row that fails before planning */
    r->placement = calloc(1, sizeof *r->placement);
    r->latency_ms = calloc((size_t)o->iters + 1, sizeof(double));
    if (!r->placement || !r->latency_ms) return pb_fail("out of host memory");
    PB_TRY(st->place(m, &r->w, mc, r->placement));
    placement_summary(r->placement, r->placement_summary, sizeof r->placement_summary);
    struct schedule pre = {0}, dec = {0};
    struct executor *e = NULL;
    int rc = st->plan(m, r->placement, &r->w, &pre);
    struct workload wd = r->w;
    if (rc == PB_OK && o->decode_tokens > 0) {
        wd.seq = 1;
        wd.context = r->w.seq + o->decode_tokens;
        wd.mode = MODE_DECODE;
        rc = st->plan(m, r->placement, &wd, &dec);
    }
    if (rc == PB_OK) {
        r->n_devices = pre.n_devices;
        r->stages = pre.stages;
        r->microbatches = pre.microbatches;
        r->steps = pre.n_steps;
        if (pre.n_devices > n_dev)
            rc = pb_fail("%s uses %d devices but only %d are given", r->strategy, pre.n_devices, n_dev);
    }
    struct exec_config c = {.m = m, .p = r->placement, .prefill = &pre, .decode = o->decode_tokens ? &dec : NULL,
                            .n_devices = pre.n_devices, .batch = r->w.batch, .seq = r->w.seq,
                            .decode_tokens = o->decode_tokens, .seed = o->seed, .weights = o->weights,
                            .use_graph = o->use_graph, .label = r->strategy};
    for (int d = 0; d < pre.n_devices && d < PB_MAX_DEVICES; d++) c.ordinal[d] = r->ordinal[d] = ordinal[d];
    if (rc == PB_OK) rc = executor_create(&c, &e);
    struct trace scratch;
    trace_init(&scratch, pre.n_devices);
    if (rc == PB_OK) rc = cupti_collect(&scratch, -1);   /* weight init and uploads are not measured */
    double ms = 0;
    for (int i = 0; rc == PB_OK && i < o->warmup; i++) {
        rc = executor_run(e, -1, NULL, &ms);
        if (rc == PB_OK) rc = cupti_collect(&scratch, -1);
    }
    t->busy_known = cupti_on;
    time_t began = time(NULL), shown = began;
    int tty = isatty(STDERR_FILENO);   /* a log file gets a line every few seconds, not one per iteration */
    for (int i = 0; rc == PB_OK && i < o->iters; i++) {
        rc = executor_run(e, i, t, &r->latency_ms[i]);
        if (rc == PB_OK) rc = cupti_collect(t, i);
        r->iters = i + 1;
        time_t now = time(NULL);
        if (now - began >= 3 && (tty || now - shown >= 3)) {
            fprintf(stderr, "%sbench: %s batch %d seq %d: iteration %d/%d, %.2f ms%s", tty ? "\r" : "", r->strategy,
                    r->w.batch, r->w.seq, i + 1, o->iters, r->latency_ms[i], tty ? "" : "\n");
            shown = now;
        }
    }
    if (tty && time(NULL) - began >= 3) fputc('\n', stderr);
    uint16_t *logits = NULL;
    int *tokens = NULL, rows = 0, vocab = 0, nt = 0;
    if (rc == PB_OK) rc = executor_logits(e, &logits, &rows, &vocab);
    if (rc == PB_OK) rc = executor_tokens(e, &tokens, &nt);
    if (rc == PB_OK) r->graph = executor_used_graph(e);
    executor_destroy(e);
    cupti_collect(&scratch, -1);
    trace_free(&scratch);
    schedule_free(&pre);
    schedule_free(&dec);
    if (rc == PB_OK) {
        summarise(r, t, r->placement);
        if (!strcmp(r->strategy, "single") && !ref->logits) {
            /* The reference itself: nothing to compare it with. */
            ref->logits = logits;
            ref->rows = rows;
            ref->vocab = vocab;
            ref->tokens = tokens;
            ref->p50_ms = r->p50_ms;
            logits = NULL;
            tokens = NULL;
        }
        if (logits) check_logits(r, ref, logits, rows, vocab, tokens);
    }
    free(logits);
    free(tokens);
    return rc;
}

static void print_header(int predict)
{
    printf("%-9s %-34s %9s %10s %7s %-15s %8s %8s %8s ", "strategy", "placement", "p50 ms", "tok/s", "speedup",
           "util/GPU", "xfer GB", "xfer ms", "AR ms");
    if (predict) printf("%9s %7s ", "pred ms", "err %");
    printf("logits vs single\n");
}

static void print_row(const struct point_result *r, int predict)
{
    if (!r->ok) {
        printf("%-9s failed: %s\n", r->strategy, r->reason);
        return;
    }
    char util[64] = "unknown";
    if (r->busy_known) {
        size_t used = 0;
        for (int d = 0; d < r->n_devices && used < sizeof util; d++)
            used += (size_t)snprintf(util + used, sizeof util - used, "%s%.0f%%", d ? "/" : "",
                                     100 * r->metrics.gpu[d].utilisation);
    }
    char check[64];
    if (!r->logits_checked) snprintf(check, sizeof check, "not checked");
    else if (r->tolerance == 0) snprintf(check, sizeof check, "%s (max diff %g)", r->logits_match ? "identical" : "DIFFER", r->max_abs_diff);
    else snprintf(check, sizeof check, "%s (max diff %g, tol %g)", r->logits_match ? "within tol" : "DIFFER", r->max_abs_diff, r->tolerance);
    printf("%-9s %-34.34s %9.3f %10.0f %6.2fx %-15s %8.3f %8.3f %8.3f ", r->strategy, r->placement_summary,
           r->p50_ms, r->tokens_per_s, r->speedup, util, r->busy_known ? r->transfer_bytes / 1e9 : NAN,
           r->busy_known ? r->transfer_ms : NAN, r->busy_known ? r->metrics.allreduce_ms : NAN);
    if (predict) printf("%9.3f %+6.1f%% ", r->predicted_ms, r->prediction_error_pct);
    printf("%s\n", check);
}

/* Budgets for placement: free memory per GPU, split among logical devices sharing one. */
static int machine_budgets(const struct options *o, const int *ordinal, int n, struct machine *mc)
{
    *mc = o->machine;
    mc->gpus = n;
    if (o->max_memory_given) return PB_OK;
    for (int d = 0; d < n; d++) {
        size_t free_b = 0, total = 0;
        int sharers = 0;
        for (int k = 0; k < n; k++) sharers += ordinal[k] == ordinal[d];
        cudaError_t err = cudaSetDevice(ordinal[d]);
        if (err == cudaSuccess) err = cudaMemGetInfo(&free_b, &total);
        if (err != cudaSuccess)
            return pb_fail("cudaMemGetInfo on GPU %d failed: %s", ordinal[d], cudaGetErrorString(err));
        mc->gpu_memory[d] = free_b / (size_t)sharers;
    }
    if (!mc->cpu_memory) mc->cpu_memory = 512ull << 30;
    return PB_OK;
}

/* Only the pipeline reads workload.microbatches (strategies/pipeline.c); the
 * others would repeat the same run for every count of a --microbatches sweep. */
static int uses_microbatches(const char *strategy) { return strcmp(strategy, "pipeline") == 0; }

/* --predict: --gpu-profile, else the shipped profile of GPU 0's kind. */
static int load_prediction_profile(const struct options *o, const struct run_env *env, struct device_profile *prof)
{
    const char *name = o->gpu_profile ? o->gpu_profile : predict_profile_for_gpu(env->gpu_name[0]);
    if (!name) {
        fprintf(stderr, "bench: warning: --predict: no shipped profile for \"%s\"; name one with --gpu-profile "
                        "(or write one with --calibrate); running without predictions\n", env->gpu_name[0]);
        return PB_ERR;
    }
    if (device_profile_load(name, prof) != PB_OK) {
        fprintf(stderr, "bench: warning: --predict: running without predictions\n");
        return PB_ERR;
    }
    fprintf(stderr, "bench: --predict: cost model profile %s\n", prof->name);
    return PB_OK;
}

int run_measured(const struct options *o, const struct model_spec *m)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        fprintf(stderr, "bench: no GPU found (%s); --plan and --simulate work without one\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA devices");
        return 1;
    }
    int n = o->n_devices_listed ? o->n_devices_listed : (o->gpus ? o->gpus : count), ordinal[PB_MAX_DEVICES];
    for (int d = 0; d < n; d++) {
        ordinal[d] = o->n_devices_listed ? o->devices[d] : d;
        if (ordinal[d] >= count) return pb_fail("GPU %d does not exist (%d visible)", ordinal[d], count), 1;
    }
    struct machine mc;
    if (machine_budgets(o, ordinal, n, &mc) != PB_OK) return 1;
    static struct run_env env;
    fill_env(&env, o, m, count);
    env.cupti_enabled = !o->no_cupti && cupti_start(env.cupti_note, sizeof env.cupti_note) == PB_OK;
    if (o->no_cupti) snprintf(env.cupti_note, sizeof env.cupti_note, "--no-cupti: busy time not measured");
    else if (!env.cupti_enabled) fprintf(stderr, "bench: warning: %s; timing with CUDA events only, per-GPU busy time unknown\n", env.cupti_note);
    static struct device_profile prof;   /* large; read-only once loaded */
    const struct device_profile *pp = o->predict && load_prediction_profile(o, &env, &prof) == PB_OK ? &prof : NULL;
    int nb = o->n_batches ? o->n_batches : 1, ns = o->n_seqs ? o->n_seqs : 1;
    int nm = o->n_microbatches ? o->n_microbatches : 1, total = nb * ns * nm * o->n_strategies;
    struct point_result *res = calloc((size_t)total, sizeof *res);
    struct trace *traces = calloc((size_t)total, sizeof *traces);
    const struct trace **tptr = calloc((size_t)total, sizeof *tptr);
    if (!res || !traces || !tptr) return pb_fail("out of host memory"), 1;
    /* single runs first at each workload: its logits and latency are the reference. */
    const char *order[PB_MAX_LIST];
    int no = 0;
    for (int i = 0; i < o->n_strategies; i++) if (!strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    for (int i = 0; i < o->n_strategies; i++) if (strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    int points = 0;
    for (int mi = 0; mi < nm; mi++)
        for (int i = 0; i < no; i++) points += mi == 0 || uses_microbatches(order[i]);
    points *= nb * ns;
    int k = 0, failed = 0;
    for (int bi = 0; bi < nb; bi++)
        for (int si = 0; si < ns; si++) {
            struct reference ref = {0};   /* one single run per batch x seq serves every microbatch count */
            int b = o->n_batches ? o->batches[bi] : 1, s = o->n_seqs ? o->seqs[si] : 128;
            for (int mi = 0; mi < nm; mi++) {
                int mb = o->n_microbatches ? o->microbatches[mi] : 0;
                printf("\n%s, batch %d x seq %d", m->name, b, s);
                if (mb > 0) printf(", %d microbatches (pipeline)", mb);
                if (o->decode_tokens) printf(", generate (%d greedy tokens after the prefill)", o->decode_tokens);
                printf("\n");
                print_header(pp != NULL);
                for (int si2 = 0; si2 < no; si2++) {
                    if (mi > 0 && !uses_microbatches(order[si2])) continue;
                    struct point_result *r = &res[k];
                    snprintf(r->strategy, sizeof r->strategy, "%s", order[si2]);
                    r->w = (struct workload){.batch = b, .seq = s, .context = s, .microbatches = mb,
                                             .mode = MODE_PREFILL, .dtype = o->dtype};
                    r->decode_tokens = o->decode_tokens;
                    r->speedup = r->predicted_ms = r->prediction_error_pct = NAN;
                    trace_init(&traces[k], n);
                    tptr[k] = &traces[k];
                    if (points > 1)
                        fprintf(stderr, "bench: point %d/%d: %s, batch %d x seq %d, microbatches %d\n", k + 1, points,
                                r->strategy, b, s, uses_microbatches(r->strategy) ? mb : 1);
                    r->ok = run_point(o, m, &mc, ordinal, n, r, &traces[k], &ref, env.cupti_enabled) == PB_OK;
                    if (!r->ok) snprintf(r->reason, sizeof r->reason, "%s", pb_last_error());
                    if (r->ok && ref.p50_ms > 0) r->speedup = ref.p50_ms / r->p50_ms;
                    if (pp) predict_point(pp, m, r);
                    if (!r->ok || (r->logits_checked && !r->logits_match)) failed = 1;
                    print_row(r, pp != NULL);
                    fflush(stdout);
                    k++;
                }
            }
            free(ref.logits);
            free(ref.tokens);
        }
    cupti_stop();
    int rc = summary_write_csv(o->out_dir, res, k);
    if (rc == PB_OK) rc = summary_write_json(o->out_dir, &env, res, k);
    char path[4096];
    snprintf(path, sizeof path, "%s/trace.json", o->out_dir);
    if (rc == PB_OK) rc = trace_json_write(path, &env, res, tptr, k);
    if (rc == PB_OK) rc = run_outputs_write(o, &env, res, k, tptr, o->out_dir);
    if (rc == PB_OK) printf("\nresults: %s (summary.csv, summary.json, trace.json)\n", o->out_dir);
    for (int i = 0; i < k; i++) {
        point_result_free(&res[i]);
        trace_free(&traces[i]);
    }
    free(res);
    free(traces);
    free(tptr);
    return rc == PB_OK && !failed ? PB_OK : 1;
}
