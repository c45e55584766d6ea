/* Issuing a schedule: steps in an order that respects their dependencies, each
 * on its (device, stream) after cudaStreamWaitEvent on the steps it waits for,
 * an event recorded after it; collectives of one id issued together inside one
 * NCCL group; NVTX ranges per step. The one issue loop of both CUDA executors:
 * an MPI rank (exec/mpi/cuda_mpi_exec.c) runs it with its own transport, which
 * places only its device's steps here and moves rows with NCCL send/receive. */
#include <stdlib.h>
#include <string.h>
#include "../../measure/cupti.h"
#include "cuda_exec_internal.h"

int exec_prepare_plan(struct executor *e, const struct schedule *s, int seq, struct plan_exec *pe)
{
    PB_TRY(exec_layout_plan(&e->l, s, seq, pe));
    if (!(pe->here = calloc((size_t)s->n_steps + 1, sizeof *pe->here)))
        return pb_fail("out of host memory preparing a schedule");
    for (int i = 0; i < s->n_steps; i++) {
        e->transport->place(e, s, i, &pe->here[i]);
        if (pe->here[i].role == STEP_NOT_HERE) continue;
        CUDA_TRY(cudaSetDevice(e->c.ordinal[pe->here[i].device]));
        CUDA_TRY(cudaEventCreateWithFlags(&pe->ev[i], cudaEventDisableTiming));
    }
    return PB_OK;
}

/* ---- the single process: every device here, peer copies between GPUs ---- */

static void peer_place(const struct executor *e, const struct schedule *s, int i, struct step_here *out)
{
    (void)e;
    *out = step_place_all(s, i);
}

static int peer_same_memory(const struct executor *e, int a, int b) { return e->c.ordinal[a] == e->c.ordinal[b]; }

static int peer_group_path(struct executor *e, struct plan_exec *pe, int first, int last, int last_only, int *taken);

const struct exec_transport exec_peer_transport = {
    .place = peer_place,
    .move = exec_copy,
    .same_memory = peer_same_memory,
    .peer_collective = peer_group_path,
};

/* ---- issuing ---- */

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

/* Rows of part k at byte offset off; NULL where the part lives in another process. */
static void *part_rows(const struct executor *e, int k, size_t off)
{
    struct llama_part *p = e->l.parts[k].p;
    return p ? (char *)llama_part_hidden(p) + off : NULL;
}

/* The embedding's token rows of a head step's sequences; NULL in another process. */
static int *embed_tokens(const struct executor *e, const struct step *st)
{
    struct llama_part *p = e->l.parts[exec_token_part(&e->l, st->device)].p;
    return p ? llama_part_tokens(p) + st->batch_offset : NULL;
}

/* Where the greedy tokens of st's sequences are written: the base of the token rows
 * of the embedding that reads them, where a kernel on st's device can write those;
 * else (*relay = 1) a buffer on st's device the transport moves them from: d_next,
 * or under tensor parallelism the head part's own token rows (no embedding reads
 * them: the head's part holds the embedding only where both share a device). */
static int *token_target(struct executor *e, const struct step *st, int *relay)
{
    const struct part_slot *emb = &e->l.parts[exec_token_part(&e->l, st->device)];
    *relay = !e->transport->same_memory(e, emb->logical, st->device);
    if (!*relay) return llama_part_tokens(emb->p);
    return e->l.tp ? llama_part_tokens(e->l.parts[exec_tp_part(&e->l, st->device, STEP_HEAD, 0)].p) : e->d_next;
}

/* The relay's tokens of st's sequences to the embedding that reads them. */
static int send_tokens(struct executor *e, const int *relay, const struct step *st, cudaStream_t s)
{
    return e->transport->move(e, embed_tokens(e, st), e->l.parts[exec_token_part(&e->l, st->device)].logical,
                              relay + st->batch_offset, st->device, (size_t)st->batch * sizeof(int), s);
}

/* Greedy tokens of the sequences of a head step, delivered to the embed part's
 * token rows (decode passes read rows [batch_offset, batch_offset + batch)). */
static int argmax_step(struct executor *e, struct llama_part *head, const struct llama_call *call,
                       const struct step *st, cudaStream_t s)
{
    /* llama_argmax writes tokens[batch_offset + i]: pass the base pointers. */
    int relay;
    int *to = token_target(e, st, &relay);
    PB_TRY(llama_argmax(head, call, to, s));
    return relay ? send_tokens(e, to, st, s) : PB_OK;
}

/* The other end of argmax_step, where the head is another process's. */
static int receive_tokens(struct executor *e, const struct step *st, cudaStream_t s)
{
    return e->transport->move(e, embed_tokens(e, st), e->l.parts[exec_token_part(&e->l, st->device)].logical, NULL,
                              st->device, (size_t)st->batch * sizeof(int), s);
}

static int compute_step(struct executor *e, struct plan_exec *pe, int i, const struct llama_call *call,
                        int argmax, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    PB_TRY(exec_compute(&e->l, pe, i, e->c.m->hidden, call, s));
    if (st->kind != STEP_HEAD || !argmax || (e->l.tp && e->l.tp_degree > 1)) return PB_OK;
    return argmax_step(e, e->l.parts[pe->part[i]].p, call, st, s);
}

static int copy_step(struct executor *e, struct plan_exec *pe, int i, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    size_t off = hidden_offset(e, pe, st) * 2, n = (size_t)st->batch * pe->seq * e->c.m->hidden * 2;
    return e->transport->move(e, part_rows(e, pe->dst_part[i], off), st->dst, part_rows(e, pe->src_part[i], off),
                              st->src, n, s);
}

/* Step st waits for the steps it depends on that this process has events of
 * (another process's data arrives through the transport, in issue order). */
static int wait_deps(const struct plan_exec *pe, const struct step *st, cudaStream_t s)
{
    for (int d = 0; d < st->n_deps; d++)
        if (pe->ev[st->deps[d]]) CUDA_TRY(cudaStreamWaitEvent(s, pe->ev[st->deps[d]], 0));
    return PB_OK;
}

static cudaStream_t stream_here(const struct executor *e, const struct plan_exec *pe, int i)
{
    return e->stream[pe->here[i].device][pe->here[i].stream];
}

/* First logits row of a step's sequences. */
static size_t logits_row0(const struct plan_exec *pe, const struct step *st, int last_only)
{
    return last_only ? (size_t)st->batch_offset : (size_t)st->batch_offset * pe->seq;
}

/* Where rank k's logits slice comes from in a tp all-gather (step i: its head part's rows). */
static const void *gather_send(struct executor *e, const struct plan_exec *pe, int i, int last_only)
{
    int vocab_l = e->c.m->vocab / e->l.tp_degree;
    return (const char *)llama_part_logits(e->l.parts[pe->part[i]].p) + logits_row0(pe, &pe->s->steps[i], last_only) * vocab_l * 2;
}

/* Elements of one rank's slice in a tp all-gather. */
static size_t gather_count(struct executor *e, const struct plan_exec *pe, const struct step *st, int last_only)
{
    int rows = last_only ? st->batch : st->batch * pe->seq;
    return (size_t)rows * (e->c.m->vocab / e->l.tp_degree);
}

/* Where a microbatch's slices are gathered on a device: each microbatch has its own
 * block [world][its rows][vocab / world] at world x its first row (executor_logits
 * reads them back in that layout), so microbatches in flight never share one. */
static void *gather_recv(struct executor *e, const struct plan_exec *pe, const struct step *st, int last_only)
{
    size_t vocab_l = (size_t)(e->c.m->vocab / e->l.tp_degree);
    return (char *)e->gather[st->device] + logits_row0(pe, st, last_only) * e->l.tp_degree * vocab_l * 2;
}

/* A tp all-reduce's buffers for step i's rows: the rank's partial products (summed)
 * and its hidden rows (the residual they are added to, llama.h). */
static int allreduce_buffers(struct executor *e, const struct plan_exec *pe, int i, void **partial, void **residual)
{
    struct llama_part *p = e->l.parts[pe->part[i]].p;
    size_t off = hidden_offset(e, pe, &pe->s->steps[i]) * 2;
    if (!llama_part_tp_partial(p))
        return pb_fail("internal: all-reduce step %d on a part without tensor-parallel partials", i);
    *partial = (char *)llama_part_tp_partial(p) + off;
    *residual = (char *)llama_part_hidden(p) + off;
    return PB_OK;
}

static size_t allreduce_count(struct executor *e, const struct plan_exec *pe, const struct step *st)
{
    return (size_t)st->batch * pe->seq * e->c.m->hidden;
}

static enum allreduce_algo allreduce_algo_for(struct executor *e, const struct plan_exec *pe, const struct step *st)
{
    return allreduce_choose(e->c.allreduce, &e->c.allreduce_table, allreduce_count(e, pe, st) * 2, e->have_comms);
}

/* The call takes the peer-memory path: an all-reduce that --allreduce (or auto, by
 * size) gives to it, or an all-gather where there are no NCCL communicators. */
static int takes_peer_path(struct executor *e, const struct plan_exec *pe, const struct step *st)
{
    if (!e->peer_ar[st->group]) return 0;
    if (st->kind == STEP_ALLGATHER) return !e->have_comms;
    return allreduce_algo_for(e, pe, st) != ALLREDUCE_NCCL;
}

/* While capturing a graph: the nodes just issued on s for collective step i are its. */
static int capture_collective_member(struct executor *e, const struct plan_exec *pe, int i, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    struct cupti_place where = {st->device, st->stream, -1, i, pe_microbatch(st, pe->s)};
    return exec_capture_attribute(e, s, &where);
}

/* The peer group's callback after rank k's part of a call: under capture, its nodes
 * are rank k's step (ranks that share a GPU wait on each other's events, so without
 * it one rank's step would also claim the others' staging kernels). */
struct member_steps {
    struct executor *e;
    const struct plan_exec *pe;
    int step[PEER_MAX_RANKS];
};

static int member_issued(void *ctx, int rank, cudaStream_t s)
{
    struct member_steps *m = ctx;
    return capture_collective_member(m->e, m->pe, m->step[rank], s);
}

/* All ranks of one call through the group's peer memory, in rank order. */
static int peer_collective(struct executor *e, struct plan_exec *pe, int first, int last, int last_only)
{
    const struct step *st0 = &pe->s->steps[pe->order[first]];
    struct peer_group *g = e->peer_ar[st0->group];
    void *data[PEER_MAX_RANKS];
    const void *send[PEER_MAX_RANKS];   /* all-gather: the slices; all-reduce: the partials */
    cudaStream_t streams[PEER_MAX_RANKS];
    struct member_steps members = {.e = e, .pe = pe};
    int n = 0;
    for (int d = 0; d < e->c.n_devices; d++) {
        if (pe->s->group_of[d] != st0->group) continue;
        const struct step *st = NULL;
        for (int k = first; k <= last && !st; k++)
            if (pe->s->steps[pe->order[k]].device == d) st = &pe->s->steps[pe->order[k]];
        if (!st || n >= g->n) return pb_fail("internal: collective %d misses device %d of its group", st0->collective, d);
        streams[n] = e->stream[d][st->stream];
        int i = (int)(st - pe->s->steps);
        members.step[n] = i;
        if (st->kind == STEP_ALLGATHER) {
            send[n] = gather_send(e, pe, i, last_only);
            data[n] = gather_recv(e, pe, st, last_only);
        } else {
            void *partial;
            PB_TRY(allreduce_buffers(e, pe, i, &partial, &data[n]));
            send[n] = partial;
        }
        n++;
    }
    if (n != g->n) return pb_fail("internal: collective %d has %d ranks, its group %d", st0->collective, n, g->n);
    g->issued = e->capture ? member_issued : NULL;
    g->issued_ctx = &members;
    int rc = st0->kind == STEP_ALLGATHER
                 ? peer_group_allgather(g, send, data, gather_count(e, pe, st0, last_only) * 2, streams)
                 : peer_group_allreduce_residual(g, send, data, allreduce_count(e, pe, st0),
                                                 allreduce_algo_for(e, pe, st0), streams);
    g->issued = NULL;
    g->issued_ctx = NULL;
    return rc;
}

/* The single process's peer path: every rank of the call is here. */
static int peer_group_path(struct executor *e, struct plan_exec *pe, int first, int last, int last_only, int *taken)
{
    *taken = takes_peer_path(e, pe, &pe->s->steps[pe->order[first]]);
    return *taken ? peer_collective(e, pe, first, last, last_only) : PB_OK;
}

/* The members of one collective this process issues (every rank in one process,
 * its own on an MPI rank) in one NCCL group, each on its own stream. An all-reduce
 * sums the ranks' partials in place, then each rank adds that sum to its residual
 * (allreduce_add_partials, n = 1). NCCL sums bf16 in its own order and rounds as
 * it goes, so its bits are not the peer path's (which sums in fp32 in rank order):
 * the partials' sum is rounded at the magnitude of the partials, the residual once
 * more when the sum is added, as vLLM's tp does. */
static int nccl_collective(struct executor *e, struct plan_exec *pe, int first, int last, int last_only)
{
    const struct schedule *s = pe->s;
    if (!e->have_comms) return pb_fail("internal: a collective step but no NCCL communicators");
    void *partial, *residual;
    for (int k = first; k <= last; k++)   /* checked before the group opens: nothing fails inside it */
        if (pe->here[pe->order[k]].role == STEP_ISSUED && s->steps[pe->order[k]].kind == STEP_ALLREDUCE)
            PB_TRY(allreduce_buffers(e, pe, pe->order[k], &partial, &residual));
    NCCL_TRY(ncclGroupStart());
    for (int k = first; k <= last; k++) {
        int i = pe->order[k];
        if (pe->here[i].role != STEP_ISSUED) continue;
        const struct step *st = &s->steps[i];
        cudaStream_t stream = stream_here(e, pe, i);
        if (st->kind == STEP_ALLREDUCE) {
            allreduce_buffers(e, pe, i, &partial, &residual);
            NCCL_TRY(ncclAllReduce(partial, partial, allreduce_count(e, pe, st), ncclBfloat16, ncclSum,
                                   e->comm[st->device], stream));
        } else {
            NCCL_TRY(ncclAllGather(gather_send(e, pe, i, last_only), gather_recv(e, pe, st, last_only),
                                   gather_count(e, pe, st, last_only), ncclBfloat16, e->comm[st->device], stream));
        }
    }
    NCCL_TRY(ncclGroupEnd());
    for (int k = first; k <= last; k++) {
        int i = pe->order[k];
        if (pe->here[i].role != STEP_ISSUED || s->steps[i].kind != STEP_ALLREDUCE) continue;
        PB_TRY(allreduce_buffers(e, pe, i, &partial, &residual));
        CUDA_TRY(cudaSetDevice(e->c.ordinal[s->steps[i].device]));
        const void *sum = partial;
        PB_TRY(allreduce_add_partials(residual, &sum, 1, allreduce_count(e, pe, &s->steps[i]), stream_here(e, pe, i)));
    }
    return PB_OK;
}

/* Every member issued here waits for its inputs, the call runs on the
 * transport's peer path or NCCL, then the gathered logits give each rank its
 * next tokens. */
static int collective(struct executor *e, struct plan_exec *pe, int first, int last, int last_only, int argmax)
{
    const struct schedule *s = pe->s;
    for (int k = first; k <= last; k++) {
        int i = pe->order[k];
        if (pe->here[i].role != STEP_ISSUED) continue;
        CUDA_TRY(cudaSetDevice(e->c.ordinal[s->steps[i].device]));
        PB_TRY(wait_deps(pe, &s->steps[i], stream_here(e, pe, i)));
    }
    int taken = 0;
    PB_TRY(e->transport->peer_collective(e, pe, first, last, last_only, &taken));
    if (!taken) PB_TRY(nccl_collective(e, pe, first, last, last_only));
    for (int k = first; k <= last; k++) {
        int i = pe->order[k];
        const struct step *st = &s->steps[i];
        cudaStream_t stream = stream_here(e, pe, i);
        if (pe->here[i].role == STEP_RECEIVED) {
            /* MPI: another rank's gather picked the tokens of this rank's embedding */
            CUDA_TRY(cudaSetDevice(e->c.ordinal[pe->here[i].device]));
            if (argmax) PB_TRY(receive_tokens(e, st, stream));
            CUDA_TRY(cudaEventRecord(pe->ev[i], stream));
            continue;
        }
        if (pe->here[i].role != STEP_ISSUED) continue;
        CUDA_TRY(cudaSetDevice(e->c.ordinal[st->device]));
        if (argmax && st->kind == STEP_ALLGATHER) {
            /* Every rank holds all slices now: each picks the next tokens for the embedding
             * of its rank (its own in tp; rank r of the first stage in hybrid). The block
             * holds this microbatch alone: rows from 0, tokens at its batch_offset. */
            int vl = e->c.m->vocab / e->l.tp_degree, rows = last_only ? st->batch : st->batch * pe->seq, relay;
            struct llama_call call = {.batch_offset = 0, .batch = st->batch, .seq = pe->seq, .last_only = last_only};
            int *to = token_target(e, st, &relay);
            PB_TRY(llama_argmax_gathered(gather_recv(e, pe, st, last_only), e->l.tp_degree, (size_t)rows * vl, vl,
                                         &call, to + st->batch_offset, stream));
            if (relay) PB_TRY(send_tokens(e, to, st, stream));
        }
        if (e->capture) PB_TRY(capture_collective_member(e, pe, i, stream));
        CUDA_TRY(cudaEventRecord(pe->ev[i], stream));
    }
    return PB_OK;
}

/* The greedy tokens a step reads: it waits for the previous pass's steps that
 * produced its sequences' tokens (the program's feed, strategies/program.c), and
 * nothing else, so groups of sequences stay in flight through the pipeline. */
static int wait_feed(const struct plan_exec *prev, const struct token_feed *feed, int n_feed, int i,
                     cudaStream_t s)
{
    for (int k = 0; k < n_feed; k++)   /* another rank's tokens arrive through the transport */
        if (feed[k].embed == i && prev->ev[feed[k].from]) CUDA_TRY(cudaStreamWaitEvent(s, prev->ev[feed[k].from], 0));
    return PB_OK;
}

int exec_issue_pass(struct executor *e, struct plan_exec *pe, const struct plan_exec *prev,
                    const struct token_feed *feed, int n_feed, int pos, int use_pos_device, int last_only,
                    int argmax, int capturing, struct trace *t, int iteration)
{
    const struct schedule *s = pe->s;
    int current = -1;
    for (int oi = 0; oi < s->n_steps; oi++) {
        int i = pe->order[oi];
        const struct step *st = &s->steps[i];
        const struct step_here *here = &pe->here[i];
        if (here->role == STEP_NOT_HERE) continue;
        char label[PB_LABEL_LEN];
        step_label(s, st, label, sizeof label);
        uint64_t t0 = t ? cupti_now_ns() : 0;
        exec_nvtx_push(e->nvtx, label);
        if (step_is_collective(st)) {
            int last = pe->group_last[oi];
            cupti_push_step(i, pe_microbatch(st, pe->s));
            int rc = collective(e, pe, oi, last, last_only, argmax);
            cupti_pop_step();
            nvtxDomainRangePop(e->nvtx);
            PB_TRY(rc);
            PB_TRY(host_range(t, label, t0, iteration));
            current = -1;
            oi = last;
            continue;
        }
        int ord = e->c.ordinal[here->device];
        if (ord != current) {
            CUDA_TRY(cudaSetDevice(ord));
            current = ord;
        }
        cudaStream_t stream = e->stream[here->device][here->stream];
        if (here->role == STEP_ISSUED) {
            PB_TRY(wait_deps(pe, st, stream));
            if (prev && !capturing) PB_TRY(wait_feed(prev, feed, n_feed, i, stream));
        }
        struct llama_call call = {.batch_offset = st->batch_offset, .batch = st->batch, .seq = pe->seq,
                                  .pos = pos, .pos_device = use_pos_device ? e->d_pos : NULL,
                                  .last_only = last_only, .pos_seq = e->seq_pos[here->device]};
        int rc = PB_OK;
        cupti_push_step(i, pe_microbatch(st, pe->s));
        if (st->kind == STEP_COPY) rc = copy_step(e, pe, i, stream);
        else if (here->role == STEP_RECEIVED) rc = receive_tokens(e, st, stream);
        /* offloaded weights stream inside their compute step (llama part with weights_on_host) */
        else rc = compute_step(e, pe, i, &call, argmax, stream);
        cupti_pop_step();
        nvtxDomainRangePop(e->nvtx);
        PB_TRY(rc);
        struct cupti_place where = {st->device, st->stream, st->kind == STEP_COPY ? st->dst : -1, i,
                                     pe_microbatch(st, s)};
        if (capturing) PB_TRY(exec_capture_attribute(e, stream, &where));
        CUDA_TRY(cudaEventRecord(pe->ev[i], stream));
        PB_TRY(host_range(t, label, t0, iteration));
    }
    return PB_OK;
}
