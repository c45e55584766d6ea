/* Rank-local execution of a schedule (see cuda_mpi_exec.h). Every rank walks the
 * same issue order and issues its part of each step at the same position: NCCL
 * serialises the operations of a communicator in the order they are issued, so a
 * send and its receive, or the members of a collective, meet without deadlock. */
#include <stdlib.h>
#include <string.h>
#include "../cupti.h"
#include "../cuda_exec_internal.h"
#include "cuda_mpi_exec.h"

struct mpi_plan {
    const struct schedule *s;
    int seq;
    int *order, *group_last;   /* as the single-process executor's: collectives together */
    int *part, *pre_from, *src_part, *dst_part;
    int *stream;               /* per step: this rank's stream for it, -1 when not this rank's */
    cudaEvent_t *ev;           /* per step this rank records after its part of it */
};

struct mpi_executor {
    struct mpi_exec_config x;
    int dev, idle, tp;
    int n_parts;
    struct part_slot parts[EXEC_MAX_PARTS];   /* every device's, allocated only for this rank's */
    int embed_part, head_part;
    int n_streams;
    cudaStream_t stream[EXEC_MAX_STREAMS];
    cudaEvent_t join[EXEC_MAX_STREAMS], start, stop;
    void *gather;
    int *d_next, *h_prompt;
    struct mpi_plan pre, dec;
    int last_rows;
    nvtxDomainHandle_t nvtx;
};

#define MINE(e, logical) ((logical) == (e)->dev)

/* ---- parts: the single-process executor's layout, of which this rank allocates its own ---- */

static int exec_device(int d) { return d == PB_DEVICE_CPU ? 0 : d; }

static int add_part(struct mpi_executor *e, int logical, int host, int first, int count)
{
    if (e->n_parts == EXEC_MAX_PARTS) return pb_fail("placement has more than %d parts", EXEC_MAX_PARTS);
    const struct exec_config *c = &e->x.c;
    struct part_slot *ps = &e->parts[e->n_parts];
    memset(ps, 0, sizeof *ps);
    ps->logical = logical;
    ps->host = host;
    ps->d = (struct llama_part_desc){.device = e->x.ordinal, .world = 1, .first_layer = first,
                                     .n_layers = count, .max_batch = c->batch,
                                     .max_context = c->seq + c->decode_tokens, .max_rows = c->batch * c->seq,
                                     .weights_on_host = host};
    return e->n_parts++;
}

static int part_on(struct mpi_executor *e, int device, int last)
{
    int logical = exec_device(device), host = device == PB_DEVICE_CPU, found = -1;
    for (int k = 0; k < e->n_parts; k++)
        if (e->parts[k].logical == logical && e->parts[k].host == host && (found < 0 || last)) found = k;
    return found >= 0 ? found : add_part(e, logical, host, 0, 0);
}

static int build_parts(struct mpi_executor *e)
{
    const struct placement *p = e->x.c.p;
    if (p->tensor_parallel) {
        e->tp = 1;
        for (int d = 0; d < e->x.c.n_devices; d++) {
            if (add_part(e, d, 0, 0, e->x.c.m->layers) < 0) return PB_ERR;
            e->parts[d].d.rank = d;
            e->parts[d].d.world = e->x.c.n_devices;
            e->parts[d].d.has_embed = e->parts[d].d.has_head = 1;
        }
        e->embed_part = e->head_part = 0;
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

/* The prompt: the same function of the seed as cuda_executor.c's prompt_tokens
 * (keep the two equal, or MPI and single-process outputs part ways). */
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

static int create_parts(struct mpi_executor *e)
{
    const struct exec_config *c = &e->x.c;
    uint64_t need = 64u << 20;
    for (int k = 0; k < e->n_parts; k++)
        if (MINE(e, e->parts[k].logical)) need += llama_part_bytes(c->m, &e->parts[k].d);
    size_t free_b = 0, total = 0;
    CUDA_TRY(cudaMemGetInfo(&free_b, &total));
    if (need > free_b)
        return pb_fail("%s needs %.2f GiB on rank %d's GPU %d for batch %d x seq %d, but only %.2f GiB are free",
                       c->label, need / 1073741824.0, e->dev, e->x.ordinal, c->batch, c->seq, free_b / 1073741824.0);
    for (int k = 0; k < e->n_parts; k++) {
        struct part_slot *ps = &e->parts[k];
        if (!MINE(e, ps->logical)) continue;
        PB_TRY(llama_part_create(c->m, &ps->d, &ps->p));
        if (c->weights) PB_TRY(llama_part_load_safetensors(ps->p, c->weights));
        else PB_TRY(llama_part_init_random(ps->p, c->seed));
    }
    size_t n = (size_t)c->batch * c->seq;
    CUDA_TRY(cudaMallocHost((void **)&e->h_prompt, n * sizeof(int)));
    prompt_tokens(e->h_prompt, (int)n, c->m->vocab, c->seed);
    int embed = e->tp ? e->dev : e->embed_part;
    if (MINE(e, e->parts[embed].logical))
        CUDA_TRY(cudaMemcpy(llama_part_tokens(e->parts[embed].p), e->h_prompt, n * sizeof(int), cudaMemcpyHostToDevice));
    if (c->decode && !e->tp && MINE(e, e->parts[e->head_part].logical))
        CUDA_TRY(cudaMalloc((void **)&e->d_next, (size_t)c->batch * sizeof(int)));
    if (e->tp && c->n_devices > 1)
        CUDA_TRY(cudaMalloc(&e->gather, n * (size_t)c->m->vocab * 2));
    return PB_OK;
}

static int create_streams(struct mpi_executor *e)
{
    const struct exec_config *c = &e->x.c;
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

static int is_collective(const struct step *st) { return st->kind == STEP_ALLREDUCE || st->kind == STEP_ALLGATHER; }

static int deps_issued(const struct step *st, const char *issued)
{
    for (int k = 0; k < st->n_deps; k++)
        if (!issued[st->deps[k]]) return 0;
    return 1;
}

/* The single-process executor's order (cuda_exec_issue.c): topological, a
 * collective placed once all its members are ready. Every rank computes it from
 * the same schedule, which is what keeps their NCCL calls in one order. */
static int issue_order(const struct schedule *s, int *order, int *group_last)
{
    char *issued = calloc((size_t)s->n_steps + 1, 1);
    if (!issued) return pb_fail("out of host memory ordering %d steps", s->n_steps);
    int n = 0;
    while (n < s->n_steps) {
        int progress = 0;
        for (int i = 0; i < s->n_steps; i++) {
            const struct step *st = &s->steps[i];
            if (issued[i] || !deps_issued(st, issued)) continue;
            int ready = 1;
            for (int j = 0; is_collective(st) && j < s->n_steps && ready; j++)
                if (!issued[j] && s->steps[j].kind == st->kind && s->steps[j].collective == st->collective &&
                    !deps_issued(&s->steps[j], issued))
                    ready = 0;
            if (!ready) continue;
            int first = n;
            for (int j = 0; j < s->n_steps; j++)
                if (j == i || (is_collective(st) && !issued[j] && s->steps[j].kind == st->kind &&
                               s->steps[j].collective == st->collective)) {
                    if (issued[j]) continue;
                    order[n++] = j;
                    issued[j] = 1;
                }
            for (int k = first; k < n; k++) group_last[k] = n - 1;
            progress = 1;
        }
        if (!progress) return free(issued), pb_fail("schedule cannot run: a dependency cycle, or a collective missing a rank");
    }
    free(issued);
    return PB_OK;
}

static int part_for(const struct mpi_executor *e, const struct step *st)
{
    if (e->tp) return st->device;
    if (st->kind == STEP_EMBED) return e->embed_part;
    if (st->kind == STEP_HEAD) return e->head_part;
    if (st->kind != STEP_LAYERS) return -1;
    for (int k = 0; k < e->n_parts; k++) {
        const struct part_slot *ps = &e->parts[k];
        if (ps->logical == st->device && ps->host == (st->offloaded != 0) && st->layer >= ps->d.first_layer &&
            st->layer + st->count <= ps->d.first_layer + ps->d.n_layers)
            return k;
    }
    return -1;
}

static int consumer(const struct schedule *s, int i)
{
    for (int k = i + 1; k < s->n_steps; k++)
        for (int d = 0; d < s->steps[k].n_deps; d++)
            if (s->steps[k].deps[d] == i) return k;
    return -1;
}

/* Which part holds each microbatch's rows before and after every step. */
static int follow_rows(struct mpi_executor *e, struct mpi_plan *pe)
{
    const struct schedule *s = pe->s;
    int *holder = malloc(((size_t)s->microbatches + 1) * sizeof(int));
    if (!holder) return pb_fail("out of host memory preparing a schedule");
    for (int mb = 0; mb <= s->microbatches; mb++) holder[mb] = -1;
    int rc = PB_OK;
    for (int i = 0; i < s->n_steps && rc == PB_OK; i++) {
        const struct step *st = &s->steps[i];
        int mb = st->microbatch >= 0 && st->microbatch < s->microbatches ? st->microbatch : 0;
        pe->part[i] = part_for(e, st);
        pe->pre_from[i] = pe->src_part[i] = pe->dst_part[i] = -1;
        if ((st->kind == STEP_LAYERS || st->kind == STEP_EMBED || st->kind == STEP_HEAD) && pe->part[i] < 0)
            rc = pb_fail("internal: step %d (device %d, layers %d+%d) has no part", i, st->device, st->layer, st->count);
        else if (e->tp) continue;
        else if (st->kind == STEP_EMBED) holder[mb] = pe->part[i];
        else if (st->kind == STEP_LAYERS || st->kind == STEP_HEAD) {
            if (holder[mb] >= 0 && holder[mb] != pe->part[i]) pe->pre_from[i] = holder[mb];
            holder[mb] = pe->part[i];
        } else if (st->kind == STEP_COPY) {
            int c = consumer(s, i), dp = c >= 0 ? part_for(e, &s->steps[c]) : -1;
            if (holder[mb] < 0 || dp < 0) rc = pb_fail("schedule: copy step %d has no source or destination part", i);
            pe->src_part[i] = holder[mb];
            pe->dst_part[i] = dp;
            holder[mb] = dp;
        }
    }
    free(holder);
    return rc;
}

/* This rank's stream for step i, or -1: its own steps; the receiving end of a
 * copy (on the stream of the step that reads the rows); and, in a decode where
 * head and embedding sit on different ranks, the receipt of the greedy tokens. */
static int my_stream(const struct mpi_executor *e, const struct mpi_plan *pe, int i)
{
    const struct step *st = &pe->s->steps[i];
    if (st->kind == STEP_COPY) {
        if (MINE(e, st->src)) return MINE(e, st->device) ? st->stream : 0;
        if (!MINE(e, st->dst)) return -1;
        int c = consumer(pe->s, i);
        return c >= 0 && MINE(e, pe->s->steps[c].device) ? pe->s->steps[c].stream : 0;
    }
    if (MINE(e, st->device)) return st->stream;
    int tokens_travel = st->kind == STEP_HEAD && e->x.c.decode && !e->tp &&
                        e->parts[e->embed_part].logical != e->parts[e->head_part].logical;
    return tokens_travel && MINE(e, e->parts[e->embed_part].logical) ? 0 : -1;
}

static int prepare_plan(struct mpi_executor *e, const struct schedule *s, int seq, struct mpi_plan *pe)
{
    memset(pe, 0, sizeof *pe);
    pe->s = s;
    pe->seq = seq;
    size_t n = (size_t)s->n_steps + 1;
    int **arrays[] = {&pe->order, &pe->group_last, &pe->part, &pe->pre_from, &pe->src_part, &pe->dst_part, &pe->stream};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        if (!(*arrays[k] = calloc(n, sizeof(int)))) return pb_fail("out of host memory preparing a schedule");
    if (!(pe->ev = calloc(n, sizeof(cudaEvent_t)))) return pb_fail("out of host memory preparing a schedule");
    PB_TRY(issue_order(s, pe->order, pe->group_last));
    PB_TRY(follow_rows(e, pe));
    for (int i = 0; i < s->n_steps; i++) {
        pe->stream[i] = my_stream(e, pe, i);
        if (pe->stream[i] >= 0) CUDA_TRY(cudaEventCreateWithFlags(&pe->ev[i], cudaEventDisableTiming));
    }
    return PB_OK;
}

static void free_plan(struct mpi_plan *pe)
{
    for (int i = 0; pe->ev && pe->s && i < pe->s->n_steps; i++)
        if (pe->ev[i]) cudaEventDestroy(pe->ev[i]);
    free(pe->order);
    free(pe->group_last);
    free(pe->part);
    free(pe->pre_from);
    free(pe->src_part);
    free(pe->dst_part);
    free(pe->stream);
    free(pe->ev);
    memset(pe, 0, sizeof *pe);
}

/* ---- issuing a pass ---- */

static size_t rows_offset(const struct mpi_executor *e, const struct mpi_plan *pe, const struct step *st)
{
    return (size_t)st->batch_offset * pe->seq * e->x.c.m->hidden * 2;
}

static size_t rows_count(const struct mpi_executor *e, const struct mpi_plan *pe, const struct step *st)
{
    return (size_t)st->batch * pe->seq * e->x.c.m->hidden;
}

static int wait_deps(const struct mpi_plan *pe, const struct step *st, cudaStream_t s)
{
    /* Steps of other ranks have no event here: their data arrives through NCCL. */
    for (int d = 0; d < st->n_deps; d++)
        if (pe->ev[st->deps[d]]) CUDA_TRY(cudaStreamWaitEvent(s, pe->ev[st->deps[d]], 0));
    return PB_OK;
}

static int copy_part(struct mpi_executor *e, struct mpi_plan *pe, int i, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    size_t off = rows_offset(e, pe, st), count = rows_count(e, pe, st);
    if (MINE(e, st->src) && MINE(e, st->dst)) {
        char *dst = (char *)llama_part_hidden(e->parts[pe->dst_part[i]].p) + off;
        const char *src = (const char *)llama_part_hidden(e->parts[pe->src_part[i]].p) + off;
        CUDA_TRY(cudaMemcpyAsync(dst, src, count * 2, cudaMemcpyDeviceToDevice, s));
    } else if (MINE(e, st->src)) {
        PB_TRY(wait_deps(pe, st, s));
        const char *src = (const char *)llama_part_hidden(e->parts[pe->src_part[i]].p) + off;
        NCCL_TRY(ncclSend(src, count, ncclBfloat16, st->dst, e->x.comm, s));
    } else {
        char *dst = (char *)llama_part_hidden(e->parts[pe->dst_part[i]].p) + off;
        NCCL_TRY(ncclRecv(dst, count, ncclBfloat16, st->src, e->x.comm, s));
    }
    return PB_OK;
}

/* The head's greedy tokens, to the embedding's token rows for the next pass. */
static int head_argmax(struct mpi_executor *e, struct llama_part *head, const struct llama_call *call,
                       const struct step *st, cudaStream_t s)
{
    const struct part_slot *emb = &e->parts[e->embed_part];
    if (MINE(e, emb->logical)) return llama_argmax(head, call, llama_part_tokens(emb->p), s);
    PB_TRY(llama_argmax(head, call, e->d_next, s));
    NCCL_TRY(ncclSend(e->d_next + st->batch_offset, (size_t)st->batch, ncclInt32, emb->logical, e->x.comm, s));
    return PB_OK;
}

static int receive_tokens(struct mpi_executor *e, const struct step *st, cudaStream_t s)
{
    int *tokens = llama_part_tokens(e->parts[e->embed_part].p);
    NCCL_TRY(ncclRecv(tokens + st->batch_offset, (size_t)st->batch, ncclInt32, st->device, e->x.comm, s));
    return PB_OK;
}

static int compute(struct mpi_executor *e, struct mpi_plan *pe, int i, const struct llama_call *call, int argmax,
                   cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    struct part_slot *ps = &e->parts[pe->part[i]];
    if (pe->pre_from[i] >= 0) {
        size_t off = rows_offset(e, pe, st);
        CUDA_TRY(cudaMemcpyAsync((char *)llama_part_hidden(ps->p) + off,
                                 (const char *)llama_part_hidden(e->parts[pe->pre_from[i]].p) + off,
                                 rows_count(e, pe, st) * 2, cudaMemcpyDeviceToDevice, s));
    }
    switch (st->kind) {
    case STEP_EMBED: return llama_embed(ps->p, call, s);
    case STEP_LAYERS: return llama_layers(ps->p, st->layer, st->count, call, s);
    case STEP_ATTENTION: return llama_attention(ps->p, st->layer, call, s);
    case STEP_MLP: return llama_mlp(ps->p, st->layer, call, s);
    case STEP_HEAD:
        PB_TRY(llama_head(ps->p, call, s));
        return argmax && (!e->tp || e->x.c.n_devices == 1) ? head_argmax(e, ps->p, call, st, s) : PB_OK;
    default: return pb_fail("internal: step kind %d is not a compute step", st->kind);
    }
}

/* This rank's member of one collective (the group's other members are other ranks'). */
static int collective(struct mpi_executor *e, struct mpi_plan *pe, int i, int last_only, int argmax)
{
    const struct step *st = &pe->s->steps[i];
    cudaStream_t s = e->stream[st->stream];
    struct llama_part *p = e->parts[st->device].p;
    PB_TRY(wait_deps(pe, st, s));
    if (st->kind == STEP_ALLREDUCE) {
        void *h = (char *)llama_part_hidden(p) + rows_offset(e, pe, st);
        NCCL_TRY(ncclAllReduce(h, h, rows_count(e, pe, st), ncclBfloat16, ncclSum, e->x.comm, s));
        return PB_OK;
    }
    int w = e->x.c.n_devices, vl = e->x.c.m->vocab / w, rows = last_only ? st->batch : st->batch * pe->seq;
    size_t row0 = last_only ? (size_t)st->batch_offset : (size_t)st->batch_offset * pe->seq;
    const char *send = (const char *)llama_part_logits(p) + row0 * vl * 2;
    NCCL_TRY(ncclAllGather(send, e->gather, (size_t)rows * vl, ncclBfloat16, e->x.comm, s));
    if (!argmax) return PB_OK;
    struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->seq, .last_only = last_only};
    return llama_argmax_gathered(e->gather, w, (size_t)rows * vl, vl, &call, llama_part_tokens(p), s);
}

static int wait_previous_tokens(const struct mpi_plan *prev, const struct step *st, cudaStream_t s)
{
    for (int k = 0; k < prev->s->n_steps; k++) {
        const struct step *h = &prev->s->steps[k];
        if ((h->kind != STEP_HEAD && h->kind != STEP_ALLGATHER) || !prev->ev[k]) continue;
        if (h->batch_offset < st->batch_offset + st->batch && st->batch_offset < h->batch_offset + h->batch)
            CUDA_TRY(cudaStreamWaitEvent(s, prev->ev[k], 0));
    }
    return PB_OK;
}

static void range_push(struct mpi_executor *e, const struct step *st)
{
    char label[96];
    snprintf(label, sizeof label, "%s mb %d stage %d rank %d", step_kind_name(st->kind), st->microbatch, st->stage, e->dev);
    nvtxEventAttributes_t a = {0};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = label;
    nvtxDomainRangePushEx(e->nvtx, &a);
}

static int issue_step(struct mpi_executor *e, struct mpi_plan *pe, const struct mpi_plan *prev, int i, int pos,
                      int last_only, int argmax)
{
    const struct step *st = &pe->s->steps[i];
    cudaStream_t s = e->stream[pe->stream[i]];
    if (is_collective(st)) return collective(e, pe, i, last_only, argmax);
    if (st->kind == STEP_COPY) return copy_part(e, pe, i, s);
    if (!MINE(e, st->device)) return receive_tokens(e, st, s);
    PB_TRY(wait_deps(pe, st, s));
    if (st->kind == STEP_EMBED && prev) PB_TRY(wait_previous_tokens(prev, st, s));
    if (st->kind == STEP_H2D_WEIGHTS) return PB_OK;   /* offloaded weights stream inside their compute step */
    struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->seq, .pos = pos,
                              .last_only = last_only};
    return compute(e, pe, i, &call, argmax, s);
}

static int issue_pass(struct mpi_executor *e, struct mpi_plan *pe, const struct mpi_plan *prev, int pos, int last_only,
                      int argmax, struct trace *t, int iteration)
{
    for (int oi = 0; oi < pe->s->n_steps; oi++) {
        int i = pe->order[oi];
        if (pe->stream[i] < 0) continue;
        const struct step *st = &pe->s->steps[i];
        uint64_t t0 = t ? cupti_now_ns() : 0;
        range_push(e, st);
        int rc = issue_step(e, pe, prev, i, pos, last_only, argmax);
        nvtxDomainRangePop(e->nvtx);
        PB_TRY(rc);
        CUDA_TRY(cudaEventRecord(pe->ev[i], e->stream[pe->stream[i]]));
        if (t) {
            struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = t0, .end_ns = cupti_now_ns(),
                               .iteration = iteration, .src_device = -1, .dst_device = -1};
            snprintf(r.name, sizeof r.name, "%s mb %d", step_kind_name(st->kind), st->microbatch);
            PB_TRY(trace_add(t, &r));
        }
    }
    return PB_OK;
}

/* ---- the executor ---- */

int mpi_executor_create(const struct mpi_exec_config *x, struct mpi_executor **out)
{
    *out = NULL;
    struct mpi_executor *e = calloc(1, sizeof *e);
    if (!e) return pb_fail("out of host memory for the executor");
    e->x = *x;
    e->dev = x->device;
    e->embed_part = e->head_part = -1;
    *out = e;
    if (x->c.n_devices != x->c.prefill->n_devices)
        return pb_fail("internal: schedule has %d devices, executor %d", x->c.prefill->n_devices, x->c.n_devices);
    PB_TRY(build_parts(e));   /* every rank knows where logits and tokens live */
    e->idle = x->device >= x->c.prefill->n_devices;   /* e.g. rank 1 while `single` runs */
    if (e->idle) return PB_OK;
    CUDA_TRY(cudaSetDevice(x->ordinal));
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
    for (int k = 0; k < e->n_parts; k++)
        if (e->parts[k].p) llama_part_destroy(e->parts[k].p);
    for (int s = 0; s < e->n_streams; s++) {
        if (e->stream[s]) cudaStreamDestroy(e->stream[s]);
        if (e->join[s]) cudaEventDestroy(e->join[s]);
    }
    if (e->start) cudaEventDestroy(e->start);
    if (e->stop) cudaEventDestroy(e->stop);
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
    const struct exec_config *c = &e->x.c;
    int generate = c->decode != NULL;
    uint64_t t0 = cupti_now_ns();
    CUDA_TRY(cudaSetDevice(e->x.ordinal));
    CUDA_TRY(cudaEventRecord(e->start, e->stream[0]));
    PB_TRY(fork_join(e, 0));
    int embed = e->tp ? e->dev : e->embed_part;
    if (generate && MINE(e, e->parts[embed].logical))   /* decode overwrote the prompt's token rows */
        CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(e->parts[embed].p), e->h_prompt,
                                 (size_t)c->batch * c->seq * sizeof(int), cudaMemcpyHostToDevice, e->stream[0]));
    PB_TRY(issue_pass(e, &e->pre, NULL, 0, generate, generate, t, iteration));
    const struct mpi_plan *prev = &e->pre;
    for (int k = 0; generate && k < c->decode_tokens; k++) {
        PB_TRY(issue_pass(e, &e->dec, prev, c->seq + k, 1, 1, t, iteration));
        prev = &e->dec;
    }
    PB_TRY(fork_join(e, 1));
    CUDA_TRY(cudaEventRecord(e->stop, e->stream[0]));
    CUDA_TRY(cudaEventSynchronize(e->stop));
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
    return e->tp ? 0 : e->parts[e->head_part].logical;
}

int mpi_executor_tokens_rank(const struct mpi_executor *e)
{
    return e->tp ? 0 : e->parts[e->embed_part].logical;
}

int mpi_executor_logits(struct mpi_executor *e, uint16_t **out, int *rows, int *vocab)
{
    int n = e->last_rows, v = e->x.c.m->vocab;
    *rows = n;
    *vocab = v;
    *out = malloc((size_t)n * v * sizeof(uint16_t));
    if (!*out) return pb_fail("out of host memory for %d x %d logits", n, v);
    if (!e->tp || e->x.c.n_devices == 1) {
        CUDA_TRY(cudaMemcpy(*out, llama_part_logits(e->parts[e->tp ? 0 : e->head_part].p), (size_t)n * v * 2,
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
    int embed = e->tp ? e->dev : e->embed_part;
    *out = malloc((size_t)e->x.c.batch * sizeof(int));
    if (!*out) return pb_fail("out of host memory for tokens");
    CUDA_TRY(cudaMemcpy(*out, llama_part_tokens(e->parts[embed].p), (size_t)e->x.c.batch * sizeof(int), cudaMemcpyDeviceToHost));
    *count = e->x.c.batch;
    return PB_OK;
}
