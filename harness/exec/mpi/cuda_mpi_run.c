/* The measured run under mpirun: rank r drives GPU `local rank` as schedule
 * device r. It is the one sweep (run/sweep.c) in an MPI world: every rank places
 * and plans each point itself (the same inputs give the same program), runs its
 * share, and agrees with the others after every phase; rank 0 gathers latencies,
 * traces (onto its clock), logits and tokens, and writes the one results folder,
 * with ranks.csv beside it. What is here is what only a world knows. */
#include <cublas_v2.h>
#include <cupti.h>
#include <math.h>
#include <stddef.h>
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
#include "../../run/run_outputs.h"
#include "../../run/predict.h"
#include "cuda_mpi_exec.h"
#include "../../run/sweep.h"
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
    struct exec_world world;        /* what the one sweep sees of it */
    struct mpi_exec_world exec;     /* what the rank executors see of it */
    FILE *ranks_csv;                /* rank 0: ranks.csv's text */
    const struct options *o;
    const struct model_spec *m;
    int ordinal;
    ncclComm_t comm;
    struct machine mc;
    struct rank_info *ranks;        /* rank 0: [size] */
    struct clock_offset *offsets;   /* rank 0: [size], per point */
    int cupti_on;
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
    run_env_weights(env, run->o);
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
    struct cupti_mode mode;
    PB_TRY(mpi_world_agree(run->w, cupti_mode_parse(getenv("PB_CUPTI_MODE"), &mode), "reading PB_CUPTI_MODE"));
    cupti_set_mode(&mode);
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
    if (rc == PB_OK) rc = run_outputs_write(run->o, env, res, k, tptr, dir);
    if (rc == PB_OK) run_outputs_announce(stdout, run->o, dir, "ranks.csv", 0);
    return rc;
}

/* ---- the world the sweep (run/sweep.c) runs in ---- */

static struct mpi_run *run_of(const struct exec_world *w) { return (struct mpi_run *)((char *)w - offsetof(struct mpi_run, world)); }

static int world_agree(const struct exec_world *w, int rc, const char *phase)
{
    return mpi_world_agree(run_of(w)->w, rc, phase);
}

static int world_max(const struct exec_world *w, double *v, const char *phase)
{
    return mpi_world_max(run_of(w)->w, v, phase);
}

/* Moves a host buffer from rank `from` to rank 0 (nothing when from is 0). */
static int world_to_rank0(const struct exec_world *w, int from, void *buf, size_t n, const char *what)
{
    const struct mpi_world *mw = run_of(w)->w;
    if (from == 0) return PB_OK;
    if (mw->rank == from) return mpi_world_send(mw, buf, n, 0, what);
    if (mw->rank == 0) return mpi_world_recv(mw, buf, n, from, what);
    return PB_OK;
}

/* Offsets measured right after the iterations they correct, so drift between hosts stays small. */
static int world_gather(const struct exec_world *w, const struct trace *local, struct trace *merged)
{
    struct mpi_run *run = run_of(w);
    PB_TRY(mpi_world_agree(run->w, clock_offsets_measure(run->w, cupti_now_ns, 32, run->offsets),
                           "measuring clock offsets"));
    return trace_gather(run->w, local, run->offsets, merged);
}

static void world_point_done(const struct exec_world *w, const struct point_result *r)
{
    struct mpi_run *run = run_of(w);
    ranks_rows(run, r, run->ranks_csv);
}

int run_measured_mpi(const struct mpi_world *w, struct options *o, const struct model_spec *m);

int run_measured_mpi(const struct mpi_world *w, struct options *o, const struct model_spec *m)
{
    static struct mpi_run run;
    run = (struct mpi_run){.w = w, .o = o, .m = m};
    if (setup(&run) != PB_OK) return PB_ERR;   /* no folder for a run that cannot start */
    char dir[4096];
    int rc = w->rank == 0 ? results_dir_create(o->out_dir, m->name, "-mpi", dir, sizeof dir) : PB_OK;
    if (rc == PB_OK && w->rank == 0) o->out_dir = dir;
    if (mpi_world_agree(w, rc, "creating the results folder") != PB_OK) return PB_ERR;
    char *text = NULL;
    size_t text_len = 0;
    run.ranks_csv = open_memstream(&text, &text_len);
    if (!run.ranks_csv) return pb_fail("out of host memory");
    fprintf(run.ranks_csv, "strategy,batch,seq,device,rank,host,gpu_ordinal,gpu,clock_offset_us,clock_rtt_us,"
                           "window_ms,compute_ms,comm_ms,copy_ms,idle_ms,utilisation\n");
    run.exec.comm = run.comm;
    run.exec.world = w;
    run.world = (struct exec_world){.rank = w->rank, .size = w->size, .agree = world_agree, .max = world_max,
                                    .to_rank0 = world_to_rank0, .gather = world_gather,
                                    .point_done = world_point_done, .impl = &run.exec};
    static struct sweep s;
    s = (struct sweep){.o = o, .m = m, .mc = run.mc, .ex = &mpi_executor_ops, .world = &run.world,
                       .cupti_on = run.cupti_on};
    static struct device_profile ceilings;
    if (w->rank == 0) s.ceilings = run_ceilings_profile(o->gpu_profile, run.ranks[0].gpu, &ceilings);
    char weights[1100];
    run_weights_describe(o, weights, sizeof weights);
    s.weights = weights;
    s.map.n = w->size < PB_MAX_DEVICES ? w->size : PB_MAX_DEVICES;
    s.allreduce_table = predict_allreduce_table(o->allreduce, run.ranks[0].gpu);
    for (int d = 0; d < s.map.n; d++) s.map.ordinal[d] = run.ranks[d].ordinal;
    struct sweep_out out;
    rc = sweep_run(&s, &out);
    fclose(run.ranks_csv);
    cupti_stop();
    static struct run_env env;
    const struct trace **tptr = rc == PB_OK ? calloc((size_t)out.n + 1, sizeof *tptr) : NULL;
    if (rc == PB_OK && !tptr) rc = pb_fail("out of host memory");
    if (rc == PB_OK && w->rank == 0) {
        fill_env(&run, &env);
        for (int i = 0; i < out.n; i++) tptr[i] = &out.traces[i];
        rc = write_reports(&run, &env, out.res, tptr, out.n, text);
    }
    rc = mpi_world_agree(w, rc, "writing the reports");
    int failed = out.failed;
    free(tptr);
    sweep_out_free(&out);
    free(text);
    free(run.ranks);
    free(run.offsets);
    ncclCommDestroy(run.comm);
    return rc == PB_OK && !failed ? PB_OK : PB_ERR;
}
