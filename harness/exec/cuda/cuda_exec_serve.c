/* A serving step on the CUDA executor: the strategy's schedule for the step's
 * shape, issued by the one issue loop on the executor's parts, whose KV cache
 * holds every slot's sequence between steps. Prompt rows and last tokens come
 * from the host each step (another slot's prefill reuses the token rows), each
 * slot's position goes to the device for the decode kernel, and the greedy
 * tokens come back; CUDA events time the whole step on the origin stream. */
#include <stdlib.h>
#include <string.h>
#include "cuda_exec_internal.h"

static cudaStream_t origin(struct executor *e) { return e->stream[0][0]; }

/* The part whose token rows an embedding reads on logical device d, or -1. */
static int embed_part_of(const struct executor *e, int d)
{
    for (int k = 0; k < e->l.n_parts; k++)   /* tp: every rank holds a replicated embedding */
        if (e->l.parts[k].logical == d && e->l.parts[k].d.has_embed) return k;
    return -1;
}

static int check_step(const struct executor *e, const struct exec_step *x)
{
    if (x->s->n_devices != e->c.n_devices)
        return pb_fail("internal: serving step planned for %d devices, executor has %d", x->s->n_devices,
                       e->c.n_devices);
    if (x->s->streams_per_device > e->n_streams)
        return pb_fail("internal: serving step uses %d streams a device, the executor has %d",
                       x->s->streams_per_device, e->n_streams);
    if (x->batch < 1 || x->slot0 < 0 || x->slot0 + x->batch > e->c.batch)
        return pb_fail("serving step: slots [%d, %d) outside the executor's %d", x->slot0, x->slot0 + x->batch,
                       e->c.batch);
    if (x->seq < 1 || x->seq > e->c.seq || (x->slot_pos && x->seq != 1))
        return pb_fail("serving step: %d tokens a sequence (prompts up to %d; decode 1)", x->seq, e->c.seq);
    if (x->slot_pos && (x->pos < 0 || x->pos >= e->c.seq + e->c.decode_tokens))
        return pb_fail("serving step: position %d outside the KV cache of %d", x->pos,
                       e->c.seq + e->c.decode_tokens);
    return PB_OK;
}

/* Tokens and positions in, on each device's first stream, before the pass forks. */
static int upload(struct executor *e, const struct exec_step *x)
{
    for (int d = 0; d < e->c.n_devices; d++) {
        cudaStream_t s = e->stream[d][0];
        CUDA_TRY(cudaSetDevice(e->c.ordinal[d]));
        int k = embed_part_of(e, d);
        if (k >= 0)
            CUDA_TRY(cudaMemcpyAsync(llama_part_tokens(e->l.parts[k].p) + (size_t)x->slot0 * x->seq, x->tokens,
                                     (size_t)x->batch * x->seq * sizeof(int), cudaMemcpyHostToDevice, s));
        if (!x->slot_pos) continue;
        if (!e->serve_pos[d]) CUDA_TRY(cudaMalloc((void **)&e->serve_pos[d], (size_t)e->c.batch * sizeof(int)));
        CUDA_TRY(cudaMemcpyAsync(e->serve_pos[d] + x->slot0, x->slot_pos, (size_t)x->batch * sizeof(int),
                                 cudaMemcpyHostToDevice, s));
    }
    return PB_OK;
}

static int issue(struct executor *e, const struct exec_step *x, struct plan_exec *pe, struct trace *t)
{
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    CUDA_TRY(cudaEventRecord(e->start, origin(e)));
    PB_TRY(exec_fork_streams(e, e->fork));
    PB_TRY(upload(e, x));
    PB_TRY(exec_join_streams(e));   /* every stream sees the uploads */
    PB_TRY(exec_fork_streams(e, e->fork));
    for (int d = 0; x->slot_pos && d < e->c.n_devices; d++) e->seq_pos[d] = e->serve_pos[d];
    int rc = exec_issue_pass(e, pe, NULL, NULL, 0, x->slot_pos ? x->pos : 0, 0, 1, 1, 0, t, 0);
    for (int d = 0; d < e->c.n_devices; d++) e->seq_pos[d] = NULL;
    PB_TRY(rc);
    PB_TRY(exec_join_streams(e));
    CUDA_TRY(cudaEventRecord(e->stop, origin(e)));
    return PB_OK;
}

int executor_serve_step(struct executor *e, const struct exec_step *x, struct trace *t, double *ms)
{
    PB_TRY(check_step(e, x));
    struct plan_exec pe;
    int rc = exec_prepare_plan(e, x->s, x->seq, &pe);
    if (rc == PB_OK) rc = issue(e, x, &pe, t);
    cudaError_t done = rc == PB_OK ? cudaEventSynchronize(e->stop) : cudaSuccess;
    exec_free_plan(&pe);
    PB_TRY(rc);
    CUDA_TRY(done);
    for (int g = 0; g < PB_MAX_DEVICES; g++)
        if (e->peer_ar[g]) PB_TRY(peer_group_check(e->peer_ar[g]));
    float elapsed = 0;
    CUDA_TRY(cudaEventElapsedTime(&elapsed, e->start, e->stop));
    *ms = elapsed;
    if (!x->next) return PB_OK;
    /* The head's argmax left each sequence's next token in its slot of the embedding's rows. */
    struct part_slot *ps = &e->l.parts[e->l.tp ? 0 : e->l.embed_part];
    CUDA_TRY(cudaSetDevice(ps->d.device));
    CUDA_TRY(cudaMemcpy(x->next, llama_part_tokens(ps->p) + x->slot0, (size_t)x->batch * sizeof(int),
                        cudaMemcpyDeviceToHost));
    return PB_OK;
}

void executor_serve_free(struct executor *e)
{
    for (int d = 0; d < PB_MAX_DEVICES; d++) {
        if (!e->serve_pos[d]) continue;
        cudaSetDevice(e->c.ordinal[d]);
        cudaFree(e->serve_pos[d]);
        e->serve_pos[d] = NULL;
    }
}
