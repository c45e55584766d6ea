/* What both executors (cuda_executor.c in one process, exec/mpi/cuda_mpi_exec.c one
 * rank per GPU) derive from a placement and a schedule before touching a GPU:
 * the parts (a device's run of layers, or its tensor-parallel shard), the issue
 * order, and which part holds each microbatch's rows before and after every
 * step. The MPI ranks must agree with each other and with the single process on
 * all of it, so it is written once. */
#include <stdlib.h>
#include <string.h>
#include "cuda_exec_internal.h"


static int add_part(struct part_layout *l, const struct cuda_config *c, const int *ordinal, int logical, int host,
                    int first, int count)
{
    if (l->n_parts == EXEC_MAX_PARTS) return pb_fail("placement has more than %d parts", EXEC_MAX_PARTS);
    struct part_slot *ps = &l->parts[l->n_parts];
    memset(ps, 0, sizeof *ps);
    ps->logical = logical;
    ps->host = host;
    ps->d = (struct llama_part_desc){.device = ordinal[logical], .rank = 0, .world = 1, .first_layer = first,
                                     .n_layers = count, .max_batch = c->batch,
                                     .max_context = c->seq + c->decode_tokens, .max_rows = c->batch * c->seq,
                                     .weights_on_host = host,
                                     /* kernels start while their predecessor ends (kernels/pdl.h):
                                      * the same bits, shorter gaps between decode's small kernels */
                                     .programmatic_launch = 1};
    return l->n_parts++;
}

/* A part on (logical, host) for embed or head, made empty if none holds layers there. */
static int part_on(struct part_layout *l, const struct cuda_config *c, const int *ordinal, int device, int last)
{
    int logical = placement_exec_device(device), host = device == PB_DEVICE_CPU, found = -1;
    for (int k = 0; k < l->n_parts; k++)
        if (l->parts[k].logical == logical && l->parts[k].host == host && (found < 0 || last)) found = k;
    return found >= 0 ? found : add_part(l, c, ordinal, logical, host, 0, 0);
}

static int tp_parts(struct part_layout *l, const struct cuda_config *c, const int *ordinal)
{
    /* The parts below, the replicated embedding's tokens, the gathered logits and the
     * greedy tokens' way back all assume one group of every device. */
    if (c->p->tp_degree != c->n_devices)
        return pb_fail("%s: %d tensor-parallel groups of %d GPUs (pipeline stages of tp) do not run on GPUs "
                       "yet: the executors lay out one group of all devices; --simulate runs this placement",
                       c->label, c->n_devices / c->p->tp_degree, c->p->tp_degree);
    if (c->prefill->microbatches > 1)
        return pb_fail("%s: tensor-parallel steps in %d microbatches do not run on GPUs yet (the all-gathered "
                       "logits hold one call at a time); use --microbatches 1, or --simulate", c->label,
                       c->prefill->microbatches);
    l->tp = 1;
    for (int d = 0; d < c->n_devices; d++) {
        if (add_part(l, c, ordinal, d, 0, 0, c->m->layers) < 0) return PB_ERR;
        l->parts[d].d.rank = d;
        l->parts[d].d.world = c->n_devices;
        l->parts[d].d.has_embed = l->parts[d].d.has_head = 1;
    }
    l->embed_part = l->head_part = 0;   /* rank 0 stands for all in token read-back */
    return PB_OK;
}

int exec_build_parts(const struct cuda_config *c, const int *ordinal, struct part_layout *l)
{
    memset(l, 0, sizeof *l);
    l->embed_part = l->head_part = -1;
    const struct placement *p = c->p;
    if (p->tensor_parallel) return tp_parts(l, c, ordinal);
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int stages = placement_stages(p, sd, sf, sc);
    for (int i = 0; i < stages; i++) {
        int logical = placement_exec_device(sd[i]), host = sd[i] == PB_DEVICE_CPU, merged = 0;
        for (int k = 0; k < l->n_parts && !merged; k++) {
            struct part_slot *ps = &l->parts[k];
            if (ps->logical == logical && ps->host == host && ps->d.first_layer + ps->d.n_layers == sf[i]) {
                ps->d.n_layers += sc[i];
                merged = 1;
            }
        }
        if (!merged && add_part(l, c, ordinal, logical, host, sf[i], sc[i]) < 0) return PB_ERR;
    }
    int embed = -1, head = -1;
    for (int i = 0; i < p->n_modules; i++) {
        if (p->modules[i].kind == MODULE_EMBED) embed = p->device[i];
        if (p->modules[i].kind == MODULE_HEAD) head = p->device[i];
    }
    if ((l->embed_part = part_on(l, c, ordinal, embed, 0)) < 0 || (l->head_part = part_on(l, c, ordinal, head, 1)) < 0)
        return PB_ERR;
    l->parts[l->embed_part].d.has_embed = 1;
    l->parts[l->head_part].d.has_head = 1;
    return PB_OK;
}

int exec_part_for(const struct part_layout *l, const struct step *st)
{
    if (l->tp) return st->device;
    if (st->kind == STEP_EMBED) return l->embed_part;
    if (st->kind == STEP_HEAD) return l->head_part;
    if (st->kind != STEP_LAYERS) return -1;
    for (int k = 0; k < l->n_parts; k++) {
        const struct part_slot *ps = &l->parts[k];
        if (ps->logical == st->device && ps->host == (st->offloaded != 0) && st->layer >= ps->d.first_layer &&
            st->layer + st->count <= ps->d.first_layer + ps->d.n_layers)
            return k;
    }
    return -1;
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

/* Every member of step i's collective has its inputs issued. */
static int collective_ready(const struct schedule *s, int i, const char *issued)
{
    for (int j = 0; j < s->n_steps; j++)
        if (!issued[j] && same_collective(&s->steps[j], &s->steps[i]) && !deps_issued(&s->steps[j], issued))
            return 0;
    return 1;
}

/* Topological order; a collective is placed once every rank's part is ready,
 * all ranks together, because NCCL needs them in one group call (and MPI ranks
 * walking this order meet in every collective and send/receive pair). */
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
            if (step_is_collective(st) && !collective_ready(s, i, issued)) continue;
            int first = n;
            for (int j = 0; j < s->n_steps; j++)
                if (!issued[j] && (j == i || (step_is_collective(st) && same_collective(&s->steps[j], st)))) {
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

int exec_consumer(const struct schedule *s, int i)
{
    for (int k = i + 1; k < s->n_steps; k++)
        for (int d = 0; d < s->steps[k].n_deps; d++)
            if (s->steps[k].deps[d] == i) return k;
    return -1;
}

/* One step's effect on where microbatch rows are: a copy moves them between
 * devices; two parts on one device (GPU layers then cpu-offloaded ones) need a
 * local copy the schedule does not show, done before the compute step. */
static int follow_step(const struct part_layout *l, struct plan_exec *pe, int i, int *holder)
{
    const struct schedule *s = pe->s;
    const struct step *st = &s->steps[i];
    int mb = st->microbatch >= 0 && st->microbatch < s->microbatches ? st->microbatch : 0;
    pe->part[i] = exec_part_for(l, st);
    pe->pre_from[i] = pe->src_part[i] = pe->dst_part[i] = -1;
    if ((st->kind == STEP_LAYERS || st->kind == STEP_EMBED || st->kind == STEP_HEAD) && pe->part[i] < 0)
        return pb_fail("internal: step %d (%s, device %d, layers %d+%d) has no part", i,
                       st->kind == STEP_LAYERS ? "layers" : "embed/head", st->device, st->layer, st->count);
    if (l->tp) return PB_OK;
    if (st->kind == STEP_EMBED) {
        holder[mb] = pe->part[i];
    } else if (st->kind == STEP_LAYERS || st->kind == STEP_HEAD) {
        int h = holder[mb];
        if (h >= 0 && h != pe->part[i]) {
            if (l->parts[h].logical != st->device)
                return pb_fail("schedule: step %d runs on device %d but microbatch %d's activations are on "
                               "device %d with no copy between", i, st->device, mb, l->parts[h].logical);
            pe->pre_from[i] = h;
        }
        holder[mb] = pe->part[i];
    } else if (st->kind == STEP_COPY) {
        int c = exec_consumer(s, i), dp = c >= 0 ? exec_part_for(l, &s->steps[c]) : -1;
        if (holder[mb] < 0 || dp < 0) return pb_fail("schedule: copy step %d has no source or destination part", i);
        pe->src_part[i] = holder[mb];
        pe->dst_part[i] = dp;
        holder[mb] = dp;
    }
    return PB_OK;
}

int exec_layout_plan(const struct part_layout *l, const struct schedule *s, int seq, struct plan_exec *pe)
{
    memset(pe, 0, sizeof *pe);
    pe->s = s;
    pe->seq = seq;
    size_t n = (size_t)s->n_steps + 1;
    int **arrays[] = {&pe->order, &pe->group_last, &pe->part, &pe->pre_from, &pe->src_part, &pe->dst_part};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        if (!(*arrays[k] = calloc(n, sizeof(int)))) return pb_fail("out of host memory preparing a schedule");
    pe->ev = calloc(n, sizeof(cudaEvent_t));
    int *holder = malloc(((size_t)s->microbatches + 1) * sizeof(int));
    int rc = pe->ev && holder ? issue_order(s, pe->order, pe->group_last)
                              : pb_fail("out of host memory preparing a schedule of %d steps", s->n_steps);
    for (int mb = 0; rc == PB_OK && mb <= s->microbatches; mb++) holder[mb] = -1;
    for (int i = 0; rc == PB_OK && i < s->n_steps; i++) rc = follow_step(l, pe, i, holder);
    free(holder);
    return rc;
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

/* ---- issuing helpers both executors use ---- */

void exec_nvtx_push(nvtxDomainHandle_t domain, const char *label)
{
    nvtxEventAttributes_t a = {0};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = label;
    nvtxDomainRangePushEx(domain, &a);
}

int exec_compute(const struct part_layout *l, const struct plan_exec *pe, int i, int hidden,
                 const struct llama_call *call, cudaStream_t s)
{
    const struct step *st = &pe->s->steps[i];
    struct llama_part *p = l->parts[pe->part[i]].p;
    if (pe->pre_from[i] >= 0) {
        /* The rows sit in another part on this device (GPU layers before offloaded ones). */
        size_t off = (size_t)st->batch_offset * pe->seq * hidden * 2, n = (size_t)st->batch * pe->seq * hidden * 2;
        const char *src = (const char *)llama_part_hidden(l->parts[pe->pre_from[i]].p) + off;
        CUDA_TRY(cudaMemcpyAsync((char *)llama_part_hidden(p) + off, src, n, cudaMemcpyDeviceToDevice, s));
    }
    switch (st->kind) {
    case STEP_EMBED: return llama_embed(p, call, s);
    case STEP_LAYERS: return llama_layers(p, st->layer, st->count, call, s);
    case STEP_ATTENTION: return llama_attention(p, st->layer, call, s);
    case STEP_MLP: return llama_mlp(p, st->layer, call, s);
    case STEP_HEAD: return llama_head(p, call, s);
    default: return pb_fail("internal: step kind %d is not a compute step", st->kind);
    }
}
