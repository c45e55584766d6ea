/* Rank-local execution of a schedule (see cuda_mpi_exec.h). Every rank walks the
 * same issue order and issues its part of each step at the same position: NCCL
 * serialises the operations of a communicator in the order they are issued, so a
 * send and its receive, or the members of a collective, meet without deadlock. */
#include <stdlib.h>
#include <string.h>
#include "../../measure/cupti.h"
#include "../cuda/cuda_exec_internal.h"
#include "../../run/run_common.h"
#include "cuda_mpi_exec.h"
#include "cuda_mpi_peer.h"

struct mpi_plan {
    struct plan_exec p;        /* the single-process layout; events only for this rank's steps */
    int *stream;               /* per step: this rank's stream for it, -1 when not this rank's */
};

struct mpi_executor {
    struct mpi_exec_config x;
    int dev, idle;
    struct part_layout l;      /* every device's parts, allocated only for this rank's */
    int n_streams;
    cudaStream_t stream[EXEC_MAX_STREAMS];
    cudaEvent_t join[EXEC_MAX_STREAMS], start, stop;
    void *gather;
    int *d_next, *h_prompt;
    struct mpi_plan pre, dec;
    int last_rows;
    nvtxDomainHandle_t nvtx;
    struct mpi_peer peer;      /* tp sums on peer memory (--allreduce), when active */
};

#define MINE(e, logical) ((logical) == (e)->dev)

static int create_parts(struct mpi_executor *e)
{
    const struct cuda_config *c = &e->x.c;
    uint64_t need = 64u << 20;
    for (int k = 0; k < e->l.n_parts; k++)
        if (MINE(e, e->l.parts[k].logical)) need += llama_part_bytes(c->m, &e->l.parts[k].d);
    size_t free_b = 0, total = 0;
    CUDA_TRY(cudaMemGetInfo(&free_b, &total));
    if (need > free_b)
        return pb_fail("%s needs %.2f GiB on rank %d's GPU %d for batch %d x seq %d, but only %.2f GiB are free",
                       c->label, need / 1073741824.0, e->dev, e->x.ordinal, c->batch, c->seq, free_b / 1073741824.0);
    for (int k = 0; k < e->l.n_parts; k++) {
        struct part_slot *ps = &e->l.parts[k];
        if (!MINE(e, ps->logical)) continue;
        PB_TRY(llama_part_create(c->m, &ps->d, &ps->p));
        if (c->weights) PB_TRY(llama_part_load_safetensors(ps->p, c->weights));
        else PB_TRY(llama_part_init_random(ps->p, c->seed));
    }
    size_t n = (size_t)c->batch * c->seq;
    CUDA_TRY(cudaMallocHost((void **)&e->h_prompt, n * sizeof(int)));
    run_prompt_tokens(e->h_prompt, (int)n, c->m->vocab, c->seed);
    int embed = e->l.tp ? e->dev : e->l.embed_part;
    if (MINE(e, e->l.parts[embed].logical))
        CUDA_TRY(cudaMemcpy(llama_part_tokens(e->l.parts[embed].p), e->h_prompt, n * sizeof(int), cudaMemcpyHostToDevice));
    if (c->decode && !e->l.tp && MINE(e, e->l.parts[e->l.head_part].logical))
        CUDA_TRY(cudaMalloc((void **)&e->d_next, (size_t)c->batch * sizeof(int)));
    if (e->l.tp && c->n_devices > 1)
        CUDA_TRY(cudaMalloc(&e->gather, n * (size_t)c->m->vocab * 2));
    return PB_OK;
}

static int create_streams(struct mpi_executor *e)
{
    const struct cuda_config *c = &e->x.c;
    e->n_streams = c->prefill->streams_per_device;
    if (c->decode && c->decode->streams_per_device > e->n_streams) e->n_streams = c->decode->streams_per_device;
    if (e->n_streams > EXEC_MAX_STREAMS)
        return pb_fail("schedule uses %d streams per device; the executor supports %d", e->n_streams, EXEC_MAX_STREAMS);
    PB_TRY(cupti_map_ordinal(e->x.ordinal, e->dev));
    for (int s = 0; s < e->n_streams; s++) {
        CUDA_TRY(cudaStreamCreateWithFlags(&e->stream[s], cudaStreamNonBlocking));
        CUDA_TRY(cudaEventCreateWithFlags(&e->join[s], cudaEventDisableTiming));
        /* Copies leave as NCCL kernels, not memcpy records: no destination to name. */
        PB_TRY(cupti_register_stream(e->stream[s], e->dev, s, -1));
    }
    CUDA_TRY(cudaEventCreate(&e->start));
    CUDA_TRY(cudaEventCreate(&e->stop));
    return PB_OK;
}

/* ---- plans: issue order, parts along each microbatch's way, this rank's share ---- */

/* This rank's stream for step i, or -1: its own steps; the receiving end of a
 * copy (on the stream of the step that reads the rows); and, in a decode where
 * head and embedding sit on different ranks, the receipt of the greedy tokens. */
static int my_stream(const struct mpi_executor *e, const struct mpi_plan *pe, int i)
{
    const struct step *st = &pe->p.s->steps[i];
    if (st->kind == STEP_COPY) {
        if (MINE(e, st->src)) return MINE(e, st->device) ? st->stream : 0;
        if (!MINE(e, st->dst)) return -1;
        int c = exec_consumer(pe->p.s, i);
        return c >= 0 && MINE(e, pe->p.s->steps[c].device) ? pe->p.s->steps[c].stream : 0;
    }
    if (MINE(e, st->device)) return st->stream;
    int tokens_travel = st->kind == STEP_HEAD && e->x.c.decode && !e->l.tp &&
                        e->l.parts[e->l.embed_part].logical != e->l.parts[e->l.head_part].logical;
    return tokens_travel && MINE(e, e->l.parts[e->l.embed_part].logical) ? 0 : -1;
}

static int prepare_plan(struct mpi_executor *e, const struct schedule *s, int seq, struct mpi_plan *pe)
{
    memset(pe, 0, sizeof *pe);
    PB_TRY(exec_layout_plan(&e->l, s, seq, &pe->p));
    if (!(pe->stream = calloc((size_t)s->n_steps + 1, sizeof(int)))) return pb_fail("out of host memory preparing a schedule");
    for (int i = 0; i < s->n_steps; i++) {
        pe->stream[i] = my_stream(e, pe, i);
        if (pe->stream[i] >= 0) CUDA_TRY(cudaEventCreateWithFlags(&pe->p.ev[i], cudaEventDisableTiming));
    }
    return PB_OK;
}

static void free_plan(struct mpi_plan *pe)
{
    exec_free_plan(&pe->p);
    free(pe->stream);
    pe->stream = NULL;
}

/* ---- issuing a pass ---- */

static size_t rows_offset(const struct mpi_executor *e, const struct mpi_plan *pe, const struct step *st)
{
    return (size_t)st->batch_offset * pe->p.seq * e->x.c.m->hidden * 2;
}

static size_t rows_count(const struct mpi_executor *e, const struct mpi_plan *pe, const struct step *st)
{
    return (size_t)st->batch * pe->p.seq * e->x.c.m->hidden;
}

static int wait_deps(const struct mpi_plan *pe, const struct step *st, cudaStream_t s)
{
    /* Steps of other ranks have no event here: their data arrives through NCCL. */
    for (int d = 0; d < st->n_deps; d++)
        if (pe->p.ev[st->deps[d]]) CUDA_TRY(cudaStreamWaitEvent(s, pe->p.ev[st->deps[d]], 0));
    return PB_OK;
}

static int copy_part(struct mpi_executor *e, struct mpi_plan *pe, int i, cudaStream_t s)
{
    const struct step *st = &pe->p.s->steps[i];
    size_t off = rows_offset(e, pe, st), count = rows_count(e, pe, st);
    if (MINE(e, st->src) && MINE(e, st->dst)) {
        char *dst = (char *)llama_part_hidden(e->l.parts[pe->p.dst_part[i]].p) + off;
        const char *src = (const char *)llama_part_hidden(e->l.parts[pe->p.src_part[i]].p) + off;
        CUDA_TRY(cudaMemcpyAsync(dst, src, count * 2, cudaMemcpyDeviceToDevice, s));
    } else if (MINE(e, st->src)) {
        PB_TRY(wait_deps(pe, st, s));
        const char *src = (const char *)llama_part_hidden(e->l.parts[pe->p.src_part[i]].p) + off;
        NCCL_TRY(ncclSend(src, count, ncclBfloat16, st->dst, e->x.comm, s));
    } else {
        char *dst = (char *)llama_part_hidden(e->l.parts[pe->p.dst_part[i]].p) + off;
        NCCL_TRY(ncclRecv(dst, count, ncclBfloat16, st->src, e->x.comm, s));
    }
    return PB_OK;
}

/* The head's greedy tokens, to the embedding's token rows for the next pass. */
static int head_argmax(struct mpi_executor *e, struct llama_part *head, const struct llama_call *call,
                       const struct step *st, cudaStream_t s)
{
    const struct part_slot *emb = &e->l.parts[e->l.embed_part];
    if (MINE(e, emb->logical)) return llama_argmax(head, call, llama_part_tokens(emb->p), s);
    PB_TRY(llama_argmax(head, call, e->d_next, s));
    NCCL_TRY(ncclSend(e->d_next + st->batch_offset, (size_t)st->batch, ncclInt32, emb->logical, e->x.comm, s));
    return PB_OK;
}

static int receive_tokens(struct mpi_executor *e, const struct step *st, cudaStream_t s)
{
    int *tokens = llama_part_tokens(e->l.parts[e->l.embed_part].p);
    NCCL_TRY(ncclRecv(tokens + st->batch_offset, (size_t)st->batch, ncclInt32, st->device, e->x.comm, s));
    return PB_OK;
}

static int compute(struct mpi_executor *e, struct mpi_plan *pe, int i, const struct llama_call *call, int argmax,
                   cudaStream_t s)
{
    const struct step *st = &pe->p.s->steps[i];
    PB_TRY(exec_compute(&e->l, &pe->p, i, e->x.c.m->hidden, call, s));
    if (st->kind != STEP_HEAD || !argmax || (e->l.tp && e->x.c.n_devices > 1)) return PB_OK;
    return head_argmax(e, e->l.parts[pe->p.part[i]].p, call, st, s);
}

/* This rank's member of one collective (the group's other members are other ranks'). */
static int collective(struct mpi_executor *e, struct mpi_plan *pe, int i, int last_only, int argmax)
{
    const struct step *st = &pe->p.s->steps[i];
    cudaStream_t s = e->stream[st->stream];
    struct llama_part *p = e->l.parts[st->device].p;
    PB_TRY(wait_deps(pe, st, s));
    if (st->kind == STEP_ALLREDUCE) {
        void *h = (char *)llama_part_hidden(p) + rows_offset(e, pe, st);
        size_t count = rows_count(e, pe, st);
        enum allreduce_algo algo = allreduce_choose(e->x.c.allreduce, &e->x.c.allreduce_table, count * 2, 1);
        if (e->peer.active && algo != ALLREDUCE_NCCL) return peer_allreduce(&e->peer.comm, h, count, algo, s);
        NCCL_TRY(ncclAllReduce(h, h, count, ncclBfloat16, ncclSum, e->x.comm, s));
        return PB_OK;
    }
    int w = e->x.c.n_devices, vl = e->x.c.m->vocab / w, rows = last_only ? st->batch : st->batch * pe->p.seq;
    size_t row0 = last_only ? (size_t)st->batch_offset : (size_t)st->batch_offset * pe->p.seq;
    const char *send = (const char *)llama_part_logits(p) + row0 * vl * 2;
    NCCL_TRY(ncclAllGather(send, e->gather, (size_t)rows * vl, ncclBfloat16, e->x.comm, s));
    if (!argmax) return PB_OK;
    struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->p.seq, .last_only = last_only};
    return llama_argmax_gathered(e->gather, w, (size_t)rows * vl, vl, &call, llama_part_tokens(p), s);
}

/* The program's token feed (strategies/program.c): this rank waits only for the
 * producing steps it has events of; the others' tokens arrive through NCCL. */
static int wait_feed(const struct mpi_plan *prev, const struct token_feed *feed, int n_feed, int i, cudaStream_t s)
{
    for (int k = 0; k < n_feed; k++)
        if (feed[k].embed == i && prev->p.ev[feed[k].from]) CUDA_TRY(cudaStreamWaitEvent(s, prev->p.ev[feed[k].from], 0));
    return PB_OK;
}

static int issue_step(struct mpi_executor *e, struct mpi_plan *pe, const struct mpi_plan *prev,
                      const struct token_feed *feed, int n_feed, int i, int pos,
                      int last_only, int argmax)
{
    const struct step *st = &pe->p.s->steps[i];
    cudaStream_t s = e->stream[pe->stream[i]];
    if (step_is_collective(st)) return collective(e, pe, i, last_only, argmax);
    if (st->kind == STEP_COPY) return copy_part(e, pe, i, s);
    if (!MINE(e, st->device)) return receive_tokens(e, st, s);
    PB_TRY(wait_deps(pe, st, s));
    if (prev) PB_TRY(wait_feed(prev, feed, n_feed, i, s));
    struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->p.seq, .pos = pos,
                              .last_only = last_only};
    return compute(e, pe, i, &call, argmax, s);
}

static int issue_pass(struct mpi_executor *e, struct mpi_plan *pe, const struct mpi_plan *prev,
                      const struct token_feed *feed, int n_feed, int pos, int last_only,
                      int argmax, struct trace *t, int iteration)
{
    for (int oi = 0; oi < pe->p.s->n_steps; oi++) {
        int i = pe->p.order[oi];
        if (pe->stream[i] < 0) continue;
        const struct step *st = &pe->p.s->steps[i];
        uint64_t t0 = t ? cupti_now_ns() : 0;
        char label[PB_LABEL_LEN];
        step_label(pe->p.s, st, label, sizeof label);
        exec_nvtx_push(e->nvtx, label);
        cupti_push_step(i, pe_microbatch(st, pe->p.s));
        int rc = issue_step(e, pe, prev, feed, n_feed, i, pos, last_only, argmax);
        cupti_pop_step();
        nvtxDomainRangePop(e->nvtx);
        PB_TRY(rc);
        CUDA_TRY(cudaEventRecord(pe->p.ev[i], e->stream[pe->stream[i]]));
        if (t) {
            struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = t0, .end_ns = cupti_now_ns(),
                               .iteration = iteration, .src_device = -1, .dst_device = -1};
            snprintf(r.name, sizeof r.name, "%s", label);
            PB_TRY(trace_add(t, &r));
        }
    }
    return PB_OK;
}

/* ---- the executor ---- */

/* tp (one group of every device) with sums --allreduce may give to peer memory:
 * the same answer on every rank, as the handle exchange is collective. */
static int wants_peer(const struct cuda_config *c)
{
    if (c->allreduce == ALLREDUCE_NCCL || c->prefill->n_groups != 1 || c->n_devices < 2) return 0;
    for (int i = 0; i < c->prefill->n_steps; i++)
        if (c->prefill->steps[i].kind == STEP_ALLREDUCE) return 1;
    return 0;
}

int mpi_executor_create(const struct mpi_exec_config *x, struct mpi_executor **out)
{
    *out = NULL;
    struct mpi_executor *e = calloc(1, sizeof *e);
    if (!e) return pb_fail("out of host memory for the executor");
    e->x = *x;
    e->dev = x->device;
    *out = e;
    if (x->c.n_devices != x->c.prefill->n_devices)
        return pb_fail("internal: schedule has %d devices, executor %d", x->c.prefill->n_devices, x->c.n_devices);
    /* Every rank lays out every device's parts, so all know where logits and
     * tokens live; the devices of other ranks' parts are never used here. */
    int ordinal[PB_MAX_DEVICES];
    for (int d = 0; d < PB_MAX_DEVICES; d++) ordinal[d] = x->ordinal;
    PB_TRY(exec_build_parts(&x->c, ordinal, &e->l));
    e->idle = x->device >= x->c.prefill->n_devices;   /* e.g. rank 1 while `single` runs */
    CUDA_TRY(cudaSetDevice(x->ordinal));
    if (wants_peer(&x->c))
        PB_TRY(mpi_peer_create(x->world, x->c.n_devices, (size_t)x->c.batch * x->c.seq * x->c.m->hidden, &e->peer));
    if (e->idle) return PB_OK;
    e->nvtx = nvtxDomainCreateA("placebench");
    PB_TRY(create_streams(e));
    PB_TRY(create_parts(e));
    PB_TRY(prepare_plan(e, x->c.prefill, x->c.seq, &e->pre));
    if (x->c.decode) PB_TRY(prepare_plan(e, x->c.decode, 1, &e->dec));
    return PB_OK;
}

void mpi_executor_destroy(struct mpi_executor *e)
{
    if (!e) return;
    if (!e->idle) cudaSetDevice(e->x.ordinal);
    free_plan(&e->pre);
    free_plan(&e->dec);
    for (int k = 0; k < e->l.n_parts; k++)
        if (e->l.parts[k].p) llama_part_destroy(e->l.parts[k].p);
    for (int s = 0; s < e->n_streams; s++) {
        if (e->stream[s]) cudaStreamDestroy(e->stream[s]);
        if (e->join[s]) cudaEventDestroy(e->join[s]);
    }
    if (e->start) cudaEventDestroy(e->start);
    if (e->stop) cudaEventDestroy(e->stop);
    mpi_peer_destroy(&e->peer);
    cudaFree(e->gather);
    cudaFree(e->d_next);
    cudaFreeHost(e->h_prompt);
    cupti_clear_maps();
    free(e);
}

/* Stream 0 forks to this rank's other streams and joins them at the end. */
static int fork_join(struct mpi_executor *e, int join)
{
    for (int s = 1; s < e->n_streams; s++) {
        cudaStream_t from = join ? e->stream[s] : e->stream[0], to = join ? e->stream[0] : e->stream[s];
        CUDA_TRY(cudaEventRecord(e->join[s], from));
        CUDA_TRY(cudaStreamWaitEvent(to, e->join[s], 0));
    }
    return PB_OK;
}

int mpi_executor_run(struct mpi_executor *e, int iteration, struct trace *t, double *ms)
{
    *ms = 0;
    if (e->idle) return PB_OK;
    const struct cuda_config *c = &e->x.c;
    int generate = c->decode != NULL;
    uint64_t t0 = cupti_now_ns();
    CUDA_TRY(cudaSetDevice(e->x.ordinal));
    CUDA_TRY(cudaEventRecord(e->start, e->stream[0]));
    PB_TRY(fork_join(e, 0));
    int embed = e->l.tp ? e->dev : e->l.embed_part;
    if (generate && MINE(e, e->l.parts[embed].logical))   /* decode overwrote the prompt's token rows */
        CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(e->l.parts[embed].p), e->h_prompt,
                                 (size_t)c->batch * c->seq * sizeof(int), cudaMemcpyHostToDevice, e->stream[0]));
    PB_TRY(issue_pass(e, &e->pre, NULL, NULL, 0, 0, generate, generate, t, iteration));
    const struct mpi_plan *prev = &e->pre;
    for (int k = 1; generate && k < c->g->n_passes; k++) {   /* the decode template at each pass's position */
        int n_feed;
        const struct token_feed *feed = program_pass_feed(c->g, k, &n_feed);
        PB_TRY(issue_pass(e, &e->dec, prev, feed, n_feed, c->g->passes[k].pos, 1, 1, t, iteration));
        prev = &e->dec;
    }
    PB_TRY(fork_join(e, 1));
    CUDA_TRY(cudaEventRecord(e->stop, e->stream[0]));
    CUDA_TRY(cudaEventSynchronize(e->stop));
    if (e->peer.active) PB_TRY(peer_comm_check(&e->peer.comm));
    float elapsed = 0;
    CUDA_TRY(cudaEventElapsedTime(&elapsed, e->start, e->stop));
    *ms = elapsed;
    e->last_rows = generate ? c->batch : c->batch * c->seq;
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
    return e->l.tp ? 0 : e->l.parts[e->l.head_part].logical;
}

int mpi_executor_tokens_rank(const struct mpi_executor *e)
{
    return e->l.tp ? 0 : e->l.parts[e->l.embed_part].logical;
}

int mpi_executor_logits(struct mpi_executor *e, uint16_t **out, int *rows, int *vocab)
{
    int n = e->last_rows, v = e->x.c.m->vocab;
    *rows = n;
    *vocab = v;
    *out = malloc((size_t)n * v * sizeof(uint16_t));
    if (!*out) return pb_fail("out of host memory for %d x %d logits", n, v);
    if (!e->l.tp || e->x.c.n_devices == 1) {
        CUDA_TRY(cudaMemcpy(*out, llama_part_logits(e->l.parts[e->l.tp ? 0 : e->l.head_part].p), (size_t)n * v * 2,
                            cudaMemcpyDeviceToHost));
        return PB_OK;
    }
    /* All-gathered slices are rank-major [world][rows][vocab/world]: interleave per row. */
    int w = e->x.c.n_devices, vl = v / w;
    uint16_t *g = malloc((size_t)n * v * sizeof(uint16_t));
    if (!g) return pb_fail("out of host memory for gathered logits");
    cudaError_t r = cudaMemcpy(g, e->gather, (size_t)n * v * 2, cudaMemcpyDeviceToHost);
    for (int k = 0; r == cudaSuccess && k < w; k++)
        for (int i = 0; i < n; i++) memcpy(*out + (size_t)i * v + (size_t)k * vl, g + ((size_t)k * n + i) * vl, (size_t)vl * 2);
    free(g);
    CUDA_TRY(r);
    return PB_OK;
}

int mpi_executor_tokens(struct mpi_executor *e, int **out, int *count)
{
    *out = NULL;
    *count = 0;
    if (!e->x.c.decode) return PB_OK;
    int embed = e->l.tp ? e->dev : e->l.embed_part;
    *out = malloc((size_t)e->x.c.batch * sizeof(int));
    if (!*out) return pb_fail("out of host memory for tokens");
    CUDA_TRY(cudaMemcpy(*out, llama_part_tokens(e->l.parts[embed].p), (size_t)e->x.c.batch * sizeof(int), cudaMemcpyDeviceToHost));
    *count = e->x.c.batch;
    return PB_OK;
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
    if (g->prompt.tp_world > 1 && g->prompt.tp_world != c->world->size)
        return pb_fail("%s: tensor parallel over %d of %d ranks needs a sub-communicator (not built); run "
                       "-np %d", c->label, g->prompt.tp_world, c->world->size, g->prompt.tp_world);
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
    if (e->dev == out->logits_rank) PB_TRY(mpi_executor_logits(e, &out->logits, &out->rows, &out->vocab));
    if (e->dev == out->tokens_rank) PB_TRY(mpi_executor_tokens(e, &out->tokens, &out->count));
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
