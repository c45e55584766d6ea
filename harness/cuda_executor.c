/* The CUDA executor's setup and iterations: parts per logical device (checked
 * against free memory first), a stream per (device, stream), NCCL communicators
 * for tensor parallelism, peer access, then timed prefill or generate passes. */
#include <stdlib.h>
#include <string.h>
#include "cupti.h"
#include "cuda_exec_internal.h"

static int exec_device(int d) { return d == PB_DEVICE_CPU ? 0 : d; }

static int add_part(struct executor *e, int logical, int host, int first, int count)
{
    if (e->n_parts == EXEC_MAX_PARTS) return pb_fail("placement has more than %d parts", EXEC_MAX_PARTS);
    struct part_slot *ps = &e->parts[e->n_parts];
    memset(ps, 0, sizeof *ps);
    ps->logical = logical;
    ps->host = host;
    ps->d = (struct llama_part_desc){.device = e->c.ordinal[logical], .rank = 0, .world = 1,
                                     .first_layer = first, .n_layers = count,
                                     .max_batch = e->c.batch, .max_context = e->c.seq + e->c.decode_tokens,
                                     .max_rows = e->c.batch * e->c.seq, .weights_on_host = host};
    return e->n_parts++;
}

/* A part on (logical, host) for embed or head, made empty if none holds layers there. */
static int part_on(struct executor *e, int device, int last)
{
    int logical = exec_device(device), host = device == PB_DEVICE_CPU, found = -1;
    for (int k = 0; k < e->n_parts; k++)
        if (e->parts[k].logical == logical && e->parts[k].host == host && (found < 0 || last)) found = k;
    return found >= 0 ? found : add_part(e, logical, host, 0, 0);
}

static int build_parts(struct executor *e)
{
    const struct placement *p = e->c.p;
    if (p->tensor_parallel) {
        e->tp = 1;
        for (int d = 0; d < e->c.n_devices; d++) {
            PB_TRY(add_part(e, d, 0, 0, e->c.m->layers) < 0 ? PB_ERR : PB_OK);
            e->parts[d].d.rank = d;
            e->parts[d].d.world = e->c.n_devices;
            e->parts[d].d.has_embed = e->parts[d].d.has_head = 1;
        }
        e->embed_part = e->head_part = 0;   /* rank 0 stands for all in token read-back */
        return PB_OK;
    }
    int sd[1024], sf[1024], sc[1024];
    int stages = placement_stages(p, sd, sf, sc);
    for (int i = 0; i < stages; i++) {
        int logical = exec_device(sd[i]), host = sd[i] == PB_DEVICE_CPU, merged = 0;
        for (int k = 0; k < e->n_parts && !merged; k++) {
            struct part_slot *ps = &e->parts[k];
            if (ps->logical == logical && ps->host == host && ps->d.first_layer + ps->d.n_layers == sf[i]) {
                ps->d.n_layers += sc[i];
                merged = 1;
            }
        }
        if (!merged && add_part(e, logical, host, sf[i], sc[i]) < 0) return PB_ERR;
    }
    int embed = -1, head = -1;
    for (int i = 0; i < p->n_modules; i++) {
        if (p->modules[i].kind == MODULE_EMBED) embed = p->device[i];
        if (p->modules[i].kind == MODULE_HEAD) head = p->device[i];
    }
    if ((e->embed_part = part_on(e, embed, 0)) < 0 || (e->head_part = part_on(e, head, 1)) < 0) return PB_ERR;
    e->parts[e->embed_part].d.has_embed = 1;
    e->parts[e->head_part].d.has_head = 1;
    return PB_OK;
}

/* Refuse before allocating: the parts of every logical device sharing a GPU must fit its free memory. */
static int check_memory(struct executor *e, size_t extra_per_gpu)
{
    for (int d = 0; d < e->c.n_devices; d++) {
        int ord = e->c.ordinal[d], first = 1;
        for (int k = 0; k < d; k++) first &= e->c.ordinal[k] != ord;
        if (!first) continue;
        uint64_t need = extra_per_gpu;
        for (int k = 0; k < e->n_parts; k++)
            if (e->parts[k].d.device == ord) need += llama_part_bytes(e->c.m, &e->parts[k].d);
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

static int create_comms(struct executor *e)
{
    int needs = 0;
    const struct schedule *sch[2] = {e->c.prefill, e->c.decode};
    for (int k = 0; k < 2; k++)
        for (int i = 0; sch[k] && i < sch[k]->n_steps; i++)
            needs |= sch[k]->steps[i].kind == STEP_ALLREDUCE || sch[k]->steps[i].kind == STEP_ALLGATHER;
    if (!needs) return PB_OK;
    for (int a = 0; a < e->c.n_devices; a++)
        for (int b = 0; b < a; b++)
            if (e->c.ordinal[a] == e->c.ordinal[b])
                return pb_fail("%s needs %d distinct GPUs for NCCL, but logical devices %d and %d are both "
                               "GPU %d (--devices); run it on %d GPUs", e->c.label, e->c.n_devices, b, a,
                               e->c.ordinal[a], e->c.n_devices);
    NCCL_TRY(ncclCommInitAll(e->comm, e->c.n_devices, e->c.ordinal));
    e->have_comms = 1;
    return PB_OK;
}

/* Prompt tokens: a deterministic function of the seed, the same for every strategy. */
static void prompt_tokens(int *out, int n, int vocab, uint64_t seed)
{
    uint64_t x = seed ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        x += 0x9e3779b97f4a7c15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        out[i] = (int)((z ^ (z >> 31)) % (uint64_t)vocab);
    }
}

static int create_parts(struct executor *e)
{
    for (int k = 0; k < e->n_parts; k++) {
        struct part_slot *ps = &e->parts[k];
        CUDA_TRY(cudaSetDevice(ps->d.device));
        PB_TRY(llama_part_create(e->c.m, &ps->d, &ps->p));
        if (e->c.weights) PB_TRY(llama_part_load_safetensors(ps->p, e->c.weights));
        else PB_TRY(llama_part_init_random(ps->p, e->c.seed));
    }
    size_t n = (size_t)e->c.batch * e->c.seq;
    CUDA_TRY(cudaMallocHost((void **)&e->h_prompt, n * sizeof(int)));
    prompt_tokens(e->h_prompt, (int)n, e->c.m->vocab, e->c.seed);
    int embeds = e->tp ? e->c.n_devices : 1;
    for (int k = 0; k < embeds; k++) {
        struct part_slot *ps = &e->parts[e->tp ? k : e->embed_part];
        CUDA_TRY(cudaSetDevice(ps->d.device));
        CUDA_TRY(cudaMemcpy(llama_part_tokens(ps->p), e->h_prompt, n * sizeof(int), cudaMemcpyHostToDevice));
    }
    if (e->c.decode && !e->tp) {
        CUDA_TRY(cudaSetDevice(e->parts[e->head_part].d.device));
        CUDA_TRY(cudaMalloc((void **)&e->d_next, (size_t)e->c.batch * sizeof(int)));
        CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
        CUDA_TRY(cudaMalloc((void **)&e->d_pos, sizeof(int)));
        CUDA_TRY(cudaMallocHost((void **)&e->h_pos, ((size_t)e->c.decode_tokens + 1) * sizeof(int)));
    }
    if (e->tp && e->c.n_devices > 1) {
        size_t bytes = (size_t)e->c.batch * e->c.seq * (size_t)e->c.m->vocab * 2;
        for (int d = 0; d < e->c.n_devices; d++) {
            CUDA_TRY(cudaSetDevice(e->c.ordinal[d]));
            CUDA_TRY(cudaMalloc(&e->gather[d], bytes));
        }
    }
    return PB_OK;
}

int executor_create(const struct exec_config *c, struct executor **out)
{
    *out = NULL;
    struct executor *e = calloc(1, sizeof *e);
    if (!e) return pb_fail("out of host memory for the executor");
    e->c = *c;
    e->embed_part = e->head_part = -1;
    *out = e;
    if (c->n_devices != c->prefill->n_devices)
        return pb_fail("internal: schedule has %d devices, executor %d", c->prefill->n_devices, c->n_devices);
    PB_TRY(build_parts(e));
    size_t extra = e->tp ? (size_t)c->batch * c->seq * (size_t)c->m->vocab * 2 : 0;
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
    exec_free_plan(&e->pre);
    exec_free_plan(&e->dec);
    if (e->graph) cudaGraphExecDestroy(e->graph);
    if (e->pre_graph) cudaGraphExecDestroy(e->pre_graph);
    for (int k = 0; k < e->n_parts; k++) {
        cudaSetDevice(e->parts[k].d.device);
        if (e->parts[k].p) llama_part_destroy(e->parts[k].p);
    }
    for (int d = 0; d < e->c.n_devices; d++) {
        cudaSetDevice(e->c.ordinal[d]);
        for (int s = 0; s < e->n_streams; s++) {
            if (e->stream[d][s]) cudaStreamDestroy(e->stream[d][s]);
            if (e->join[d][s]) cudaEventDestroy(e->join[d][s]);
        }
        if (e->gather[d]) cudaFree(e->gather[d]);
        if (e->have_comms) ncclCommDestroy(e->comm[d]);
    }
    if (e->start) cudaEventDestroy(e->start);
    if (e->stop) cudaEventDestroy(e->stop);
    if (e->fork) cudaEventDestroy(e->fork);
    cudaFree(e->d_next);
    cudaFree(e->d_pos);
    cudaFreeHost(e->h_pos);
    cudaFreeHost(e->h_prompt);
    cupti_clear_maps();
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

static int decode_pass(struct executor *e, int t, const struct plan_exec *prev, struct trace *tr, int it)
{
    int pos = e->c.seq + t;
    if (e->graph_state == 1) {
        /* Each token has its own pinned slot: the copy reads it when the stream gets there. */
        e->h_pos[t] = pos;
        CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
        PB_TRY(exec_join_streams(e));
        CUDA_TRY(cudaMemcpyAsync(e->d_pos, &e->h_pos[t], sizeof(int), cudaMemcpyHostToDevice, origin(e)));
        return exec_graph_replay(e, e->graph);
    }
    return exec_issue_pass(e, &e->dec, prev, pos, 0, 1, 1, 0, tr, it);
}

int executor_run(struct executor *e, int iteration, struct trace *t, double *ms)
{
    char label[64];
    snprintf(label, sizeof label, "%s iteration %d", e->c.label, iteration);
    nvtxEventAttributes_t a = {0};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = label;
    nvtxDomainRangePushEx(e->nvtx, &a);
    uint64_t t0 = cupti_now_ns();
    int generate = e->c.decode != NULL;
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    CUDA_TRY(cudaEventRecord(e->start, origin(e)));
    PB_TRY(exec_fork_streams(e, e->fork));
    if (generate) {
        /* Decode passes overwrite the token rows: the prompt goes back in first. */
        int embeds = e->tp ? e->c.n_devices : 1;
        for (int k = 0; k < embeds; k++) {
            struct part_slot *ps = &e->parts[e->tp ? k : e->embed_part];
            CUDA_TRY(cudaSetDevice(ps->d.device));
            CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(ps->p), e->h_prompt,
                                     (size_t)e->c.batch * e->c.seq * sizeof(int), cudaMemcpyHostToDevice,
                                     e->stream[ps->logical][0]));
        }
    }
    if (e->pre_graph_state == 1) PB_TRY(exec_graph_replay(e, e->pre_graph));
    else PB_TRY(exec_issue_pass(e, &e->pre, NULL, 0, 0, generate, generate, 0, t, iteration));
    const struct plan_exec *prev = &e->pre;
    for (int k = 0; generate && k < e->c.decode_tokens; k++) {
        PB_TRY(decode_pass(e, k, prev, t, iteration));
        prev = &e->dec;
    }
    PB_TRY(exec_join_streams(e));
    CUDA_TRY(cudaEventRecord(e->stop, origin(e)));
    CUDA_TRY(cudaEventSynchronize(e->stop));
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
    if (!e->tp || e->c.n_devices == 1) {
        struct part_slot *ps = &e->parts[e->tp ? 0 : e->head_part];
        CUDA_TRY(cudaSetDevice(ps->d.device));
        CUDA_TRY(cudaMemcpy(*out, llama_part_logits(ps->p), (size_t)n * v * 2, cudaMemcpyDeviceToHost));
        return PB_OK;
    }
    /* All-gathered slices are rank-major [world][rows][vocab/world]: interleave per row. */
    int w = e->c.n_devices, vl = v / w;
    uint16_t *g = malloc((size_t)n * v * sizeof(uint16_t));
    if (!g) return pb_fail("out of host memory for gathered logits");
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    cudaError_t r = cudaMemcpy(g, e->gather[0], (size_t)n * v * 2, cudaMemcpyDeviceToHost);
    if (r != cudaSuccess) {
        free(g);
        CUDA_TRY(r);
    }
    for (int k = 0; k < w; k++)
        for (int i = 0; i < n; i++) memcpy(*out + (size_t)i * v + (size_t)k * vl, g + ((size_t)k * n + i) * vl, (size_t)vl * 2);
    free(g);
    return PB_OK;
}

int executor_tokens(struct executor *e, int **out, int *count)
{
    *out = NULL;
    *count = 0;
    if (!e->c.decode) return PB_OK;
    struct part_slot *ps = &e->parts[e->embed_part];
    *out = malloc((size_t)e->c.batch * sizeof(int));
    if (!*out) return pb_fail("out of host memory for tokens");
    CUDA_TRY(cudaSetDevice(ps->d.device));
    CUDA_TRY(cudaMemcpy(*out, llama_part_tokens(ps->p), (size_t)e->c.batch * sizeof(int), cudaMemcpyDeviceToHost));
    *count = e->c.batch;
    return PB_OK;
}

int executor_used_graph(const struct executor *e) { return e->graph_state == 1 || e->pre_graph_state == 1; }
