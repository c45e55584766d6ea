/* See memory_model.h. The part formulas follow kernels/llama_part.cu line for
 * line (part_dims_make, part_layouts), alignment included, and the parts follow
 * harness/exec/cuda/cuda_exec_layout.c (exec_build_parts); tests/gpu/test_memory_model.c
 * checks both against the kernel core's own llama_part_bytes. */
#include "memory_model.h"
#include <stdio.h>
#include <string.h>
#include "../base/check.h"

/* Constants of the kernel core (the GPU test holds them equal). */
#define ELEM_ALIGN 128                   /* llama_part.cu: elements, 256 bytes of bf16 */
#define BYTE_ALIGN 256                   /* llama_part.cu: every arena buffer */
#define GEMM_WORKSPACE (32ull << 20)     /* gemm.h GEMM_WORKSPACE_BYTES */
#define ATTN_DECODE_CHUNK_MIN 32         /* attention.h: the decode partials are laid out for its smallest block */
#define GIB 1073741824.0

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* This rank's share of the model, as part_dims_make computes it. */
struct shard {
    int world;
    uint64_t hidden, hd, hq, hkv, inter_l, vocab, vocab_l, q_dim, kv_dim, qkv_n;
};

static int shard_make(const struct model_spec *m, int world, struct shard *o)
{
    char why[128];
    if (world < 1) return pb_fail("memory model: world %d", world);
    if (model_tp_split_check(m, world, why, sizeof why)) return pb_fail("%d ranks do not divide %s", world, why);
    o->world = world;
    o->hidden = (uint64_t)m->hidden;
    o->hd = (uint64_t)m->head_dim;
    o->hq = (uint64_t)(m->heads / world);
    o->hkv = (uint64_t)(m->kv_heads >= world ? m->kv_heads / world : 1);
    o->inter_l = (uint64_t)(m->intermediate / world);
    o->vocab = (uint64_t)m->vocab;
    o->vocab_l = (uint64_t)(m->vocab / world);
    o->q_dim = o->hq * o->hd;
    o->kv_dim = o->hkv * o->hd;
    o->qkv_n = o->q_dim + 2 * o->kv_dim;
    return PB_OK;
}

uint64_t memory_kv_bytes_per_token(const struct model_spec *m, enum dtype dt, int world)
{
    struct shard x;
    if (shard_make(m, world, &x) != PB_OK) return 0;
    return 2 * x.kv_dim * (uint64_t)dtype_size(dt);
}

/* One llama_part: a run of layers of one device, with or without embed and head,
 * weights on the device or (offload) in pinned host memory. */
struct part {
    int device, host, first, layers, has_embed, has_head;
};

/* An arena buffer of `bytes`, padded to the next buffer as part_layouts' TAKE does. */
static uint64_t take(uint64_t bytes) { return align_up(bytes, BYTE_ALIGN); }

/* part_layouts (kernels/llama_part.cu), buffer by buffer, into the categories. */
static void part_bytes(const struct part *pt, const struct shard *x, int es, const struct memory_shape *s,
                       struct device_memory *g, uint64_t *host)
{
    uint64_t H = x->hidden, e = 0, b = (uint64_t)es;
    e = align_up(e + H, ELEM_ALIGN);                       /* input_layernorm */
    e = align_up(e + x->qkv_n * H, ELEM_ALIGN);            /* q, k, v projections */
    e = align_up(e + H * x->q_dim, ELEM_ALIGN);            /* o_proj */
    e = align_up(e + H, ELEM_ALIGN);                       /* post_attention_layernorm */
    e = align_up(e + 2 * x->inter_l * H, ELEM_ALIGN);      /* gate and up */
    e = align_up(e + H * x->inter_l, ELEM_ALIGN);          /* down */
    uint64_t layer_elems = e;
    uint64_t head_elems = align_up(align_up(H, ELEM_ALIGN) + x->vocab_l * H, ELEM_ALIGN);
    /* the embedding is never sharded: every tp rank holds the whole table */
    uint64_t embed_b = pt->has_embed ? align_up(x->vocab * H * b, BYTE_ALIGN) : 0;
    uint64_t layers_b = (uint64_t)pt->layers * layer_elems * b;
    uint64_t head_b = pt->has_head ? head_elems * b : 0;
    if (pt->host) {
        uint64_t biggest = pt->layers ? layer_elems : 0;
        if (pt->has_head && head_elems > biggest) biggest = head_elems;
        g->workspace += take(biggest * b);                   /* staging: one layer or the head at a time */
        *host += embed_b + layers_b + head_b;
    } else {
        g->weights += take(embed_b) + take(layers_b) + take(head_b);
    }
    uint64_t rows = (uint64_t)s->batch * (uint64_t)s->seq, batch = (uint64_t)s->batch;
    uint64_t ctx = (uint64_t)s->seq + (uint64_t)s->decode_tokens;
    uint64_t cache = (uint64_t)pt->layers * batch * x->hkv * ctx * x->hd * b;
    g->kv += take(cache) + take(cache);                      /* k_cache, v_cache */
    int layers = pt->layers > 0, work = layers || pt->has_head;
    uint64_t splits = (ctx + ATTN_DECODE_CHUNK_MIN - 1) / ATTN_DECODE_CHUNK_MIN;
    g->activations += take(rows * H * b)                                   /* hidden */
                    /* tp: the o and down projections' partials the all-reduce adds to hidden */
                    + take(layers && x->world > 1 ? rows * H * b : 0)      /* tp_partial */
                    + take(rows * 4)                                       /* tokens */
                    + take(pt->has_head ? rows * x->vocab_l * b : 0)       /* logits */
                    + take(work ? rows * H * b : 0)                        /* normed */
                    + take(layers ? rows * x->qkv_n * b : 0)               /* qkv */
                    + take(layers ? rows * x->q_dim * b : 0)               /* q */
                    + take(layers ? rows * x->q_dim * b : 0)               /* attn */
                    + take(layers ? rows * 2 * x->inter_l * b : 0)         /* gu */
                    + take(layers ? rows * x->inter_l * b : 0)             /* act */
                    + take(layers ? x->hd / 2 * 4 : 0)                     /* inv_freq */
                    /* the decode attention's split-KV partials (fp32) and its tickets */
                    + take(layers ? batch * x->hq * splits * (x->hd + 4) * 4 : 0)
                    + take(layers ? batch * x->hq * 4 : 0)
                    + take(layers ? 4 : 0);                                /* gemm_rows_then_norm's ticket */
    g->workspace += take(work ? GEMM_WORKSPACE : 0);
    g->layers += pt->layers;
    g->has_head |= pt->has_head;
}

/* The parts exec_build_parts (harness/exec/cuda/cuda_exec_layout.c) makes of a sequential
 * placement: a device's contiguous stages merge into one part (GPU layers and
 * cpu-offloaded ones apart); embed joins the first part on its device, the head
 * the last, or each gets an empty part of its own. Returns the count, or -1 (message)
 * beyond cap, the executor's own limit on parts. */
static int sequential_parts(const struct placement *p, struct part *out, int cap)
{
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int stages = placement_stages(p, sd, sf, sc), n = 0;
    for (int i = 0; i < stages; i++) {
        int dev = placement_exec_device(sd[i]), host = sd[i] == PB_DEVICE_CPU, merged = 0;
        for (int k = 0; k < n && !merged; k++)
            if (out[k].device == dev && out[k].host == host && out[k].first + out[k].layers == sf[i]) {
                out[k].layers += sc[i];
                merged = 1;
            }
        if (!merged && n == cap) return pb_fail("placement has more than %d parts", cap);
        if (!merged) out[n++] = (struct part){.device = dev, .host = host, .first = sf[i], .layers = sc[i]};
    }
    for (int pass = 0; pass < 2; pass++) {   /* embed, then head */
        enum module_kind kind = pass ? MODULE_HEAD : MODULE_EMBED;
        int where = 0;
        for (int i = 0; i < p->n_modules; i++)
            if (p->modules[i].kind == kind) where = p->device[i];
        int dev = placement_exec_device(where), host = where == PB_DEVICE_CPU, found = -1;
        for (int k = 0; k < n; k++)
            if (out[k].device == dev && out[k].host == host && (found < 0 || pass)) found = k;
        if (found < 0 && n == cap) return pb_fail("placement has more than %d parts", cap);
        if (found < 0) {
            out[n] = (struct part){.device = dev, .host = host};
            found = n++;
        }
        if (pass) out[found].has_head = 1;
        else out[found].has_embed = 1;
    }
    return n;
}

/* Tensor parallel: every rank of group g (GPUs g*world .. g*world + world - 1) holds
 * its shard of the group's layers; the embedding is whole on the ranks of its group,
 * lm_head split over the ranks of its. One group of every GPU is tp as
 * exec_build_parts lays it out; more are hybrid's pipeline stages. */
static int group_parts(const struct placement *p, int world, struct part *out, int *head_group)
{
    int groups = p->n_devices / world, layers[PB_MAX_DEVICES] = {0}, embed_group = 0, n = 0;
    *head_group = 0;
    for (int i = 0; i < p->n_modules; i++) {
        int g = p->device[i] >= 0 && p->device[i] < groups ? p->device[i] : 0;
        if (p->modules[i].kind == MODULE_LAYER) layers[g]++;
        if (p->modules[i].kind == MODULE_EMBED) embed_group = g;
        if (p->modules[i].kind == MODULE_HEAD) *head_group = g;
    }
    for (int g = 0; g < groups; g++)
        for (int r = 0; r < world; r++)
            out[n++] = (struct part){.device = g * world + r, .layers = layers[g], .has_embed = g == embed_group,
                                     .has_head = g == *head_group};
    return n;
}

int memory_plan_compute(const struct model_spec *m, const struct placement *p, enum dtype dt,
                        const struct memory_shape *s, struct memory_plan *out)
{
    memset(out, 0, sizeof *out);
    if (s->batch < 1 || s->seq < 1 || s->decode_tokens < 0)
        return pb_fail("memory model: batch %d, seq %d, decode %d", s->batch, s->seq, s->decode_tokens);
    if (p->n_devices < 1 || p->n_devices > PB_MAX_DEVICES)
        return pb_fail("memory model: placement on %d devices", p->n_devices);
    int world = p->tensor_parallel ? (p->tp_degree > 0 ? p->tp_degree : p->n_devices) : 1, es = dtype_size(dt);
    struct shard x;
    PB_TRY(shard_make(m, world, &x));
    struct part parts[2 * PB_MAX_DEVICES + 2];
    int n = 0, head_group = 0;
    if (p->tensor_parallel) {
        n = group_parts(p, world, parts, &head_group);
    } else if ((n = sequential_parts(p, parts, (int)(sizeof parts / sizeof parts[0]))) < 0) {
        return PB_ERR;
    }
    out->n_devices = p->n_devices;
    for (int k = 0; k < n; k++)
        if (parts[k].device < out->n_devices)
            part_bytes(&parts[k], &x, es, s, &out->gpu[parts[k].device], &out->host_weights);
    /* The executor's own buffers (harness/exec/cuda/cuda_executor.c create_parts). */
    uint64_t rows = (uint64_t)s->batch * (uint64_t)s->seq;
    if (p->tensor_parallel && world > 1)   /* the head's group all-gathers the logits */
        for (int d = head_group * world; d < (head_group + 1) * world && d < out->n_devices; d++)
            out->gpu[d].comm += rows * (uint64_t)m->vocab * 2;
    if (!p->tensor_parallel && s->decode_tokens > 0) {
        for (int k = 0; k < n; k++)
            if (parts[k].has_head) out->gpu[parts[k].device].activations += (uint64_t)s->batch * 4;  /* d_next */
        out->gpu[0].activations += 4;   /* d_pos: a graph replay's decode position */
    }
    for (int d = 0; d < out->n_devices; d++) {
        struct device_memory *g = &out->gpu[d];
        g->peak = g->weights + g->kv + g->activations + g->workspace + g->comm;
    }
    return PB_OK;
}

uint64_t memory_kv_bytes_per_position(const struct model_spec *m, const struct placement *p, enum dtype dt, int d)
{
    struct memory_shape one = {.batch = 1, .seq = 1, .decode_tokens = 0};
    struct memory_plan mp;
    if (d < 0 || memory_plan_compute(m, p, dt, &one, &mp) != PB_OK || d >= mp.n_devices) return 0;
    int world = p->tensor_parallel ? (p->tp_degree > 0 ? p->tp_degree : p->n_devices) : 1;
    return (uint64_t)mp.gpu[d].layers * memory_kv_bytes_per_token(m, dt, world);
}

int64_t memory_free_bytes(const struct device_memory *g) { return (int64_t)g->budget - (int64_t)g->peak; }

static void set_budgets(struct memory_plan *mp, const struct machine *mc)
{
    for (int d = 0; d < mp->n_devices; d++) mp->gpu[d].budget = mc->gpu_memory[d];
}

/* The device furthest over its budget, -1 if all fit; -2: offloaded weights over the cpu budget. */
static int over_budget(const struct memory_plan *mp, const struct machine *mc)
{
    int worst = -1;
    for (int d = 0; d < mp->n_devices; d++)
        if (mp->gpu[d].budget && mp->gpu[d].peak > mp->gpu[d].budget &&
            (worst < 0 || memory_free_bytes(&mp->gpu[d]) < memory_free_bytes(&mp->gpu[worst])))
            worst = d;
    if (worst >= 0) return worst;
    if (mp->host_weights && mc->cpu_memory && mp->host_weights > mc->cpu_memory) return -2;
    return -1;
}

int memory_plan_check(struct memory_plan *mp, const struct machine *mc, const char *strategy,
                      const struct memory_shape *s)
{
    set_budgets(mp, mc);
    int d = over_budget(mp, mc);
    if (d == -2)
        return pb_fail("%s: %llu bytes (%.2f GiB) of offloaded weights exceed the cpu budget of %llu bytes "
                       "(%.2f GiB)", strategy, (unsigned long long)mp->host_weights, mp->host_weights / GIB,
                       (unsigned long long)mc->cpu_memory, mc->cpu_memory / GIB);
    if (d < 0) return PB_OK;
    const struct device_memory *g = &mp->gpu[d];
    uint64_t rest = g->activations + g->workspace + g->comm;
    return pb_fail("%s: GPU %d needs %llu bytes (%.2f GiB: %.2f weights, %.2f KV cache for %d layers x "
                   "batch %d x %d positions, %.2f activations, workspace and buffers) but its budget is %llu "
                   "bytes (%.2f GiB); use a smaller --batch, --seq or --decode, more GPUs, or another strategy",
                   strategy, d, (unsigned long long)g->peak, g->peak / GIB, g->weights / GIB, g->kv / GIB,
                   g->layers, s->batch, s->seq + s->decode_tokens, rest / GIB, (unsigned long long)g->budget,
                   g->budget / GIB);
}

int memory_fullest_device(const struct memory_plan *mp)
{
    int best = -1;
    for (int d = 0; d < mp->n_devices; d++) {
        const struct device_memory *g = &mp->gpu[d], *b = best >= 0 ? &mp->gpu[best] : NULL;
        int known = g->budget > 0 && (!b || b->budget > 0);
        if (!b || (known ? memory_free_bytes(g) < memory_free_bytes(b) : g->peak > b->peak)) best = d;
    }
    return best;
}

/* Whether the placement holds shape s within mc's budgets. */
static int fits(const struct model_spec *m, const struct placement *p, enum dtype dt,
                const struct memory_shape *s, const struct machine *mc)
{
    struct memory_plan mp;
    if (memory_plan_compute(m, p, dt, s, &mp) != PB_OK) return 0;
    set_budgets(&mp, mc);
    return over_budget(&mp, mc) == -1;
}

#define CAPACITY_MAX_BATCH (1 << 24)
#define CAPACITY_MAX_CONTEXT (1 << 24)   /* where a config gives no max_position_embeddings */

int memory_kv_capacity(const struct model_spec *m, const struct placement *p, enum dtype dt,
                       const struct memory_shape *s, const struct machine *mc, struct kv_capacity *out)
{
    memset(out, 0, sizeof *out);
    struct memory_plan probe;
    PB_TRY(memory_plan_compute(m, p, dt, s, &probe));   /* the shape itself is valid */
    /* Memory grows with context and with batch, so a bisection finds each edge. */
    int cap_ctx = m->max_position > 0 ? m->max_position : CAPACITY_MAX_CONTEXT;
    struct memory_shape t = *s;
    t.decode_tokens = 0;
    if (s->seq <= cap_ctx && fits(m, p, dt, &t, mc)) {
        int lo = s->seq, hi = cap_ctx;   /* lo fits; find the largest that does */
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            t.decode_tokens = mid - s->seq;
            if (fits(m, p, dt, &t, mc)) lo = mid;
            else hi = mid - 1;
        }
        out->max_context = lo;
        out->context_capped = lo == cap_ctx;
    }
    out->max_tokens = (uint64_t)s->batch * (uint64_t)out->max_context;
    t = *s;
    t.batch = 1;
    if (fits(m, p, dt, &t, mc)) {
        int lo = 1, hi = 2;   /* lo fits; hi does not (CAPACITY_MAX_BATCH + 1: taken as not fitting) */
        for (;; lo = hi, hi *= 2) {
            if (hi > CAPACITY_MAX_BATCH) {
                hi = CAPACITY_MAX_BATCH + 1;
                break;
            }
            t.batch = hi;
            if (!fits(m, p, dt, &t, mc)) break;
        }
        while (hi - lo > 1) {
            t.batch = lo + (hi - lo) / 2;
            if (fits(m, p, dt, &t, mc)) lo = t.batch;
            else hi = t.batch;
        }
        out->max_batch = lo;
    }
    return PB_OK;
}

int memory_check_point(const struct model_spec *m, const struct placement *p, enum dtype dt,
                       const struct memory_shape *s, const struct machine *mc, const char *strategy,
                       struct memory_plan *mp, struct kv_capacity *cap)
{
    memset(cap, 0, sizeof *cap);
    PB_TRY(memory_plan_compute(m, p, dt, s, mp));
    PB_TRY(memory_kv_capacity(m, p, dt, s, mc, cap));
    return memory_plan_check(mp, mc, strategy, s);
}
