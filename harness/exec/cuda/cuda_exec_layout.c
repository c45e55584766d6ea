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

/* Tensor parallel in groups of D = tp_degree devices (tp: one group of all; hybrid:
 * one per pipeline stage, group g = devices g*D .. g*D + D - 1). Every chunk of
 * layers (a stage's run, or each of its interleaved runs) is a part on each of its
 * group's devices, rank r of D: the first chunk's parts hold the replicated
 * embedding, the last chunk's their vocabulary slice of lm_head. tp's parts are
 * one chunk of every layer, part d on device d. */
static int tp_parts(struct part_layout *l, const struct cuda_config *c, const int *ordinal)
{
    const struct placement *p = c->p;
    int d_per = p->tp_degree > 0 ? p->tp_degree : c->n_devices;
    if (c->n_devices % d_per)
        return pb_fail("internal: %s: tensor-parallel groups of %d do not divide %d devices", c->label, d_per,
                       c->n_devices);
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int chunks = placement_stages(p, sd, sf, sc);
    if (chunks < 1) return pb_fail("internal: %s: a tensor-parallel placement without layers", c->label);
    l->tp = 1;
    l->tp_degree = d_per;
    for (int i = 0; i < chunks; i++)
        for (int r = 0; r < d_per; r++) {
            int dev = sd[i] * d_per + r, k = add_part(l, c, ordinal, dev, 0, sf[i], sc[i]);
            if (k < 0) return PB_ERR;
            if (dev >= c->n_devices)
                return pb_fail("internal: %s: chunk %d on group %d, beyond %d devices", c->label, i, sd[i],
                               c->n_devices);
            l->parts[k].d.rank = r;
            l->parts[k].d.world = d_per;
            l->parts[k].d.has_embed = i == 0;
            l->parts[k].d.has_head = i == chunks - 1;
            if (i == 0 && r == 0) l->embed_part = k;
            if (i == chunks - 1 && r == 0) l->head_part = k;   /* rank 0 stands for its group in read-back */
        }
    return PB_OK;
}

int exec_tp_part(const struct part_layout *l, int device, enum step_kind kind, int layer)
{
    for (int k = 0; k < l->n_parts; k++) {
        const struct part_slot *ps = &l->parts[k];
        if (ps->logical != device) continue;
        if (kind == STEP_EMBED ? ps->d.has_embed
            : kind == STEP_HEAD ? ps->d.has_head
                                : layer >= ps->d.first_layer && layer < ps->d.first_layer + ps->d.n_layers)
            return k;
    }
    return -1;
}

int exec_token_part(const struct part_layout *l, int device)
{
    return l->tp ? exec_tp_part(l, device % l->tp_degree, STEP_EMBED, 0) : l->embed_part;
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
    if (l->tp) return step_is_collective(st) || st->kind == STEP_COPY ? -1 : exec_tp_part(l, st->device, st->kind, st->layer);
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

/* One step's effect on where microbatch rows are: a copy moves them between
 * devices; two parts on one device (GPU layers then cpu-offloaded ones) need a
 * local copy the schedule does not show, done before the compute step. */
/* holder's slot of microbatch mb's rows on `device`: one per microbatch, or under
 * tensor parallelism one per (microbatch, rank), each rank holding the whole rows. */
static int holder_slot(const struct part_layout *l, const struct schedule *s, int mb, int device)
{
    return l->tp ? mb * s->n_devices + device : mb;
}

static int follow_step(const struct part_layout *l, struct plan_exec *pe, int i, int *holder)
{
    const struct schedule *s = pe->s;
    const struct step *st = &s->steps[i];
    int mb = st->microbatch >= 0 && st->microbatch < s->microbatches ? st->microbatch : 0;
    int at = holder_slot(l, s, mb, st->device);
    pe->part[i] = exec_part_for(l, st);
    pe->pre_from[i] = pe->src_part[i] = pe->dst_part[i] = -1;
    int computes = st->kind == STEP_LAYERS || st->kind == STEP_EMBED || st->kind == STEP_HEAD ||
                   st->kind == STEP_ATTENTION || st->kind == STEP_MLP;
    if (computes && pe->part[i] < 0)
        return pb_fail("internal: step %d (%s, device %d, layers %d+%d) has no part", i, step_kind_name(st->kind),
                       st->device, st->layer, st->count);
    if (step_is_collective(st)) {
        /* A sum or gather works on the rows where the rank's last step left them. */
        if ((pe->part[i] = holder[at]) < 0)
            return pb_fail("internal: collective step %d on device %d has no rows to work on", i, st->device);
    } else if (st->kind == STEP_EMBED) {
        holder[at] = pe->part[i];
    } else if (computes) {
        int h = holder[at];
        if (h >= 0 && h != pe->part[i]) {
            if (l->parts[h].logical != st->device)
                return pb_fail("schedule: step %d runs on device %d but microbatch %d's activations are on "
                               "device %d with no copy between", i, st->device, mb, l->parts[h].logical);
            pe->pre_from[i] = h;
        }
        holder[at] = pe->part[i];
    } else if (st->kind == STEP_COPY) {
        int c = exec_consumer(s, i), dp = c >= 0 ? exec_part_for(l, &s->steps[c]) : -1;
        int from = holder_slot(l, s, mb, st->src), to = holder_slot(l, s, mb, st->dst);
        if (holder[from] < 0 || dp < 0) return pb_fail("schedule: copy step %d has no source or destination part", i);
        pe->src_part[i] = holder[from];
        pe->dst_part[i] = dp;
        holder[to] = dp;
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
    size_t slots = ((size_t)s->microbatches + 1) * (size_t)(s->n_devices > 0 ? s->n_devices : 1);
    int *holder = malloc(slots * sizeof(int));
    int rc = pe->ev && holder ? issue_order(s, pe->order, pe->group_last)
                              : pb_fail("out of host memory preparing a schedule of %d steps", s->n_steps);
    for (size_t k = 0; rc == PB_OK && k < slots; k++) holder[k] = -1;
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
    free(pe->here);
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
