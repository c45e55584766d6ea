/* The CUDA executor's setup and iterations: parts per logical device (checked
 * against free memory first), a stream per (device, stream), NCCL communicators
 * for tensor parallelism, peer access, then timed prefill or generate passes. */
#include <stdlib.h>
#include <string.h>
#include "../../measure/cupti.h"
#include "cuda_exec_internal.h"
#include "../../run/run_common.h"

/* Refuse before allocating: the parts of every logical device sharing a GPU must fit its free memory. */
static int check_memory(struct executor *e, size_t extra_per_gpu)
{
    for (int d = 0; d < e->c.n_devices; d++) {
        int ord = e->c.ordinal[d], first = 1;
        for (int k = 0; k < d; k++) first &= e->c.ordinal[k] != ord;
        if (!first) continue;
        uint64_t need = extra_per_gpu;
        for (int k = 0; k < e->l.n_parts; k++)
            if (e->l.parts[k].d.device == ord) need += llama_part_bytes(e->c.m, &e->l.parts[k].d);
        size_t free_b = 0, total = 0;
        CUDA_TRY(cudaSetDevice(ord));
        CUDA_TRY(cudaMemGetInfo(&free_b, &total));
        if (need > free_b)
            return pb_fail("%s needs %.2f GiB on GPU %d for batch %d x seq %d, but only %.2f GiB are free; "
                           "use a smaller --batch/--seq, more GPUs, or another strategy",
                           e->c.label, need / 1073741824.0, ord, e->c.batch, e->c.seq, free_b / 1073741824.0);
    }
    return PB_OK;
}

static int enable_peers(struct executor *e)
{
    for (int a = 0; a < e->c.n_devices; a++)
        for (int b = 0; b < e->c.n_devices; b++) {
            int oa = e->c.ordinal[a], ob = e->c.ordinal[b], can = 0;
            if (oa == ob) continue;
            CUDA_TRY(cudaDeviceCanAccessPeer(&can, oa, ob));
            if (!can) continue;   /* cudaMemcpyPeerAsync then stages through the host */
            CUDA_TRY(cudaSetDevice(oa));
            cudaError_t r = cudaDeviceEnablePeerAccess(ob, 0);
            if (r == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
            else CUDA_TRY(r);
            e->peer[a][b] = 1;
        }
    return PB_OK;
}

/* The stream's copy destination, when all copies issued on it go to one device. */
static int stream_dst(const struct executor *e, int d, int s)
{
    int dst = -1;
    const struct schedule *sch[2] = {e->c.prefill, e->c.decode};
    for (int k = 0; k < 2; k++)
        for (int i = 0; sch[k] && i < sch[k]->n_steps; i++) {
            const struct step *st = &sch[k]->steps[i];
            if (st->kind != STEP_COPY || st->device != d || st->stream != s) continue;
            if (dst >= 0 && dst != st->dst) return -1;
            dst = st->dst;
        }
    return dst;
}

static int create_streams(struct executor *e)
{
    e->n_streams = e->c.prefill->streams_per_device;
    if (e->c.decode && e->c.decode->streams_per_device > e->n_streams) e->n_streams = e->c.decode->streams_per_device;
    if (e->n_streams > EXEC_MAX_STREAMS)
        return pb_fail("schedule uses %d streams per device; the executor supports %d", e->n_streams,
                       EXEC_MAX_STREAMS);
    for (int d = 0; d < e->c.n_devices; d++) {
        CUDA_TRY(cudaSetDevice(e->c.ordinal[d]));
        PB_TRY(cupti_map_ordinal(e->c.ordinal[d], d));
        for (int s = 0; s < e->n_streams; s++) {
            CUDA_TRY(cudaStreamCreateWithFlags(&e->stream[d][s], cudaStreamNonBlocking));
            CUDA_TRY(cudaEventCreateWithFlags(&e->join[d][s], cudaEventDisableTiming));
            PB_TRY(cupti_register_stream(e->stream[d][s], d, s, stream_dst(e, d, s)));
        }
    }
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    CUDA_TRY(cudaEventCreate(&e->start));
    CUDA_TRY(cudaEventCreate(&e->stop));
    CUDA_TRY(cudaEventCreateWithFlags(&e->fork, cudaEventDisableTiming));
    return PB_OK;
}

/* Group g's devices in rank order (ascending logical device, as NCCL's ranks), and
 * whether two of them share a GPU. */
static int group_devices(const struct executor *e, int g, int *dev, int *shared)
{
    int n = 0;
    *shared = 0;
    for (int d = 0; d < e->c.n_devices; d++)
        if (e->c.prefill->group_of[d] == g) {
            for (int k = 0; k < n; k++) *shared |= e->c.ordinal[dev[k]] == e->c.ordinal[d];
            dev[n++] = d;
        }
    return n;
}

/* One peer-memory group per tp group, its buffers as large as the largest sum (the prompt pass's). */
static int create_peer_groups(struct executor *e)
{
    size_t capacity = (size_t)e->c.batch * e->c.seq * e->c.m->hidden;
    for (int g = 0; g < e->c.prefill->n_groups; g++) {
        int dev[PB_MAX_DEVICES], ord[PB_MAX_DEVICES], shared;
        int n = group_devices(e, g, dev, &shared);
        if (n > PEER_MAX_RANKS)
            return pb_fail("%s: --allreduce %s supports tp groups of up to %d GPUs, this one has %d; use "
                           "--allreduce nccl", e->c.label, allreduce_algo_name(e->c.allreduce),
                           PEER_MAX_RANKS, n);
        for (int k = 0; k < n; k++) ord[k] = e->c.ordinal[dev[k]];
        e->peer_ar[g] = calloc(1, sizeof *e->peer_ar[g]);
        if (!e->peer_ar[g]) return pb_fail("out of host memory for the peer all-reduce");
        PB_TRY(peer_group_create(n, ord, capacity, e->peer_ar[g]));
    }
    return PB_OK;
}

static int create_comms(struct executor *e)
{
    int needs = 0, shared = 0;
    const struct schedule *sch[2] = {e->c.prefill, e->c.decode};
    for (int k = 0; k < 2; k++)
        for (int i = 0; sch[k] && i < sch[k]->n_steps; i++)
            needs |= sch[k]->steps[i].kind == STEP_ALLREDUCE || sch[k]->steps[i].kind == STEP_ALLGATHER;
    if (!needs) return PB_OK;
    for (int g = 0; g < e->c.prefill->n_groups; g++) {
        int dev[PB_MAX_DEVICES], one;
        group_devices(e, g, dev, &one);
        shared |= one;
    }
    /* NCCL needs distinct GPUs: auto on logical devices takes the peer path for every size. */
    if (e->c.allreduce != ALLREDUCE_NCCL) PB_TRY(create_peer_groups(e));
    if (e->c.allreduce != ALLREDUCE_NCCL && (e->c.allreduce != ALLREDUCE_AUTO || shared)) return PB_OK;
    /* One communicator per tp group (tp: one group of every device; hybrid: one per
     * stage): a collective step runs on e->comm[its device], its group's. */
    const struct schedule *s = e->c.prefill;
    for (int g = 0; g < s->n_groups; g++) {
        int dev[PB_MAX_DEVICES], ord[PB_MAX_DEVICES], n = 0;
        for (int d = 0; d < e->c.n_devices; d++)
            if (s->group_of[d] == g) {
                for (int k = 0; k < n; k++)
                    if (ord[k] == e->c.ordinal[d])
                        return pb_fail("%s needs %d distinct GPUs for NCCL, but logical devices %d and %d are "
                                       "both GPU %d (--devices); run it on %d GPUs, or with --allreduce "
                                       "oneshot|twoshot|auto (peer memory)", e->c.label,
                                       e->c.n_devices, dev[k], d, ord[k], e->c.n_devices);
                dev[n] = d;
                ord[n++] = e->c.ordinal[d];
            }
        ncclComm_t comm[PB_MAX_DEVICES];
        NCCL_TRY(ncclCommInitAll(comm, n, ord));
        for (int k = 0; k < n; k++) e->comm[dev[k]] = comm[k];
    }
    e->have_comms = 1;
    return PB_OK;
}

static int create_parts(struct executor *e)
{
    for (int k = 0; k < e->l.n_parts; k++) {
        struct part_slot *ps = &e->l.parts[k];
        CUDA_TRY(cudaSetDevice(ps->d.device));
        PB_TRY(llama_part_create(e->c.m, &ps->d, &ps->p));
        if (e->c.weights) PB_TRY(llama_part_load_safetensors(ps->p, e->c.weights));
        else PB_TRY(llama_part_init_random(ps->p, e->c.seed));
    }
    size_t n = (size_t)e->c.batch * e->c.seq;
    CUDA_TRY(cudaMallocHost((void **)&e->h_prompt, n * sizeof(int)));
    run_prompt_fill(e->h_prompt, e->c.prompt, (int)n, e->c.m->vocab, e->c.seed);
    for (int k = 0; k < e->l.n_parts; k++) {   /* tp: every rank's replicated embedding */
        struct part_slot *ps = &e->l.parts[k];
        if (!ps->d.has_embed) continue;
        CUDA_TRY(cudaSetDevice(ps->d.device));
        CUDA_TRY(cudaMemcpy(llama_part_tokens(ps->p), e->h_prompt, n * sizeof(int), cudaMemcpyHostToDevice));
    }
    if (e->c.decode && !e->l.tp) {
        CUDA_TRY(cudaSetDevice(e->l.parts[e->l.head_part].d.device));
        CUDA_TRY(cudaMalloc((void **)&e->d_next, (size_t)e->c.batch * sizeof(int)));
    }
    if (e->c.decode) {   /* a captured decode pass reads its position here */
        CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
        CUDA_TRY(cudaMalloc((void **)&e->d_pos, sizeof(int)));
        CUDA_TRY(cudaMallocHost((void **)&e->h_pos, ((size_t)e->c.decode_tokens + 1) * sizeof(int)));
    }
    if (e->l.tp && e->l.tp_degree > 1) {   /* the last stage's ranks gather the vocabulary slices */
        size_t bytes = (size_t)e->c.batch * e->c.seq * (size_t)e->c.m->vocab * 2;
        for (int k = 0; k < e->l.n_parts; k++) {
            const struct part_slot *ps = &e->l.parts[k];
            if (!ps->d.has_head || e->gather[ps->logical]) continue;
            CUDA_TRY(cudaSetDevice(ps->d.device));
            CUDA_TRY(cudaMalloc(&e->gather[ps->logical], bytes));
        }
    }
    return PB_OK;
}

int executor_create(const struct cuda_config *c, struct executor **out)
{
    *out = NULL;
    struct executor *e = calloc(1, sizeof *e);
    if (!e) return pb_fail("out of host memory for the executor");
    e->c = *c;
    e->transport = &exec_peer_transport;
    *out = e;
    if (c->n_devices != c->prefill->n_devices)
        return pb_fail("internal: schedule has %d devices, executor %d", c->prefill->n_devices, c->n_devices);
    PB_TRY(exec_build_parts(c, c->ordinal, &e->l));
    size_t extra = e->l.tp ? (size_t)c->batch * c->seq * (size_t)c->m->vocab * 2 : 0;
    /* the peer all-reduce's staging: two halves of the largest sum */
    if (e->l.tp && c->allreduce != ALLREDUCE_NCCL) extra += (size_t)c->batch * c->seq * c->m->hidden * 4;
    PB_TRY(check_memory(e, extra + (64u << 20)));
    e->nvtx = nvtxDomainCreateA("placebench");
    PB_TRY(enable_peers(e));
    PB_TRY(create_streams(e));
    PB_TRY(create_comms(e));
    PB_TRY(create_parts(e));
    PB_TRY(exec_prepare_plan(e, c->prefill, c->seq, &e->pre));
    if (c->decode) PB_TRY(exec_prepare_plan(e, c->decode, 1, &e->dec));
    return exec_capture_graphs(e);
}

void executor_destroy(struct executor *e)
{
    if (!e) return;
    executor_serve_free(e);
    exec_free_plan(&e->pre);
    exec_free_plan(&e->dec);
    if (e->graph) cudaGraphExecDestroy(e->graph);
    if (e->pre_graph) cudaGraphExecDestroy(e->pre_graph);
    for (int k = 0; k < e->l.n_parts; k++) {
        cudaSetDevice(e->l.parts[k].d.device);
        if (e->l.parts[k].p) llama_part_destroy(e->l.parts[k].p);
    }
    for (int d = 0; d < e->c.n_devices; d++) {
        cudaSetDevice(e->c.ordinal[d]);
        for (int s = 0; s < e->n_streams; s++) {
            if (e->stream[d][s]) cudaStreamDestroy(e->stream[d][s]);
            if (e->join[d][s]) cudaEventDestroy(e->join[d][s]);
        }
        if (e->gather[d]) cudaFree(e->gather[d]);
        if (e->comm[d]) ncclCommDestroy(e->comm[d]);
        if (e->peer_ar[d]) peer_group_destroy(e->peer_ar[d]);
        free(e->peer_ar[d]);
    }
    if (e->start) cudaEventDestroy(e->start);
    if (e->stop) cudaEventDestroy(e->stop);
    if (e->fork) cudaEventDestroy(e->fork);
    cudaFree(e->d_next);
    cudaFree(e->d_pos);
    cudaFreeHost(e->h_pos);
    cudaFreeHost(e->h_prompt);
    cupti_clear_maps();
    exec_gate_free(e);
    free(e);
}

static cudaStream_t origin(struct executor *e) { return e->stream[0][0]; }

int exec_fork_streams(struct executor *e, cudaEvent_t ev)
{
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    CUDA_TRY(cudaEventRecord(ev, origin(e)));
    for (int d = 0; d < e->c.n_devices; d++)
        for (int s = 0; s < e->n_streams; s++)
            if (d || s) CUDA_TRY(cudaStreamWaitEvent(e->stream[d][s], ev, 0));
    return PB_OK;
}

int exec_join_streams(struct executor *e)
{
    for (int d = 0; d < e->c.n_devices; d++) {
        CUDA_TRY(cudaSetDevice(e->c.ordinal[d]));
        for (int s = 0; s < e->n_streams; s++)
            if (d || s) CUDA_TRY(cudaEventRecord(e->join[d][s], e->stream[d][s]));
    }
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    for (int d = 0; d < e->c.n_devices; d++)
        for (int s = 0; s < e->n_streams; s++)
            if (d || s) CUDA_TRY(cudaStreamWaitEvent(origin(e), e->join[d][s], 0));
    return PB_OK;
}

/* Pass k >= 1 of the program: the decode template at the pass's position. */
static int decode_pass(struct executor *e, int k, const struct plan_exec *prev, struct trace *tr, int it)
{
    int t = k - 1, pos = e->c.g->passes[k].pos, n_feed;
    const struct token_feed *feed = program_pass_feed(e->c.g, k, &n_feed);
    if (e->graph_state == 1) {
        /* Each token has its own pinned slot: the copy reads it when the stream gets there. */
        e->h_pos[t] = pos;
        CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
        PB_TRY(exec_join_streams(e));
        CUDA_TRY(cudaMemcpyAsync(e->d_pos, &e->h_pos[t], sizeof(int), cudaMemcpyHostToDevice, origin(e)));
        return exec_graph_replay(e, e->graph);
    }
    return exec_issue_pass(e, &e->dec, prev, feed, n_feed, pos, 0, 1, 1, 0, tr, it);
}

int exec_issue_passes(struct executor *e, struct trace *t, int iteration)
{
    int generate = e->c.decode != NULL;
    if (e->pre_graph_state == 1) PB_TRY(exec_graph_replay(e, e->pre_graph));
    else PB_TRY(exec_issue_pass(e, &e->pre, NULL, NULL, 0, 0, 0, generate, generate, 0, t, iteration));
    exec_gate_open(e);   /* the first graph is launched: the GPU may start */
    const struct plan_exec *prev = &e->pre;
    for (int k = 1; generate && k < e->c.g->n_passes; k++) {
        PB_TRY(decode_pass(e, k, prev, t, iteration));
        prev = &e->dec;
    }
    return PB_OK;
}

/* Everything an iteration issues, from the start event to the stop event. */
static int issue_iteration(struct executor *e, struct trace *t, int iteration)
{
    int generate = e->c.decode != NULL;
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    /* Profiled iterations whose first pass is a graph wait, before the start event,
     * until that graph is launched (cuda_exec_gate.c). */
    if (e->pre_graph_state == 1 && cupti_gate_wanted()) PB_TRY(exec_gate_close(e, origin(e)));
    CUDA_TRY(cudaEventRecord(e->start, origin(e)));
    PB_TRY(exec_fork_streams(e, e->fork));
    if (generate) {
        /* Decode passes overwrite the token rows: the prompt goes back in first. */
        for (int k = 0; k < e->l.n_parts; k++) {
            struct part_slot *ps = &e->l.parts[k];
            if (!ps->d.has_embed) continue;
            CUDA_TRY(cudaSetDevice(ps->d.device));
            CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(ps->p), e->h_prompt,
                                     (size_t)e->c.batch * e->c.seq * sizeof(int), cudaMemcpyHostToDevice,
                                     e->stream[ps->logical][0]));
        }
    }
    PB_TRY(exec_issue_passes(e, t, iteration));
    PB_TRY(exec_join_streams(e));
    CUDA_TRY(cudaEventRecord(e->stop, origin(e)));
    return PB_OK;
}

int executor_run(struct executor *e, int iteration, struct trace *t, double *ms)
{
    char label[64];
    snprintf(label, sizeof label, "%s iteration %d", e->c.label, iteration);
    exec_nvtx_push(e->nvtx, label);
    uint64_t t0 = cupti_now_ns();
    int generate = e->c.decode != NULL;
    int rc = issue_iteration(e, t, iteration);
    exec_gate_open(e);   /* on every path: an error must not leave the GPU held */
    PB_TRY(rc);
    CUDA_TRY(cudaEventSynchronize(e->stop));
    for (int g = 0; g < PB_MAX_DEVICES; g++)
        if (e->peer_ar[g]) PB_TRY(peer_group_check(e->peer_ar[g]));
    float elapsed = 0;
    CUDA_TRY(cudaEventElapsedTime(&elapsed, e->start, e->stop));
    *ms = elapsed;
    nvtxDomainRangePop(e->nvtx);
    e->last_only = generate;
    e->last_rows = generate ? e->c.batch : e->c.batch * e->c.seq;
    if (t) {
        struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = t0, .end_ns = cupti_now_ns(),
                           .iteration = iteration, .src_device = -1, .dst_device = -1};
        snprintf(r.name, sizeof r.name, "%s", label);
        PB_TRY(trace_add(t, &r));
    }
    return PB_OK;
}

int executor_logits(struct executor *e, uint16_t **out, int *rows, int *vocab)
{
    int n = e->last_rows, v = e->c.m->vocab;
    *rows = n;
    *vocab = v;
    *out = malloc((size_t)n * v * sizeof(uint16_t));
    if (!*out) return pb_fail("out of host memory for %d x %d logits", n, v);
    const struct part_slot *head = &e->l.parts[e->l.head_part];
    if (!e->l.tp || e->l.tp_degree == 1) {
        CUDA_TRY(cudaSetDevice(head->d.device));
        CUDA_TRY(cudaMemcpy(*out, llama_part_logits(head->p), (size_t)n * v * 2, cudaMemcpyDeviceToHost));
        return PB_OK;
    }
    /* All-gathered slices on the last stage's rank 0, one block per microbatch (equal
     * ones), each rank-major [world][its rows][vocab/world]: interleave per row. */
    int w = e->l.tp_degree, vl = v / w, mbs = e->c.prefill->microbatches > 0 ? e->c.prefill->microbatches : 1;
    int per = n / mbs;
    uint16_t *g = malloc((size_t)n * v * sizeof(uint16_t));
    if (!g) return pb_fail("out of host memory for gathered logits");
    CUDA_TRY(cudaSetDevice(head->d.device));
    cudaError_t r = cudaMemcpy(g, e->gather[head->logical], (size_t)n * v * 2, cudaMemcpyDeviceToHost);
    if (r != cudaSuccess) {
        free(g);
        CUDA_TRY(r);
    }
    for (int i = 0; i < n; i++) {
        const uint16_t *block = g + (size_t)(i / per) * per * v;
        for (int k = 0; k < w; k++)
            memcpy(*out + (size_t)i * v + (size_t)k * vl, block + ((size_t)k * per + i % per) * vl, (size_t)vl * 2);
    }
    free(g);
    return PB_OK;
}

int executor_tokens(struct executor *e, int **out, int *count)
{
    *out = NULL;
    *count = 0;
    if (!e->c.decode) return PB_OK;
    struct part_slot *ps = &e->l.parts[e->l.embed_part];
    *out = malloc((size_t)e->c.batch * sizeof(int));
    if (!*out) return pb_fail("out of host memory for tokens");
    CUDA_TRY(cudaSetDevice(ps->d.device));
    CUDA_TRY(cudaMemcpy(*out, llama_part_tokens(ps->p), (size_t)e->c.batch * sizeof(int), cudaMemcpyDeviceToHost));
    *count = e->c.batch;
    return PB_OK;
}

int executor_used_graph(const struct executor *e) { return e->graph_state == 1 || e->pre_graph_state == 1; }

int executor_gpu_used(const int *ordinal, int n, uint64_t *used)
{
    for (int d = 0; d < n; d++) {
        size_t free_b = 0, total = 0;
        CUDA_TRY(cudaSetDevice(ordinal[d]));
        CUDA_TRY(cudaMemGetInfo(&free_b, &total));
        used[d] = total - free_b;
    }
    return PB_OK;
}
