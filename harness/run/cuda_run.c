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
#include "../measure/cupti.h"
#include "../exec/executor.h"
#include "../report/placement_view.h"
#include "predict.h"
#include "run.h"
#include "run_common.h"
#include "run_outputs.h"

void run_env_versions(struct run_env *env)
{
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
    time_t now = time(NULL);
    strftime(env->started, sizeof env->started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
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
    run_env_versions(env);
    snprintf(env->model, sizeof env->model, "%s", m->name);
    snprintf(env->command, sizeof env->command, "%s", o->command);
    env->iters = o->iters;
    env->warmup = o->warmup;
    env->profile_iters = o->no_cupti ? 0 : o->profile_iters;
}

/* A progress line for long points: a log file gets one every few seconds, a terminal a carriage return. */
static void progress(const struct point_result *r, const char *what, int i, int n, double ms, time_t began,
                     time_t *shown)
{
    int tty = isatty(STDERR_FILENO);
    time_t now = time(NULL);
    if (now - began < 3 || (!tty && now - *shown < 3)) return;
    fprintf(stderr, "%sbench: %s batch %d seq %d: %s %d/%d, %.2f ms%s", tty ? "\r" : "", r->strategy, r->w.batch,
            r->w.seq, what, i + 1, n, ms, tty ? "" : "\n");
    *shown = now;
}

/* Warm-up, then the timed iterations with CUPTI's activity collection paused
 * (its per-kernel GPU timestamps cost about 5 us a kernel, 25% of a 1x128
 * prefill), then profiled iterations with it on, whose records give busy time,
 * transfers and the trace. Graphs were instantiated with CUPTI on, so replayed
 * nodes keep their names for the profiled iterations. */
static int measure(const struct options *o, struct executor *e, struct point_result *r, struct trace *t,
                   struct trace *scratch, int cupti_on)
{
    double ms = 0;
    PB_TRY(cupti_collect(scratch, -1));   /* weight init and uploads are not measured */
    PB_TRY(cupti_set_collecting(0));
    for (int i = 0; i < o->warmup; i++) PB_TRY(executor_run(e, -1, NULL, &ms));
    time_t began = time(NULL), shown = began;
    for (int i = 0; i < o->iters; i++) {
        PB_TRY(executor_run(e, i, NULL, &r->latency_ms[i]));
        r->iters = i + 1;
        progress(r, "iteration", i, o->iters, r->latency_ms[i], began, &shown);
    }
    PB_TRY(cupti_set_collecting(1));
    PB_TRY(cupti_collect(scratch, -1));
    t->busy_known = cupti_on;
    int n = cupti_on ? o->profile_iters : 0;
    for (int i = 0; i < n; i++) {
        /* One unrecorded pass first: re-enabling collection costs the first launch. */
        if (i == 0) PB_TRY(executor_run(e, -1, NULL, &ms));
        if (i == 0) PB_TRY(cupti_collect(scratch, -1));
        PB_TRY(executor_run(e, i, t, &r->profiled_ms[i]));
        PB_TRY(cupti_collect(t, i));
        r->profile_iters = i + 1;
        progress(r, "profiled iteration", i, n, r->profiled_ms[i], began, &shown);
    }
    if (isatty(STDERR_FILENO) && time(NULL) - began >= 3) fputc('\n', stderr);
    return PB_OK;
}

/* Place and plan one point: the prefill schedule, and the decode one in generate mode. */
static int plan_point(const struct options *o, const struct model_spec *m, const struct machine *mc,
                      const struct strategy *st, struct point_result *r, struct schedule *pre, struct schedule *dec,
                      int n_dev)
{
    PB_TRY(st->place(m, &r->w, mc, r->placement));
    placement_summary(r->placement, r->placement_summary, sizeof r->placement_summary);
    PB_TRY(st->plan(m, r->placement, &r->w, pre));
    if (o->decode_tokens > 0) {
        struct workload wd = r->w;
        wd.seq = 1;
        wd.context = r->w.seq + o->decode_tokens;
        wd.mode = MODE_DECODE;
        PB_TRY(st->plan(m, r->placement, &wd, dec));
    }
    r->n_devices = pre->n_devices;
    r->stages = pre->stages;
    r->microbatches = pre->microbatches;
    r->steps = pre->n_steps;
    if (pre->n_devices > n_dev)
        return pb_fail("%s uses %d devices but only %d are given", r->strategy, pre->n_devices, n_dev);
    return PB_OK;
}

/* Everything for one strategy at one workload; a failure is recorded, not fatal. */
static int run_point(const struct options *o, const struct model_spec *m, const struct machine *mc,
                     const int *ordinal, int n_dev, struct point_result *r, struct trace *t,
                     struct reference *ref, int cupti_on, const struct device_profile *ceilings)
{
    const struct strategy *st = strategy_find(r->strategy);
    if (!st) return pb_fail("unknown strategy \"%s\"", r->strategy);
    r->microbatches = r->w.microbatches;   /* what was asked, for a row that fails before planning */
    r->placement = calloc(1, sizeof *r->placement);
    r->latency_ms = calloc((size_t)o->iters + 1, sizeof(double));
    r->profiled_ms = calloc((size_t)o->profile_iters + 1, sizeof(double));
    if (!r->placement || !r->latency_ms || !r->profiled_ms) return pb_fail("out of host memory");
    struct schedule pre = {0}, dec = {0};
    struct executor *e = NULL;
    int rc = plan_point(o, m, mc, st, r, &pre, &dec, n_dev);
    struct exec_config c = {.m = m, .p = r->placement, .prefill = &pre, .decode = o->decode_tokens ? &dec : NULL,
                            .n_devices = pre.n_devices, .batch = r->w.batch, .seq = r->w.seq,
                            .decode_tokens = o->decode_tokens, .seed = o->seed, .weights = o->weights,
                            .use_graph = o->use_graph, .label = r->strategy};
    for (int d = 0; d < pre.n_devices && d < PB_MAX_DEVICES; d++) c.ordinal[d] = r->ordinal[d] = ordinal[d];
    if (rc == PB_OK) rc = executor_create(&c, &e);
    struct trace scratch;
    trace_init(&scratch, pre.n_devices);
    if (rc == PB_OK) rc = measure(o, e, r, t, &scratch, cupti_on);
    cupti_set_collecting(1);   /* the next executor's graphs are instantiated with CUPTI on */
    uint16_t *logits = NULL;
    int *tokens = NULL, rows = 0, vocab = 0, nt = 0;
    if (rc == PB_OK) rc = executor_logits(e, &logits, &rows, &vocab);
    if (rc == PB_OK) rc = executor_tokens(e, &tokens, &nt);
    if (rc == PB_OK) r->graph = executor_used_graph(e);
    executor_destroy(e);
    cupti_collect(&scratch, -1);
    trace_free(&scratch);
    if (rc == PB_OK) {
        run_summarise(r, t, r->placement);
        run_attribute(r, t, m, &pre, o->decode_tokens ? &dec : NULL, r->profile_iters, ceilings);
        run_reference_or_check(r, ref, &logits, rows, vocab, &tokens);
    }
    schedule_free(&pre);
    schedule_free(&dec);
    free(logits);
    free(tokens);
    return rc;
}

static void print_header(int predict)
{
    printf("%-9s %-34s %9s %10s %7s %-15s %8s %8s %8s ", "strategy", "placement", "p50 ms", "tok/s", "speedup",
           "util/GPU", "xfer GB", "xfer ms", "AR ms");
    if (predict) printf("%9s %7s ", "pred ms", "err %");
    printf("%8s logits vs single\n", "cupti +%");
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
    if (isnan(r->cupti_overhead_pct)) printf("%8s %s\n", "-", check);
    else printf("%+7.1f%% %s\n", r->cupti_overhead_pct, check);
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
    cupti_set_detail(o->profile_steps);
    env.profile_steps = o->profile_steps;
    env.cupti_enabled = !o->no_cupti && cupti_start(env.cupti_note, sizeof env.cupti_note) == PB_OK;
    if (o->no_cupti) snprintf(env.cupti_note, sizeof env.cupti_note, "--no-cupti: busy time not measured");
    else if (!env.cupti_enabled) fprintf(stderr, "bench: warning: %s; timing with CUDA events only, per-GPU busy time unknown\n", env.cupti_note);
    static struct device_profile prof;   /* large; read-only once loaded */
    const struct device_profile *pp = o->predict && load_prediction_profile(o, &env, &prof) == PB_OK ? &prof : NULL;
    static struct device_profile ceiling_storage;
    const struct device_profile *ceilings = pp ? pp : run_ceilings_profile(o->gpu_profile, env.gpu_name[0], &ceiling_storage);
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
        for (int i = 0; i < no; i++) points += mi == 0 || strategy_takes_microbatches(order[i]);
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
                    if (mi > 0 && !strategy_takes_microbatches(order[si2])) continue;
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
                                r->strategy, b, s, strategy_takes_microbatches(r->strategy) ? mb : 1);
                    r->ok = run_point(o, m, &mc, ordinal, n, r, &traces[k], &ref, env.cupti_enabled, ceilings) == PB_OK;
                    if (!r->ok) snprintf(r->reason, sizeof r->reason, "%s", pb_last_error());
                    if (r->ok && ref.p50_ms > 0) r->speedup = ref.p50_ms / r->p50_ms;
                    if (pp) predict_point(pp, m, r);
                    if (!r->ok || (r->logits_checked && !r->logits_match)) failed = 1;
                    print_row(r, pp != NULL);
                    fflush(stdout);
                    k++;
                }
            }
            run_reference_free(&ref);
        }
    cupti_stop();
    int rc = run_write_reports(o->out_dir, &env, res, tptr, k);
    if (rc == PB_OK) rc = run_outputs_write(o, &env, res, k, tptr, o->out_dir);
    if (rc == PB_OK) printf("\nresults: %s (summary.csv, summary.json, trace.json)\n", o->out_dir);
    run_results_free(res, traces, tptr, k);
    return rc == PB_OK && !failed ? PB_OK : 1;
}
