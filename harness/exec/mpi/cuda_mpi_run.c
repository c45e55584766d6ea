/* The measured run under mpirun: rank r drives GPU `local rank` as schedule
 * device r. Every rank places and plans each point itself (the same inputs give
 * the same schedule), runs its share, and agrees with the others after every
 * phase; rank 0 gathers latencies, traces (onto its clock), logits and tokens,
 * computes the metrics as run_measured does, and writes the one results folder. */
#include <cublas_v2.h>
#include <cupti.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../../../base/atomic_file.h"
#include "../../measure/cupti.h"
#include "../cuda/cuda_exec_internal.h"
#include "../../run/results_dir.h"
#include "../../report/placement_view.h"
#include "../../run/run.h"
#include "../../run/run_common.h"
#include "cuda_mpi_exec.h"
#include "mpi_jobs.h"
#include "trace_gather.h"

/* What rank 0 learns of every rank, for summary.json and ranks.csv. */
struct rank_info {
    char host[64];
    char gpu[PB_GPU_NAME_LEN];
    uint64_t gpu_memory, free_memory;
    int ordinal, cupti_on;
};

struct mpi_run {
    const struct mpi_world *w;
    const struct options *o;
    const struct model_spec *m;
    int ordinal;
    ncclComm_t comm;
    struct machine mc;
    struct rank_info *ranks;        /* rank 0: [size] */
    struct clock_offset *offsets;   /* rank 0: [size], per point */
    int cupti_on;
    const struct device_profile *ceilings;   /* rank 0: MBU / MFU ceilings, NULL if none */
};

static int pick_gpu(struct mpi_run *run)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return pb_fail("no GPU visible to this rank (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "none");
    const struct mpi_world *w = run->w;
    run->ordinal = run->o->n_devices_listed > w->local_rank ? run->o->devices[w->local_rank] : w->local_rank;
    if (run->ordinal >= count)
        return pb_fail("local rank %d wants GPU %d but this host has %d; start one rank per GPU "
                       "(mpirun -np N with N GPUs, or --map-by ppr:<gpus>:node across nodes)", w->local_rank,
                       run->ordinal, count);
    if (run->o->gpus && run->o->gpus != w->size)
        return pb_fail("--gpus %d but %d ranks: under mpirun every rank is one GPU", run->o->gpus, w->size);
    err = cudaSetDevice(run->ordinal);
    return err == cudaSuccess ? PB_OK : pb_fail("cudaSetDevice(%d) failed: %s", run->ordinal, cudaGetErrorString(err));
}

static int nccl_init(struct mpi_run *run)
{
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rc = run->w->rank == 0 && ncclGetUniqueId(&id) != ncclSuccess
                 ? pb_fail("ncclGetUniqueId failed (NCCL_DEBUG=INFO says why)") : PB_OK;
    PB_TRY(mpi_world_agree(run->w, rc, "creating the NCCL id"));
    PB_TRY(mpi_world_bcast(run->w, &id, sizeof id, 0, "broadcasting the NCCL id"));
    ncclResult_t r = ncclCommInitRank(&run->comm, run->w->size, id, run->w->rank);
    rc = r == ncclSuccess ? PB_OK : pb_fail("ncclCommInitRank failed: %s (NCCL_DEBUG=INFO; across nodes set "
                                            "NCCL_SOCKET_IFNAME, see docs/MPI.md)", ncclGetErrorString(r));
    return mpi_world_agree(run->w, rc, "creating the NCCL communicator");
}

/* Every rank's GPU and free memory, so that all place with the same budgets. */
static int share_machine(struct mpi_run *run)
{
    const struct mpi_world *w = run->w;
    struct rank_info me = {0};
    snprintf(me.host, sizeof me.host, "%s", w->host);
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, run->ordinal) == cudaSuccess) snprintf(me.gpu, sizeof me.gpu, "%.95s", prop.name);
    size_t free_b = 0, total = 0;
    int rc = cudaMemGetInfo(&free_b, &total) == cudaSuccess ? PB_OK : pb_fail("cudaMemGetInfo failed");
    me.gpu_memory = total;
    me.free_memory = free_b;
    me.ordinal = run->ordinal;
    me.cupti_on = run->cupti_on;
    PB_TRY(mpi_world_agree(w, rc, "reading GPU memory"));
    run->ranks = calloc((size_t)w->size, sizeof *run->ranks);
    run->offsets = calloc((size_t)w->size, sizeof *run->offsets);
    if (!run->ranks || !run->offsets) return pb_fail("out of host memory");
    PB_TRY(mpi_world_gather(w, &me, run->ranks, sizeof me, "sharing GPU memory"));
    PB_TRY(mpi_world_bcast(w, run->ranks, (size_t)w->size * sizeof me, 0, "sharing GPU memory"));
    run->mc = run->o->machine;
    run->mc.gpus = w->size;
    if (!run->o->max_memory_given)
        for (int d = 0; d < w->size && d < PB_MAX_DEVICES; d++) run->mc.gpu_memory[d] = run->ranks[d].free_memory;
    if (!run->mc.cpu_memory) run->mc.cpu_memory = 512ull << 30;
    for (int d = 0; d < w->size; d++) run->cupti_on &= run->ranks[d].cupti_on;
    return PB_OK;
}

static void fill_env(const struct mpi_run *run, struct run_env *env)
{
    memset(env, 0, sizeof *env);
    env->n_gpus = run->w->size < PB_MAX_DEVICES ? run->w->size : PB_MAX_DEVICES;
    for (int i = 0; i < env->n_gpus; i++) {
        /* The rank and host ride with each GPU's name: summary.json lists GPUs by schedule device. */
        snprintf(env->gpu_name[i], sizeof env->gpu_name[i], "%.48s [rank %d, %.24s]", run->ranks[i].gpu, i,
                 run->ranks[i].host);
        env->gpu_memory[i] = run->ranks[i].gpu_memory;
    }
    run_env_versions(env);
    env->cupti_enabled = run->cupti_on;
    env->profile_steps = run->o->profile_steps;
    snprintf(env->cupti_note, sizeof env->cupti_note, "%s", run->cupti_on ? "mpi: one CUPTI per rank, gathered"
             : "CUPTI off on at least one rank: busy time unknown");
    snprintf(env->model, sizeof env->model, "%s", run->m->name);
    snprintf(env->command, sizeof env->command, "mpirun -np %d %.2000s", run->w->size, run->o->command);
    env->iters = run->o->iters;
    env->warmup = run->o->warmup;
    env->profile_iters = run->cupti_on ? run->o->profile_iters : 0;
}

/* run_summarise, then transfers as this run sees them: copies between ranks are
 * NCCL kernels (comm busy), not memcpy records, so the bytes come from the
 * schedule and their time is not split out. */
static void summarise(struct point_result *r, const struct trace *t, const struct model_spec *m,
                      const struct schedule *pre, const struct schedule *dec, int decode_tokens,
                      const struct device_profile *ceilings)
{
    run_summarise(r, t, r->placement);
    run_attribute(r, t, m, pre, dec, r->profile_iters, ceilings);
    r->transfer_bytes = 0;
    for (int i = 0; i < pre->n_steps; i++)
        if (pre->steps[i].kind == STEP_COPY) r->transfer_bytes += (double)pre->steps[i].bytes;
    for (int i = 0; dec && i < dec->n_steps; i++)
        if (dec->steps[i].kind == STEP_COPY) r->transfer_bytes += (double)dec->steps[i].bytes * decode_tokens;
    r->transfer_ms = NAN;
}

#define AGREE(rc, phase)                                                   \
    do {                                                                   \
        if (mpi_world_agree(run->w, (rc), (phase)) != PB_OK) goto out;     \
    } while (0)

/* Move a host buffer from rank `from` to rank 0 (nothing when from is 0). */
static int to_rank0(const struct mpi_run *run, int from, void *buf, size_t n, const char *what)
{
    if (from == 0) return PB_OK;
    if (run->w->rank == from) return mpi_world_send(run->w, buf, n, 0, what);
    if (run->w->rank == 0) return mpi_world_recv(run->w, buf, n, from, what);
    return PB_OK;
}

static int plan_point(const struct mpi_run *run, const struct strategy *st, struct point_result *r,
                      struct schedule *pre, struct schedule *dec)
{
    r->placement = calloc(1, sizeof *r->placement);
    r->latency_ms = calloc((size_t)run->o->iters + 1, sizeof(double));
    r->profiled_ms = calloc((size_t)run->o->profile_iters + 1, sizeof(double));
    if (!r->placement || !r->latency_ms || !r->profiled_ms) return pb_fail("out of host memory");
    PB_TRY(st->place(run->m, &r->w, &run->mc, r->placement));
    placement_summary(r->placement, r->placement_summary, sizeof r->placement_summary);
    PB_TRY(st->plan(run->m, r->placement, &r->w, pre));
    if (run->o->decode_tokens > 0) {
        struct workload wd = r->w;
        wd.seq = 1;
        wd.context = r->w.seq + run->o->decode_tokens;
        wd.mode = MODE_DECODE;
        PB_TRY(st->plan(run->m, r->placement, &wd, dec));
    }
    r->n_devices = pre->n_devices;
    r->stages = pre->stages;
    r->microbatches = pre->microbatches;
    r->steps = pre->n_steps;
    for (int d = 0; d < pre->n_devices && d < PB_MAX_DEVICES; d++) r->ordinal[d] = run->ranks[d].ordinal;
    if (pre->n_devices > run->w->size)
        return pb_fail("%s uses %d devices but only %d ranks run", r->strategy, pre->n_devices, run->w->size);
    if (pre->tp_world > 1 && pre->tp_world != run->w->size)
        return pb_fail("%s: tensor parallel over %d of %d ranks needs a sub-communicator (not built); run "
                       "-np %d", r->strategy, pre->tp_world, run->w->size, pre->tp_world);
    return PB_OK;
}

/* One iteration on every rank, started together (the agreement is the
 * barrier); its latency is the longest of the ranks' event-timed spans. With
 * `t`, this rank's records go to it as iteration `i`. */
static int step_all(struct mpi_run *run, struct mpi_executor *e, int i, struct trace *t, double *out)
{
    double ms = 0;
    int rc = mpi_executor_run(e, i, t, &ms);
    if (rc == PB_OK && t) rc = cupti_collect(t, i);
    PB_TRY(mpi_world_agree(run->w, rc, t ? "running a profiled iteration" : "running a timed iteration"));
    PB_TRY(mpi_world_max(run->w, &ms, "collecting latencies"));
    *out = ms;
    return PB_OK;
}

/* As the single-process run: timed iterations with CUPTI's activity collection
 * paused (its per-kernel GPU cost stays out of the latency), then profiled ones
 * with it on for busy time and the trace. */
static int timed(struct mpi_run *run, struct mpi_executor *e, struct point_result *r, struct trace *local,
                 struct trace *scratch)
{
    time_t began = time(NULL);
    PB_TRY(mpi_world_agree(run->w, cupti_set_collecting(0), "pausing CUPTI"));
    for (int i = 0; i < run->o->iters; i++) {
        PB_TRY(step_all(run, e, i, NULL, &r->latency_ms[i]));
        r->iters = i + 1;
        if (run->w->rank == 0 && time(NULL) - began >= 3)
            fprintf(stderr, "\rbench: %s batch %d seq %d: iteration %d/%d, %.2f ms", r->strategy, r->w.batch,
                    r->w.seq, i + 1, run->o->iters, r->latency_ms[i]);
    }
    int rc = cupti_set_collecting(1);
    if (rc == PB_OK) rc = cupti_collect(scratch, -1);
    PB_TRY(mpi_world_agree(run->w, rc, "resuming CUPTI"));
    int n = run->cupti_on ? run->o->profile_iters : 0;
    double ms;
    if (n > 0) PB_TRY(step_all(run, e, -1, scratch, &ms));   /* re-enabling costs the first pass */
    for (int i = 0; i < n; i++) {
        PB_TRY(step_all(run, e, i, local, &r->profiled_ms[i]));
        r->profile_iters = i + 1;
    }
    if (run->w->rank == 0 && time(NULL) - began >= 3) fputc('\n', stderr);
    return PB_OK;
}

/* Logits and tokens to rank 0, then compared there with single's. */
static int outputs(struct mpi_run *run, struct mpi_executor *e, struct point_result *r, struct reference *ref)
{
    int lr = mpi_executor_logits_rank(e), tr = mpi_executor_tokens_rank(e), me = run->w->rank;
    int rows = run->o->decode_tokens ? r->w.batch : r->w.batch * r->w.seq, vocab = run->m->vocab, nt = 0;
    uint16_t *logits = NULL;
    int *tokens = NULL, rc = PB_OK;
    if (me == lr) rc = mpi_executor_logits(e, &logits, &rows, &vocab);
    if (rc == PB_OK && me == tr) rc = mpi_executor_tokens(e, &tokens, &nt);
    if (rc == PB_OK && me == 0 && !logits && !(logits = malloc((size_t)rows * vocab * 2))) rc = pb_fail("out of host memory");
    if (rc == PB_OK && me == 0 && run->o->decode_tokens && !tokens && !(tokens = malloc((size_t)r->w.batch * sizeof(int))))
        rc = pb_fail("out of host memory");
    rc = mpi_world_agree(run->w, rc, "reading logits");
    if (rc == PB_OK) rc = to_rank0(run, lr, logits, (size_t)rows * vocab * 2, "gathering logits");
    if (rc == PB_OK && run->o->decode_tokens) rc = to_rank0(run, tr, tokens, (size_t)r->w.batch * sizeof(int), "gathering tokens");
    if (rc == PB_OK && me == 0) {
        run_reference_or_check(r, ref, &logits, rows, vocab, &tokens);
    }
    free(logits);
    free(tokens);
    return rc;
}

/* One strategy x workload on every rank. A failure anywhere fails the point on
 * every rank with one message; the run goes on with the next point. */
static int run_point(struct mpi_run *run, struct point_result *r, struct trace *merged, struct reference *ref)
{
    const struct strategy *st = strategy_find(r->strategy);
    struct schedule pre = {0}, dec = {0};
    struct mpi_executor *e = NULL;
    struct trace local, scratch;
    trace_init(&local, run->w->size);
    trace_init(&scratch, run->w->size);
    int ok = 0;
    AGREE(st ? plan_point(run, st, r, &pre, &dec) : pb_fail("unknown strategy \"%s\"", r->strategy), "placing and planning");
    struct mpi_exec_config x = {
        .c = {.m = run->m, .p = r->placement, .prefill = &pre, .decode = run->o->decode_tokens ? &dec : NULL,
              .n_devices = pre.n_devices, .batch = r->w.batch, .seq = r->w.seq, .decode_tokens = run->o->decode_tokens,
              .seed = run->o->seed, .weights = run->o->weights, .label = r->strategy},
        .device = run->w->rank, .ordinal = run->ordinal, .comm = run->comm};
    int rc = mpi_executor_create(&x, &e);
    if (rc == PB_OK) rc = cupti_collect(&scratch, -1);   /* weight init and uploads are not measured */
    AGREE(rc, "setting up the executor");
    for (int i = 0; i < run->o->warmup; i++) {
        double ms;
        rc = mpi_executor_run(e, -1, NULL, &ms);
        if (rc == PB_OK) rc = cupti_collect(&scratch, -1);
        AGREE(rc, "warming up");
    }
    local.busy_known = run->cupti_on;
    if (timed(run, e, r, &local, &scratch) != PB_OK || outputs(run, e, r, ref) != PB_OK) goto out;
    /* Offsets measured right after the iterations they correct, so drift between hosts stays small. */
    AGREE(clock_offsets_measure(run->w, cupti_now_ns, 32, run->offsets), "measuring clock offsets");
    AGREE(trace_gather(run->w, &local, run->offsets, merged), "gathering traces");
    if (run->w->rank == 0) summarise(r, merged, run->m, &pre, run->o->decode_tokens ? &dec : NULL, run->o->decode_tokens,
                                        run->ceilings);
    ok = 1;
out:
    mpi_executor_destroy(e);
    cupti_collect(&scratch, -1);
    trace_free(&scratch);
    trace_free(&local);
    schedule_free(&pre);
    schedule_free(&dec);
    return ok ? PB_OK : PB_ERR;
}

static void print_row(const struct point_result *r)
{
    if (!r->ok) {
        printf("%-9s failed: %s\n", r->strategy, r->reason);
        return;
    }
    char util[64] = "unknown";
    size_t used = 0;
    for (int d = 0; r->busy_known && d < r->n_devices && used < sizeof util; d++)
        used += (size_t)snprintf(util + used, sizeof util - used, "%s%.0f%%", d ? "/" : "", 100 * r->metrics.gpu[d].utilisation);
    const char *check = !r->logits_checked ? "not checked" : r->logits_match ? (r->tolerance == 0 ? "identical" : "within tol") : "DIFFER";
    printf("%-9s %-34.34s %9.3f %10.0f %6.2fx %-15s %8.3f %8.3f %s (max diff %g)\n", r->strategy, r->placement_summary,
           r->p50_ms, r->tokens_per_s, r->speedup, util, r->transfer_bytes / 1e9,
           r->busy_known ? r->metrics.allreduce_ms : NAN, check, r->max_abs_diff);
}

/* ranks.csv: one row per GPU of every point, with its rank, host and clock offset. */
static int ranks_rows(const struct mpi_run *run, const struct point_result *r, FILE *f)
{
    for (int d = 0; r->ok && d < r->n_devices; d++) {
        const struct gpu_metrics *g = &r->metrics.gpu[d];
        fprintf(f, "%s,%d,%d,%d,%d,%s,%d,\"%s\",%.3f,%.3f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", r->strategy, r->w.batch,
                r->w.seq, d, d, run->ranks[d].host, run->ranks[d].ordinal, run->ranks[d].gpu,
                run->offsets[d].offset_ns / 1e3, run->offsets[d].rtt_ns / 1e3, g->window_ms, g->compute_ms, g->comm_ms,
                g->copy_ms, g->idle_ms, r->busy_known ? g->utilisation : NAN);
    }
    return ferror(f) ? pb_fail("writing ranks.csv failed") : PB_OK;
}

static int setup(struct mpi_run *run)
{
    int rc = pick_gpu(run);
    PB_TRY(mpi_world_agree(run->w, rc, "choosing GPUs"));
    PB_TRY(nccl_init(run));
    char why[256] = "";
    cupti_set_detail(run->o->profile_steps);
    run->cupti_on = !run->o->no_cupti && cupti_start(why, sizeof why) == PB_OK;
    if (!run->o->no_cupti && !run->cupti_on)
        fprintf(stderr, "bench: warning: rank %d: %s; busy time unknown\n", run->w->rank, why);
    return share_machine(run);
}

/* Rank 0's reports, as run_measured writes them, plus ranks.csv. */
static int write_reports(const struct mpi_run *run, const struct run_env *env, struct point_result *res,
                         const struct trace *const *tptr, int k, const char *ranks_csv)
{
    const char *dir = run->o->out_dir;
    int rc = run_write_reports(dir, env, res, tptr, k);
    char path[4200];
    snprintf(path, sizeof path, "%s/ranks.csv", dir);
    if (rc == PB_OK) rc = atomic_write_text(path, ranks_csv);
    if (rc == PB_OK) printf("\nresults: %s (summary.csv, summary.json, trace.json, ranks.csv)\n", dir);
    return rc;
}

static int sweep(struct mpi_run *run, struct point_result *res, struct trace *traces, FILE *ranks, int *failed)
{
    const struct options *o = run->o;
    int nb = o->n_batches ? o->n_batches : 1, ns = o->n_seqs ? o->n_seqs : 1, k = 0;
    const char *order[PB_MAX_LIST];
    int no = 0;
    for (int i = 0; i < o->n_strategies; i++) if (!strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    for (int i = 0; i < o->n_strategies; i++) if (strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    for (int bi = 0; bi < nb; bi++)
        for (int si = 0; si < ns; si++) {
            struct reference ref = {0};
            int b = o->n_batches ? o->batches[bi] : 1, s = o->n_seqs ? o->seqs[si] : 128;
            printf("\n%s, batch %d x seq %d, %d ranks%s\n", run->m->name, b, s, run->w->size, o->decode_tokens ? ", generate" : "");
            for (int j = 0; j < no; j++, k++) {
                struct point_result *r = &res[k];
                snprintf(r->strategy, sizeof r->strategy, "%s", order[j]);
                r->w = (struct workload){.batch = b, .seq = s, .context = s, .mode = MODE_PREFILL, .dtype = o->dtype,
                                         .microbatches = o->n_microbatches ? o->microbatches[0] : 0};
                r->decode_tokens = o->decode_tokens;
                r->speedup = NAN;
                r->ok = run_point(run, r, &traces[k], &ref) == PB_OK;
                if (!r->ok) snprintf(r->reason, sizeof r->reason, "%s", pb_last_error());
                /* The logits are checked before the latencies are summarised here. */
                if (r->ok && ref.logits && ref.p50_ms == 0 && !strcmp(r->strategy, "single")) ref.p50_ms = r->p50_ms;
                if (r->ok && ref.p50_ms > 0) r->speedup = ref.p50_ms / r->p50_ms;
                if (!r->ok || (r->logits_checked && !r->logits_match)) *failed = 1;
                if (run->w->rank == 0) {
                    print_row(r);
                    ranks_rows(run, r, ranks);
                }
                fflush(stdout);
            }
            run_reference_free(&ref);
        }
    return k;
}

int run_measured_mpi(const struct mpi_world *w, struct options *o, const struct model_spec *m);

int run_measured_mpi(const struct mpi_world *w, struct options *o, const struct model_spec *m)
{
    struct mpi_run run = {.w = w, .o = o, .m = m};
    if (setup(&run) != PB_OK) return PB_ERR;   /* no folder for a run that cannot start */
    char dir[4096];
    int rc = w->rank == 0 ? results_dir_create(o->out_dir, m->name, "-mpi", dir, sizeof dir) : PB_OK;
    if (rc == PB_OK && w->rank == 0) o->out_dir = dir;
    if (mpi_world_agree(w, rc, "creating the results folder") != PB_OK) return PB_ERR;
    int total = (o->n_batches ? o->n_batches : 1) * (o->n_seqs ? o->n_seqs : 1) * o->n_strategies, failed = 0;
    struct point_result *res = calloc((size_t)total, sizeof *res);
    struct trace *traces = calloc((size_t)total, sizeof *traces);
    const struct trace **tptr = calloc((size_t)total, sizeof *tptr);
    char *text = NULL;
    size_t text_len = 0;
    FILE *ranks = open_memstream(&text, &text_len);
    if (!res || !traces || !tptr || !ranks) return pb_fail("out of host memory");
    fprintf(ranks, "strategy,batch,seq,device,rank,host,gpu_ordinal,gpu,clock_offset_us,clock_rtt_us,window_ms,"
                   "compute_ms,comm_ms,copy_ms,idle_ms,utilisation\n");
    static struct device_profile ceiling_storage;
    if (w->rank == 0) run.ceilings = run_ceilings_profile(o->gpu_profile, run.ranks[0].gpu, &ceiling_storage);
    int k = sweep(&run, res, traces, ranks, &failed);
    fclose(ranks);
    cupti_stop();
    static struct run_env env;
    rc = PB_OK;
    if (w->rank == 0) {
        fill_env(&run, &env);
        for (int i = 0; i < k; i++) tptr[i] = &traces[i];
        rc = write_reports(&run, &env, res, tptr, k, text);
    }
    rc = mpi_world_agree(w, rc, "writing the reports");
    run_results_free(res, traces, tptr, k);
    free(text);
    free(run.ranks);
    free(run.offsets);
    ncclCommDestroy(run.comm);
    return rc == PB_OK && !failed ? PB_OK : PB_ERR;
}
