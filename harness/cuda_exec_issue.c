/* Issuing a schedule: steps in an order that respects their dependencies, each
 * on its (device, stream) after cudaStreamWaitEvent on the steps it waits for,
 * an event recorded after it; collectives of one id issued together inside one
 * NCCL group; NVTX ranges per step. */
#include <stdlib.h>
#include <string.h>
#include "cupti.h"
#include "cuda_exec_internal.h"

static int is_collective(const struct step *st)
{
    return st->kind == STEP_ALLREDUCE || st->kind == STEP_ALLGATHER;
}

static int same_collective(const struct step *a, const struct step *b)
{
    return a->kind == b->kind && a->collective == b->collective;
}

static int deps_issued(const struct step *st, const char *issued)
{
    for (int k = 0; k < st->n_deps; k++)
        if (!issued[st->deps[k]]) return 0;
    return 1;
}

/* Topological order; a collective is placed once every rank's part is ready,
 * all ranks together, because NCCL needs them in one group call. */
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
            if (!is_collective(st)) {
                group_last[n] = n;
                order[n++] = i;
                issued[i] = 1;
                progress = 1;
                continue;
            }
            int ready = 1;
            for (int j = 0; j < s->n_steps && ready; j++)
                if (!issued[j] && same_collective(&s->steps[j], st) && !deps_issued(&s->steps[j], issued))
                    ready = 0;
            if (!ready) continue;
            int first = n;
            for (int j = 0; j < s->n_steps; j++)
                if (!issued[j] && same_collective(&s->steps[j], st)) {
                    order[n++] = j;
                    issued[j] = 1;
                }
            for (int k = first; k < n; k++) group_last[k] = n - 1;
            progress = 1;
        }
        if (!progress) {
            free(issued);
            return pb_fail("schedule cannot run: a dependency cycle, or a collective missing a rank");
        }
    }
    free(issued);
    return PB_OK;
}

static int part_for(const struct executor *e, const struct step *st)
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

/* The first later step that consumes step i's output. */
static int consumer(const struct schedule *s, int i)
{
    for (int k = i + 1; k < s->n_steps; k++)
        for (int d = 0; d < s->steps[k].n_deps; d++)
            if (s->steps[k].deps[d] == i) return k;
    return -1;
}

int exec_prepare_plan(struct executor *e, const struct schedule *s, int seq, struct plan_exec *pe)
{
    memset(pe, 0, sizeof *pe);
    pe->s = s;
    pe->seq = seq;
    size_t n = (size_t)s->n_steps + 1;
    pe->order = calloc(n, sizeof(int));
    pe->group_last = calloc(n, sizeof(int));
    pe->part = calloc(n, sizeof(int));
    pe->pre_from = calloc(n, sizeof(int));
    pe->src_part = calloc(n, sizeof(int));
    pe->dst_part = calloc(n, sizeof(int));
    pe->ev = calloc(n, sizeof(cudaEvent_t));
    int *holder = malloc(((size_t)s->microbatches + 1) * sizeof(int));
    if (!pe->order || !pe->group_last || !pe->part || !pe->pre_from || !pe->src_part || !pe->dst_part ||
        !pe->ev || !holder) {
        free(holder);
        return pb_fail("out of host memory preparing a schedule of %d steps", s->n_steps);
    }
    if (issue_order(s, pe->order, pe->group_last) != PB_OK) {
        free(holder);
        return PB_ERR;
    }
    for (int mb = 0; mb <= s->microbatches; mb++) holder[mb] = -1;
    /* Follow each microbatch's rows from part to part: a copy moves them between
     * devices; two parts on one device (GPU layers then cpu-offloaded ones) need
     * a local copy the schedule does not show, done before the compute step. */
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        int mb = st->microbatch >= 0 && st->microbatch < s->microbatches ? st->microbatch : 0;
        pe->part[i] = part_for(e, st);
        pe->pre_from[i] = pe->src_part[i] = pe->dst_part[i] = -1;
        if ((st->kind == STEP_LAYERS || st->kind == STEP_EMBED || st->kind == STEP_HEAD) && pe->part[i] < 0)
            return free(holder), pb_fail("internal: step %d (%s, device %d, layers %d+%d) has no part", i,
                                         st->kind == STEP_LAYERS ? "layers" : "embed/head", st->device,
                                         st->layer, st->count);
        if (e->tp) continue;
        if (st->kind == STEP_EMBED) {
            holder[mb] = pe->part[i];
        } else if (st->kind == STEP_LAYERS || st->kind == STEP_HEAD) {
            int h = holder[mb];
            if (h >= 0 && h != pe->part[i]) {
                if (e->parts[h].logical != st->device)
                    return free(holder), pb_fail("schedule: step %d runs on device %d but microbatch %d's "
                                                 "activations are on device %d with no copy between",
                                                 i, st->device, mb, e->parts[h].logical);
                pe->pre_from[i] = h;
            }
            holder[mb] = pe->part[i];
        } else if (st->kind == STEP_COPY) {
            int c = consumer(s, i);
            int dp = c >= 0 ? part_for(e, &s->steps[c]) : -1;
            if (holder[mb] < 0 || dp < 0)
                return free(holder), pb_fail("schedule: copy step %d has no source or destination part", i);
            pe->src_part[i] = holder[mb];
            pe->dst_part[i] = dp;
            holder[mb] = dp;
        }
    }
    free(holder);
    for (int i = 0; i < s->n_steps; i++) {
        CUDA_TRY(cudaSetDevice(e->c.ordinal[s->steps[i].device]));
        CUDA_TRY(cudaEventCreateWithFlags(&pe->ev[i], cudaEventDisableTiming));
    }
    return PB_OK;
}

void exec_free_plan(struct plan_exec *pe)
{
    for (int i = 0; pe->ev && pe->s && i < pe->s->n_steps; i++)
        if (pe->ev[i]) cudaEventDestroy(pe->ev[i]);
    free(pe->order);
    free(pe->group_last);
    free(pe->part);
    free(pe->pre_from);
    free(pe->src_part);
    free(pe->dst_part);
    free(pe->ev);
    memset(pe, 0, sizeof *pe);
}

static const char *kind_name(enum step_kind k)
{
    static const char *names[] = {"embed", "layers", "attention", "mlp", "head", "copy", "all-reduce",
                                  "all-gather", "h2d-weights"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static void step_label(const struct step *st, char *buf, size_t len)
{
    if (st->kind == STEP_COPY)
        snprintf(buf, len, "copy %d->%d mb %d", st->src, st->dst, st->microbatch);
    else if (st->kind == STEP_LAYERS || st->kind == STEP_ATTENTION || st->kind == STEP_MLP)
        snprintf(buf, len, "%s %d-%d mb %d stage %d", kind_name(st->kind), st->layer, st->layer + st->count - 1,
                 st->microbatch, st->stage);
    else
        snprintf(buf, len, "%s mb %d stage %d", kind_name(st->kind), st->microbatch, st->stage);
}

static void range_push(struct executor *e, const char *label)
{
    nvtxEventAttributes_t a = {0};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = label;
    nvtxDomainRangePushEx(e->nvtx, &a);
}

static int host_range(struct trace *t, const char *label, uint64_t t0, int iteration)
{
    if (!t) return PB_OK;
    struct record r = {.kind = REC_RANGE, .device = -1, .stream = 0, .start_ns = t0, .end_ns = cupti_now_ns(),
                       .iteration = iteration, .src_device = -1, .dst_device = -1};
    snprintf(r.name, sizeof r.name, "%s", label);
    return trace_add(t, &r);
}

static size_t hidden_offset(const struct executor *e, const struct plan_exec *pe, const struct step *st)
{
    return (size_t)st->batch_offset * pe->seq * e->c.m->hidden;
}

/* Greedy tokens of the sequences of a head step, delivered to the embed part's
 * token rows (decode passes read rows [batch_offset, batch_offset + batch)). */
static int argmax_step(struct executor *e, struct llama_part *head, const struct llama_call *call,
                       const struct step *st, cudaStream_t s)
{
    /* llama_argmax writes d_next[batch_offset + i]: pass the base pointers. */
    const struct part_slot *emb = &e->parts[e->embed_part];
    int *tokens = llama_part_tokens(emb->p);
    int same_gpu = e->c.ordinal[emb->logical] == e->c.ordinal[st->device];
    if (same_gpu) return llama_argmax(head, call, tokens, s);
    PB_TRY(llama_argmax(head, call, e->d_next, s));
    return exec_copy(e, tokens + st->batch_offset, emb->logical, e->d_next + st->batch_offset, st->device,
                     (size_t)st->batch * sizeof(int), s);
}

static int compute_step(struct executor *e, struct plan_exec *pe, int i, const struct llama_call *call,
                        int argmax, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    struct part_slot *ps = &e->parts[pe->part[i]];
    if (pe->pre_from[i] >= 0) {
        size_t off = hidden_offset(e, pe, st), n = (size_t)st->batch * pe->seq * e->c.m->hidden * 2;
        char *dst = (char *)llama_part_hidden(ps->p) + off * 2;
        const char *src = (const char *)llama_part_hidden(e->parts[pe->pre_from[i]].p) + off * 2;
        CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
    }
    switch (st->kind) {
    case STEP_EMBED: return llama_embed(ps->p, call, s);
    case STEP_LAYERS: return llama_layers(ps->p, st->layer, st->count, call, s);
    case STEP_ATTENTION: return llama_attention(ps->p, st->layer, call, s);
    case STEP_MLP: return llama_mlp(ps->p, st->layer, call, s);
    case STEP_HEAD:
        PB_TRY(llama_head(ps->p, call, s));
        return argmax && (!e->tp || e->c.n_devices == 1) ? argmax_step(e, ps->p, call, st, s) : PB_OK;
    default: return pb_fail("internal: step kind %d is not a compute step", st->kind);
    }
}

static int copy_step(struct executor *e, struct plan_exec *pe, int i, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    size_t off = hidden_offset(e, pe, st) * 2, n = (size_t)st->batch * pe->seq * e->c.m->hidden * 2;
    char *dst = (char *)llama_part_hidden(e->parts[pe->dst_part[i]].p) + off;
    const char *src = (const char *)llama_part_hidden(e->parts[pe->src_part[i]].p) + off;
    return exec_copy(e, dst, st->dst, src, st->src, n, s);
}

/* All ranks of one collective in one NCCL group, each on its own stream. */
static int collective(struct executor *e, struct plan_exec *pe, int first, int last, int last_only, int argmax)
{
    const struct schedule *s = pe->s;
    for (int k = first; k <= last; k++) {
        const struct step *st = &s->steps[pe->order[k]];
        CUDA_TRY(cudaSetDevice(e->c.ordinal[st->device]));
        for (int d = 0; d < st->n_deps; d++)
            CUDA_TRY(cudaStreamWaitEvent(e->stream[st->device][st->stream], pe->ev[st->deps[d]], 0));
    }
    if (!e->have_comms) return pb_fail("internal: a collective step but no NCCL communicators");
    NCCL_TRY(ncclGroupStart());
    for (int k = first; k <= last; k++) {
        const struct step *st = &s->steps[pe->order[k]];
        struct llama_part *p = e->parts[st->device].p;
        cudaStream_t stream = e->stream[st->device][st->stream];
        if (st->kind == STEP_ALLREDUCE) {
            void *h = (char *)llama_part_hidden(p) + hidden_offset(e, pe, st) * 2;
            size_t count = (size_t)st->batch * pe->seq * e->c.m->hidden;
            NCCL_TRY(ncclAllReduce(h, h, count, ncclBfloat16, ncclSum, e->comm[st->device], stream));
        } else {
            int vocab_l = e->c.m->vocab / e->c.n_devices;
            int rows = last_only ? st->batch : st->batch * pe->seq;
            size_t row0 = last_only ? (size_t)st->batch_offset : (size_t)st->batch_offset * pe->seq;
            const char *send = (const char *)llama_part_logits(p) + row0 * vocab_l * 2;
            NCCL_TRY(ncclAllGather(send, e->gather[st->device], (size_t)rows * vocab_l, ncclBfloat16,
                                   e->comm[st->device], stream));
        }
    }
    NCCL_TRY(ncclGroupEnd());
    for (int k = first; k <= last; k++) {
        const struct step *st = &s->steps[pe->order[k]];
        CUDA_TRY(cudaSetDevice(e->c.ordinal[st->device]));
        if (argmax && st->kind == STEP_ALLGATHER) {
            /* Every rank holds all slices now: each picks the next tokens for its own embedding. */
            int vl = e->c.m->vocab / e->c.n_devices, rows = last_only ? st->batch : st->batch * pe->seq;
            struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->seq,
                                      .last_only = last_only};
            PB_TRY(llama_argmax_gathered(e->gather[st->device], e->c.n_devices, (size_t)rows * vl, vl, &call,
                                         llama_part_tokens(e->parts[st->device].p),
                                         e->stream[st->device][st->stream]));
        }
        CUDA_TRY(cudaEventRecord(pe->ev[pe->order[k]], e->stream[st->device][st->stream]));
    }
    return PB_OK;
}

/* Decode: the embed of sequences [off, off + n) waits for the argmax of the
 * previous pass's head steps that produced their tokens, and nothing else, so
 * groups of sequences stay in flight through the pipeline. */
static int wait_previous_tokens(const struct plan_exec *prev, const struct step *st, cudaStream_t s)
{
    for (int k = 0; k < prev->s->n_steps; k++) {
        const struct step *h = &prev->s->steps[k];
        if (h->kind != STEP_HEAD && h->kind != STEP_ALLGATHER) continue;
        if (h->batch_offset < st->batch_offset + st->batch && st->batch_offset < h->batch_offset + h->batch)
            CUDA_TRY(cudaStreamWaitEvent(s, prev->ev[k], 0));
    }
    return PB_OK;
}

int exec_issue_pass(struct executor *e, struct plan_exec *pe, const struct plan_exec *prev, int pos,
                    int use_pos_device, int last_only, int argmax, int capturing, struct trace *t,
                    int iteration)
{
    const struct schedule *s = pe->s;
    int current = -1;
    for (int oi = 0; oi < s->n_steps; oi++) {
        int i = pe->order[oi];
        const struct step *st = &s->steps[i];
        char label[96];
        step_label(st, label, sizeof label);
        uint64_t t0 = t ? cupti_now_ns() : 0;
        range_push(e, label);
        if (is_collective(st)) {
            int last = pe->group_last[oi];
            int rc = collective(e, pe, oi, last, last_only, argmax);
            nvtxDomainRangePop(e->nvtx);
            PB_TRY(rc);
            PB_TRY(host_range(t, label, t0, iteration));
            current = -1;
            oi = last;
            continue;
        }
        int ord = e->c.ordinal[st->device];
        if (ord != current) {
            CUDA_TRY(cudaSetDevice(ord));
            current = ord;
        }
        cudaStream_t stream = e->stream[st->device][st->stream];
        for (int d = 0; d < st->n_deps; d++) CUDA_TRY(cudaStreamWaitEvent(stream, pe->ev[st->deps[d]], 0));
        if (st->kind == STEP_EMBED && prev && !capturing) PB_TRY(wait_previous_tokens(prev, st, stream));
        struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->seq,
                                  .pos = pos, .pos_device = use_pos_device ? e->d_pos : NULL,
                                  .last_only = last_only};
        int rc = PB_OK;
        if (st->kind == STEP_COPY) rc = copy_step(e, pe, i, stream);
        /* Offloaded weights stream inside their compute step; this step only orders. */
        else if (st->kind != STEP_H2D_WEIGHTS) rc = compute_step(e, pe, i, &call, argmax, stream);
        nvtxDomainRangePop(e->nvtx);
        PB_TRY(rc);
        if (capturing) PB_TRY(exec_capture_attribute(e, stream, st->device, st->stream, st->kind == STEP_COPY ? st->dst : -1));
        CUDA_TRY(cudaEventRecord(pe->ev[i], stream));
        PB_TRY(host_range(t, label, t0, iteration));
    }
    return PB_OK;
}
