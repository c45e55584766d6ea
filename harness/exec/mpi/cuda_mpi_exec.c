/* Rank-local execution of a schedule (see cuda_mpi_exec.h) through the CUDA
 * executor's issue loop (exec/cuda/cuda_exec_issue.c) with this file's transport.
 * Every rank walks the same issue order and issues its part of each step at the
 * same position: NCCL serialises the operations of a communicator in the order
 * they are issued, so a send and its receive, or the members of a collective,
 * meet without deadlock. */
#include <stdlib.h>
#include <string.h>
#include "../../measure/cupti.h"
#include "../cuda/cuda_exec_internal.h"
#include "../../run/run_common.h"
#include "cuda_mpi_exec.h"
#include "cuda_mpi_peer.h"

/* The rank's part of the CUDA executor (cuda_exec_internal.h): the same layout,
 * plans and issue loop, with every device's parts laid out but only this rank's
 * allocated, streams on this rank's device only, and the transport below. */
struct mpi_executor {
    struct executor x;         /* first: the transport's hooks get &x */
    struct mpi_exec_config cfg;
    int dev, idle;
    struct mpi_peer peer;      /* tp sums on peer memory (--allreduce), when active */
    ncclComm_t group_comm;     /* hybrid: this rank's stage (split from all ranks); NULL: all ranks */
};

#define MINE(e, logical) ((logical) == (e)->dev)

static const struct mpi_executor *rank_of(const struct executor *x) { return (const struct mpi_executor *)x; }

/* ---- the transport: this rank's steps, NCCL send/receive between ranks ---- */

/* This rank's share of the steps (exec/step_place.c); the embedding's rank takes
 * delivery of the greedy tokens where a decode's head sits on another rank. */
static void mpi_place(const struct executor *x, const struct schedule *s, int i, struct step_here *out)
{
    const struct part_layout *l = &x->l;
    /* Each rank that picks tokens (the head; under tp every rank of the last stage,
     * from its gathered logits) hands them to the embedding that reads them. */
    struct token_route route;
    token_route_none(&route);
    route.from = l->tp && l->tp_degree > 1 ? STEP_ALLGATHER : STEP_HEAD;
    for (int d = 0; x->c.decode && d < x->c.n_devices; d++) route.to[d] = l->parts[exec_token_part(l, d)].logical;
    *out = step_place_rank(s, i, rank_of(x)->dev, &route);
}

/* Rank r is logical device r on the communicator of all ranks; p2p moves bytes. */
static int mpi_move(struct executor *x, void *dst, int dst_dev, const void *src, int src_dev, size_t n,
                    cudaStream_t s)
{
    const struct mpi_executor *e = rank_of(x);
    ncclComm_t comm = e->cfg.comm;
    if (MINE(e, src_dev) && MINE(e, dst_dev)) CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
    else if (MINE(e, src_dev)) NCCL_TRY(ncclSend(src, n, ncclInt8, dst_dev, comm, s));
    else NCCL_TRY(ncclRecv(dst, n, ncclInt8, src_dev, comm, s));
    return PB_OK;
}

static int mpi_same_memory(const struct executor *x, int a, int b)
{
    (void)x;
    return a == b;
}

/* This rank's member of a tp sum through the ranks' peer memory (CUDA IPC), when
 * --allreduce gives it the call; all-gathers stay on NCCL. */
static int mpi_peer_path(struct executor *x, struct plan_exec *pe, int first, int last, int last_only, int *taken)
{
    struct mpi_executor *e = (struct mpi_executor *)x;
    (void)last_only;
    *taken = 0;
    for (int k = first; k <= last; k++) {
        int i = pe->order[k];
        const struct step *st = &pe->s->steps[i];
        if (pe->here[i].role != STEP_ISSUED || st->kind != STEP_ALLREDUCE || !e->peer.active) continue;
        size_t count = (size_t)st->batch * pe->seq * x->c.m->hidden;
        enum allreduce_algo algo = allreduce_choose(x->c.allreduce, &x->c.allreduce_table, count * 2, 1);
        if (algo == ALLREDUCE_NCCL) continue;
        /* the partial products summed onto the hidden rows, the residual (llama.h) */
        struct llama_part *p = x->l.parts[pe->part[i]].p;
        size_t off = (size_t)st->batch_offset * pe->seq * x->c.m->hidden * 2;
        if (!llama_part_tp_partial(p))
            return pb_fail("internal: all-reduce step %d on a part without tensor-parallel partials", i);
        *taken = 1;
        return peer_allreduce_residual(&e->peer.comm, (char *)llama_part_tp_partial(p) + off,
                                       (char *)llama_part_hidden(p) + off, count, algo,
                                       x->stream[pe->here[i].device][pe->here[i].stream]);
    }
    return PB_OK;
}

static const struct exec_transport mpi_transport = {
    .place = mpi_place,
    .move = mpi_move,
    .same_memory = mpi_same_memory,
    .peer_collective = mpi_peer_path,
};

/* ---- setup ---- */

static int create_parts(struct mpi_executor *e)
{
    struct executor *x = &e->x;
    const struct cuda_config *c = &x->c;
    uint64_t need = 64u << 20;
    for (int k = 0; k < x->l.n_parts; k++)
        if (MINE(e, x->l.parts[k].logical)) need += llama_part_bytes(c->m, &x->l.parts[k].d);
    size_t free_b = 0, total = 0;
    CUDA_TRY(cudaMemGetInfo(&free_b, &total));
    if (need > free_b)
        return pb_fail("%s needs %.2f GiB on rank %d's GPU %d for batch %d x seq %d, but only %.2f GiB are free",
                       c->label, need / 1073741824.0, e->dev, e->cfg.ordinal, c->batch, c->seq, free_b / 1073741824.0);
    for (int k = 0; k < x->l.n_parts; k++) {
        struct part_slot *ps = &x->l.parts[k];
        if (!MINE(e, ps->logical)) continue;
        PB_TRY(llama_part_create(c->m, &ps->d, &ps->p));
        if (c->weights) PB_TRY(llama_part_load_safetensors(ps->p, c->weights));
        else PB_TRY(llama_part_init_random(ps->p, c->seed));
    }
    size_t n = (size_t)c->batch * c->seq;
    CUDA_TRY(cudaMallocHost((void **)&x->h_prompt, n * sizeof(int)));
    run_prompt_fill(x->h_prompt, c->prompt, (int)n, c->m->vocab, c->seed);
    for (int k = 0; k < x->l.n_parts; k++)   /* tp: every rank's replicated embedding */
        if (x->l.parts[k].d.has_embed && MINE(e, x->l.parts[k].logical))
            CUDA_TRY(cudaMemcpy(llama_part_tokens(x->l.parts[k].p), x->h_prompt, n * sizeof(int), cudaMemcpyHostToDevice));
    if (c->decode && !x->l.tp && MINE(e, x->l.parts[x->l.head_part].logical))
        CUDA_TRY(cudaMalloc((void **)&x->d_next, (size_t)c->batch * sizeof(int)));
    int heads_here = 0;   /* the last stage's ranks gather the vocabulary slices */
    for (int k = 0; k < x->l.n_parts; k++) heads_here |= x->l.parts[k].d.has_head && MINE(e, x->l.parts[k].logical);
    if (x->l.tp && x->l.tp_degree > 1 && heads_here)
        CUDA_TRY(cudaMalloc(&x->gather[e->dev], n * (size_t)c->m->vocab * 2));
    return PB_OK;
}

static int create_streams(struct mpi_executor *e)
{
    struct executor *x = &e->x;
    const struct cuda_config *c = &x->c;
    x->n_streams = c->prefill->streams_per_device;
    if (c->decode && c->decode->streams_per_device > x->n_streams) x->n_streams = c->decode->streams_per_device;
    if (x->n_streams > EXEC_MAX_STREAMS)
        return pb_fail("schedule uses %d streams per device; the executor supports %d", x->n_streams, EXEC_MAX_STREAMS);
    PB_TRY(cupti_map_ordinal(e->cfg.ordinal, e->dev));
    for (int s = 0; s < x->n_streams; s++) {
        CUDA_TRY(cudaStreamCreateWithFlags(&x->stream[e->dev][s], cudaStreamNonBlocking));
        CUDA_TRY(cudaEventCreateWithFlags(&x->join[e->dev][s], cudaEventDisableTiming));
        /* Copies leave as NCCL kernels, not memcpy records: no destination to name. */
        PB_TRY(cupti_register_stream(x->stream[e->dev][s], e->dev, s, -1));
    }
    CUDA_TRY(cudaEventCreate(&x->start));
    CUDA_TRY(cudaEventCreate(&x->stop));
    return PB_OK;
}

/* ---- the executor ---- */

/* tp or hybrid with sums --allreduce may give to peer memory: the same answer on
 * every rank, as the handle exchange is collective. */
static int wants_peer(const struct cuda_config *c)
{
    if (c->allreduce == ALLREDUCE_NCCL || c->prefill->tp_world < 2) return 0;
    for (int i = 0; i < c->prefill->n_steps; i++)
        if (c->prefill->steps[i].kind == STEP_ALLREDUCE) return 1;
    return 0;
}

int mpi_executor_create(const struct mpi_exec_config *cfg, struct mpi_executor **out)
{
    *out = NULL;
    struct mpi_executor *e = calloc(1, sizeof *e);
    if (!e) return pb_fail("out of host memory for the executor");
    struct executor *x = &e->x;
    e->cfg = *cfg;
    e->dev = cfg->device;
    x->c = cfg->c;
    x->transport = &mpi_transport;
    *out = e;
    if (x->c.n_devices != x->c.prefill->n_devices)
        return pb_fail("internal: schedule has %d devices, executor %d", x->c.prefill->n_devices, x->c.n_devices);
    /* Every rank lays out every device's parts, so all know where logits and
     * tokens live; the devices of other ranks' parts are never used here. */
    for (int d = 0; d < PB_MAX_DEVICES; d++) x->c.ordinal[d] = cfg->ordinal;
    PB_TRY(exec_build_parts(&x->c, x->c.ordinal, &x->l));
    e->idle = cfg->device >= x->c.prefill->n_devices;   /* e.g. rank 1 while `single` runs */
    CUDA_TRY(cudaSetDevice(cfg->ordinal));
    /* This rank's tp group: its stage's ranks (every device for tp); idle ranks none. */
    const struct schedule *s = x->c.prefill;
    int group = e->idle ? -1 : s->group_of[e->dev], first = 0, size = 0;
    for (int d = 0; d < s->n_devices; d++)
        if (s->group_of[d] == group) {
            if (!size) first = d;
            size++;
        }
    if (wants_peer(&x->c))
        PB_TRY(mpi_peer_create(cfg->world, group >= 0 ? first : -1, size, (size_t)x->c.batch * x->c.seq * x->c.m->hidden,
                               &e->peer));
    /* Collectives run on the communicator of the rank's stage: all ranks when one
     * group spans the world, else split from it (every rank takes part in the split). */
    int split = s->tp_world > 1 && size != cfg->world->size;
    if (split) NCCL_TRY(ncclCommSplit(cfg->comm, group >= 0 ? group : NCCL_SPLIT_NOCOLOR, e->dev, &e->group_comm, NULL));
    if (e->idle) return PB_OK;
    x->nvtx = nvtxDomainCreateA("placebench");
    x->comm[e->dev] = e->group_comm ? e->group_comm : cfg->comm;
    x->have_comms = 1;
    PB_TRY(create_streams(e));
    PB_TRY(create_parts(e));
    PB_TRY(exec_prepare_plan(x, x->c.prefill, x->c.seq, &x->pre));
    if (x->c.decode) PB_TRY(exec_prepare_plan(x, x->c.decode, 1, &x->dec));
    return PB_OK;
}

void mpi_executor_destroy(struct mpi_executor *e)
{
    if (!e) return;
    struct executor *x = &e->x;
    if (!e->idle) cudaSetDevice(e->cfg.ordinal);
    exec_free_plan(&x->pre);
    exec_free_plan(&x->dec);
    for (int k = 0; k < x->l.n_parts; k++)
        if (x->l.parts[k].p) llama_part_destroy(x->l.parts[k].p);
    for (int s = 0; !e->idle && s < x->n_streams; s++) {
        if (x->stream[e->dev][s]) cudaStreamDestroy(x->stream[e->dev][s]);
        if (x->join[e->dev][s]) cudaEventDestroy(x->join[e->dev][s]);
    }
    if (x->start) cudaEventDestroy(x->start);
    if (x->stop) cudaEventDestroy(x->stop);
    mpi_peer_destroy(&e->peer);
    if (e->group_comm) ncclCommDestroy(e->group_comm);
    if (!e->idle) cudaFree(x->gather[e->dev]);
    cudaFree(x->d_next);
    cudaFreeHost(x->h_prompt);
    cupti_clear_maps();   /* the world's communicator is cuda_mpi_run.c's */
    free(e);
}

/* Stream 0 forks to this rank's other streams and joins them at the end. */
static int fork_join(struct mpi_executor *e, int join)
{
    cudaStream_t *stream = e->x.stream[e->dev];
    for (int s = 1; s < e->x.n_streams; s++) {
        cudaStream_t from = join ? stream[s] : stream[0], to = join ? stream[0] : stream[s];
        CUDA_TRY(cudaEventRecord(e->x.join[e->dev][s], from));
        CUDA_TRY(cudaStreamWaitEvent(to, e->x.join[e->dev][s], 0));
    }
    return PB_OK;
}

int mpi_executor_run(struct mpi_executor *e, int iteration, struct trace *t, double *ms)
{
    *ms = 0;
    if (e->idle) return PB_OK;
    struct executor *x = &e->x;
    const struct cuda_config *c = &x->c;
    int generate = c->decode != NULL;
    cudaStream_t origin = x->stream[e->dev][0];
    uint64_t t0 = cupti_now_ns();
    CUDA_TRY(cudaSetDevice(e->cfg.ordinal));
    CUDA_TRY(cudaEventRecord(x->start, origin));
    PB_TRY(fork_join(e, 0));
    for (int k = 0; generate && k < x->l.n_parts; k++)   /* decode overwrote the prompt's token rows */
        if (x->l.parts[k].d.has_embed && MINE(e, x->l.parts[k].logical))
            CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(x->l.parts[k].p), x->h_prompt,
                                     (size_t)c->batch * c->seq * sizeof(int), cudaMemcpyHostToDevice, origin));
    PB_TRY(exec_issue_passes(x, t, iteration));
    PB_TRY(fork_join(e, 1));
    CUDA_TRY(cudaEventRecord(x->stop, origin));
    CUDA_TRY(cudaEventSynchronize(x->stop));
    if (e->peer.active) PB_TRY(peer_comm_check(&e->peer.comm));
    float elapsed = 0;
    CUDA_TRY(cudaEventElapsedTime(&elapsed, x->start, x->stop));
    *ms = elapsed;
    x->last_only = generate;
    x->last_rows = generate ? c->batch : c->batch * c->seq;
    if (t) {
        struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = t0, .end_ns = cupti_now_ns(),
                           .iteration = iteration, .src_device = -1, .dst_device = -1};
        snprintf(r.name, sizeof r.name, "%s iteration %d", c->label, iteration);
        PB_TRY(trace_add(t, &r));
    }
    return PB_OK;
}

int mpi_executor_logits_rank(const struct mpi_executor *e)
{
    return e->x.l.parts[e->x.l.head_part].logical;   /* tp: rank 0 of the last stage */
}

int mpi_executor_tokens_rank(const struct mpi_executor *e)
{
    return e->x.l.parts[e->x.l.embed_part].logical;
}

/* ---- behind executor.h ---- */

/* What exec/mpi/cuda_mpi_run.c's world carries for its executors. */
static int mpi_create(const struct exec_config *c, void **state)
{
    const struct mpi_exec_world *mw = c->world->impl;
    const struct program *g = c->g;
    *state = NULL;
    if (g->prompt.n_devices > c->world->size)
        return pb_fail("%s uses %d devices but only %d ranks run", c->label, g->prompt.n_devices, c->world->size);
    struct mpi_exec_config x = {.device = c->world->rank, .ordinal = c->map->ordinal[c->world->rank], .comm = mw->comm,
                                .world = mw->world};
    PB_TRY(cuda_config_from(c, &x.c));
    struct mpi_executor *e = NULL;
    int rc = mpi_executor_create(&x, &e);
    *state = e;
    return rc;
}

static int mpi_run(void *state, int iteration, struct trace *t, double *ms)
{
    return mpi_executor_run(state, iteration, t, ms);
}

static int mpi_outputs(void *state, struct exec_outputs *out)
{
    struct mpi_executor *e = state;
    *out = (struct exec_outputs){.logits_rank = mpi_executor_logits_rank(e), .tokens_rank = mpi_executor_tokens_rank(e)};
    /* Rank 0 of tp holds the gathered logits (gather[0]) and part 0's tokens. */
    if (e->dev == out->logits_rank) PB_TRY(executor_logits(&e->x, &out->logits, &out->rows, &out->vocab));
    if (e->dev == out->tokens_rank) PB_TRY(executor_tokens(&e->x, &out->tokens, &out->count));
    return PB_OK;
}

static void mpi_destroy(void *state)
{
    mpi_executor_destroy(state);
    cupti_exec_collect(NULL, NULL, -1);
}

/* A rank runs logical device `rank` alone. */
static int mpi_memory_in_use(const struct exec_config *c, uint64_t *used)
{
    int me = c->world->rank;
    for (int d = 0; d < c->g->prompt.n_devices; d++) used[d] = 0;
    return me < c->g->prompt.n_devices ? executor_gpu_used(&c->map->ordinal[me], 1, &used[me]) : PB_OK;
}

const struct executor_ops mpi_executor_ops = {
    .name = "mpi",
    .copies_are_kernels = 1,
    .create = mpi_create,
    .run = mpi_run,
    .profiling = cupti_exec_profiling,
    .collect = cupti_exec_collect,
    .outputs = mpi_outputs,
    .destroy = mpi_destroy,
    .memory_in_use = mpi_memory_in_use,
};
