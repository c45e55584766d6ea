/* A part of a Llama model on one device: its shard sizes, the exact layout of its
 * device memory, creation and teardown, and the map from Hugging Face tensor names
 * to the slices this part holds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "attention.h"
#include "cuda_check.h"
#include "llama_internal.h"

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
#define ELEM_ALIGN 128   /* elements: 256 bytes of bf16, what cuBLASLt likes */
#define BYTE_ALIGN 256

int part_dims_make(const struct model_spec *m, const struct llama_part_desc *d, struct part_dims *o)
{
    memset(o, 0, sizeof *o);
    int w = d->world, r = d->rank;
    if (w < 1 || r < 0 || r >= w) return pb_fail("llama part: rank %d of world %d", r, w);
    char why[128];
    if (model_tp_split_check(m, w, why, sizeof why)) return pb_fail("llama part: %d ranks do not divide %s", w, why);
    if (m->head_dim != 64 && m->head_dim != 128)
        return pb_fail("llama part: head_dim %d is not supported (64 or 128)", m->head_dim);
    if (m->hidden % 8 || (m->intermediate / w) % 8)
        return pb_fail("llama part: hidden %d and intermediate/world %d must be multiples of 8", m->hidden,
                       m->intermediate / w);
    o->hidden = m->hidden;
    o->hd = m->head_dim;
    o->heads = m->heads;
    o->kv_heads = m->kv_heads;
    o->inter = m->intermediate;
    o->vocab = m->vocab;
    o->hq = m->heads / w;
    o->q_head0 = r * o->hq;
    if (m->kv_heads >= w) {
        o->hkv = m->kv_heads / w;
        o->kv_head0 = r * o->hkv;
    } else {  /* replicate: the one kv head of this rank's query-head group */
        o->hkv = 1;
        o->kv_head0 = o->q_head0 / (m->heads / m->kv_heads);
    }
    o->inter_l = m->intermediate / w;
    o->inter0 = r * o->inter_l;
    o->vocab_l = m->vocab / w;
    o->vocab0 = r * o->vocab_l;
    o->q_dim = o->hq * o->hd;
    o->kv_dim = o->hkv * o->hd;
    o->qkv_n = o->q_dim + 2 * o->kv_dim;
    return PB_OK;
}

void part_layouts(const struct model_spec *m, const struct llama_part_desc *d, const struct part_dims *x,
                  struct layer_layout *ll, struct head_layout *hl, struct arena_layout *al)
{
    size_t H = (size_t)x->hidden, e = 0;
    ll->attn_norm = e; e = align_up(e + H, ELEM_ALIGN);
    ll->wqkv = e;      e = align_up(e + (size_t)x->qkv_n * H, ELEM_ALIGN);
    ll->wo = e;        e = align_up(e + H * x->q_dim, ELEM_ALIGN);
    ll->attn_elems = e;
    ll->mlp_norm = e;  e = align_up(e + H, ELEM_ALIGN);
    ll->wgu = e;       e = align_up(e + 2 * (size_t)x->inter_l * H, ELEM_ALIGN);
    ll->wdown = e;     e = align_up(e + H * x->inter_l, ELEM_ALIGN);
    ll->elems = e;
    hl->norm = 0;
    hl->lm_head = align_up(H, ELEM_ALIGN);
    hl->elems = align_up(hl->lm_head + (size_t)x->vocab_l * H, ELEM_ALIGN);

    size_t embed_b = d->has_embed ? align_up((size_t)x->vocab * H * 2, BYTE_ALIGN) : 0;
    size_t layers_b = (size_t)d->n_layers * ll->elems * 2;
    size_t head_b = d->has_head ? hl->elems * 2 : 0;
    size_t rows = (size_t)d->max_rows, b = 0;
#define TAKE(field, bytes) (al->field = b, b = align_up(b + (bytes), BYTE_ALIGN))
    memset(al, 0, sizeof *al);
    if (d->weights_on_host) {
        size_t biggest = d->n_layers ? ll->elems : 0;
        if (d->has_head && hl->elems > biggest) biggest = hl->elems;
        TAKE(staging, biggest * 2);
        al->host_embed = 0;
        al->host_layers = embed_b;
        al->host_head = embed_b + layers_b;
        al->host_total = embed_b + layers_b + head_b;
    } else {
        TAKE(embed, embed_b);
        TAKE(layers, layers_b);
        TAKE(head, head_b);
    }
    al->cache_layer_elems = (size_t)d->max_batch * x->hkv * d->max_context * x->hd;
    TAKE(k_cache, (size_t)d->n_layers * al->cache_layer_elems * 2);
    TAKE(v_cache, (size_t)d->n_layers * al->cache_layer_elems * 2);
    TAKE(hidden, rows * H * 2);
    /* tensor parallel: the o and down projections' partial products, which the
     * all-reduce adds to hidden (llama.h); a whole-layer part adds in the GEMM */
    TAKE(tp_partial, d->n_layers > 0 && d->world > 1 ? rows * H * 2 : 0);
    TAKE(tokens, rows * sizeof(int));
    TAKE(logits, d->has_head ? rows * x->vocab_l * 2 : 0);
    int layers = d->n_layers > 0, work = layers || d->has_head;
    TAKE(normed, work ? rows * H * 2 : 0);
    TAKE(qkv, layers ? rows * x->qkv_n * 2 : 0);
    TAKE(q, layers ? rows * x->q_dim * 2 : 0);
    TAKE(attn, layers ? rows * x->q_dim * 2 : 0);
    TAKE(gu, layers ? rows * 2 * x->inter_l * 2 : 0);
    TAKE(act, layers ? rows * x->inter_l * 2 : 0);
    TAKE(inv_freq, layers ? (size_t)x->hd / 2 * sizeof(float) : 0);
    TAKE(partials, layers ? attn_decode_partials_floats(d->max_batch, x->hq, x->hd, d->max_context) * sizeof(float) : 0);
    TAKE(counters, layers ? attn_decode_counters(d->max_batch, x->hq) * sizeof(int) : 0);
    TAKE(norm_ticket, layers ? sizeof(int) : 0);
    TAKE(workspace, work ? GEMM_WORKSPACE_BYTES : 0);
#undef TAKE
    al->total = b;
    (void)m;
}

uint64_t llama_part_bytes(const struct model_spec *m, const struct llama_part_desc *d)
{
    struct part_dims x;
    struct layer_layout ll;
    struct head_layout hl;
    struct arena_layout al;
    if (part_dims_make(m, d, &x) != PB_OK) return 0;
    part_layouts(m, d, &x, &ll, &hl, &al);
    return al.total;
}

/* inv_freq in fp32 as transformers computes it (default, and llama3 scaling as in
 * _compute_llama3_parameters), so positions rotate by the same angles. */
static void rope_inv_freq(const struct model_spec *m, float *out)
{
    int hd = m->head_dim;
    for (int i = 0; i < hd / 2; i++) {
        float expo = (float)(2 * i) / (float)hd;
        float inv = 1.0f / powf((float)m->rope_theta, expo);
        if (m->rope.kind == ROPE_LLAMA3) {
            float factor = (float)m->rope.factor, lo = (float)m->rope.low_freq_factor;
            float hi = (float)m->rope.high_freq_factor, old = (float)m->rope.original_max_position;
            float low_wavelen = old / lo, high_wavelen = old / hi;
            float wavelen = 2.0f * (float)M_PI / inv;
            float scaled = wavelen > low_wavelen ? inv / factor : inv;
            float smooth = (old / wavelen - lo) / (hi - lo);
            float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
            int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            inv = medium ? smoothed : scaled;
        }
        out[i] = inv;
    }
}

static int validate_desc(const struct model_spec *m, const struct llama_part_desc *d)
{
    if (d->first_layer < 0 || d->n_layers < 0 || d->first_layer + d->n_layers > m->layers)
        return pb_fail("llama part: layers [%d, %d) outside the model's %d", d->first_layer,
                       d->first_layer + d->n_layers, m->layers);
    if (d->max_batch < 1 || d->max_context < 1 || d->max_rows < 1)
        return pb_fail("llama part: max_batch %d, max_context %d, max_rows %d must be positive", d->max_batch,
                       d->max_context, d->max_rows);
    return PB_OK;
}

static int part_alloc(struct llama_part *p);

int llama_part_create(const struct model_spec *m, const struct llama_part_desc *d, struct llama_part **out)
{
    *out = NULL;
    PB_TRY(validate_desc(m, d));
    struct llama_part *p = (struct llama_part *)calloc(1, sizeof *p);
    if (!p) return pb_fail("llama part: out of host memory");
    p->m = *m;
    p->d = *d;
    p->fold_norm = 0;
    p->tail_norm = 0;
    /* Batched steps take cuBLASLt's decode class: at 16-64 rows its tiles offered for
     * 64 rows stream 80-90% of the copy rate where our stream and skinny kernels reach
     * 22-70% (H200, docs/PERF.md, issue 16's fourth session). */
    p->decode_path = d->max_batch == 1 ? DECODE_GEMV : DECODE_LT;
    p->decode_prefetch = 0;
    p->decode_attn_keys = 0;  /* the decode attention's defaults (llama_internal.h) */
    p->decode_attn_warps = 0;
    if (part_dims_make(m, d, &p->dims) != PB_OK) {
        free(p);
        return PB_ERR;
    }
    part_layouts(m, d, &p->dims, &p->ll, &p->hl, &p->al);
    if (part_alloc(p) != PB_OK) {
        llama_part_destroy(p);
        return PB_ERR;
    }
    *out = p;
    return PB_OK;
}

/* Device memory, pointers into it, rope table and GEMM algorithms. */
static int part_alloc(struct llama_part *p)
{
    const struct model_spec *m = &p->m;
    const struct llama_part_desc *d = &p->d;
    const struct arena_layout *al = &p->al;
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    if (al->total > free_b)
        return pb_fail("llama part on device %d needs %.2f GiB but %.2f GiB are free (of %.2f GiB)", d->device,
                       al->total / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0);
    cudaCheck(cudaMalloc((void **)&p->arena, al->total));
    unsigned char *a = p->arena;
    if (d->weights_on_host) {
        cudaCheck(cudaHostAlloc((void **)&p->host, al->host_total, cudaHostAllocMapped | cudaHostAllocPortable));
        cudaCheck(cudaHostGetDevicePointer((void **)&p->host_dev, p->host, 0));
        p->embed = d->has_embed ? (bf16 *)(p->host_dev + al->host_embed) : NULL;
        p->layers = (bf16 *)(p->host_dev + al->host_layers);
        p->head = d->has_head ? (bf16 *)(p->host_dev + al->host_head) : NULL;
        p->staging = (bf16 *)(a + al->staging);
    } else {
        p->embed = d->has_embed ? (bf16 *)(a + al->embed) : NULL;
        p->layers = (bf16 *)(a + al->layers);
        p->head = d->has_head ? (bf16 *)(a + al->head) : NULL;
    }
    p->k_cache = (bf16 *)(a + al->k_cache);
    p->v_cache = (bf16 *)(a + al->v_cache);
    p->hidden = (bf16 *)(a + al->hidden);
    p->tp_partial = d->n_layers > 0 && d->world > 1 ? (bf16 *)(a + al->tp_partial) : NULL;
    p->tokens = (int *)(a + al->tokens);
    p->logits = d->has_head ? (bf16 *)(a + al->logits) : NULL;
    p->normed = (bf16 *)(a + al->normed);
    p->qkv = (bf16 *)(a + al->qkv);
    p->q = (bf16 *)(a + al->q);
    p->attn = (bf16 *)(a + al->attn);
    p->gu = (bf16 *)(a + al->gu);
    p->act = (bf16 *)(a + al->act);
    p->inv_freq = (float *)(a + al->inv_freq);
    p->partials = (float *)(a + al->partials);
    p->counters = (int *)(a + al->counters);
    p->norm_ticket = (int *)(a + al->norm_ticket);
    /* The decode attention's counters and the norm's ticket must start at zero;
     * nothing else is ever read unwritten, but a zeroed arena keeps a bug's
     * symptoms stable. */
    cudaCheck(cudaMemset(p->arena, 0, al->total));

    const struct part_dims *x = &p->dims;
    if (d->n_layers) {
        float inv[256];
        rope_inv_freq(m, inv);
        cudaCheck(cudaMemcpy(p->inv_freq, inv, x->hd / 2 * sizeof(float), cudaMemcpyHostToDevice));
        PB_TRY(attn_setup());
    }
    return part_gemm_setup(p, d->max_rows, d->max_batch);
}

int part_gemm_setup(struct llama_part *p, int max_rows, int decode_rows)
{
    const struct llama_part_desc *d = &p->d;
    const struct part_dims *x = &p->dims;
    if (!d->n_layers && !d->has_head) return PB_OK;
    if (p->gemm_ready) gemm_destroy(&p->gemm);
    p->gemm_ready = 0;
    PB_TRY(gemm_init(&p->gemm, p->arena + p->al.workspace, max_rows));
    p->gemm_ready = 1;
    if (decode_rows > 1) PB_TRY(gemm_set_decode_rows(&p->gemm, decode_rows));
    if (d->n_layers) {
        /* o and down add into the residual; a tensor-parallel rank's go to the all-reduce whole */
        int (*residual)(struct gemm_ctx *, int, int) = d->world == 1 ? gemm_prepare_residual : gemm_prepare;
        PB_TRY(gemm_prepare(&p->gemm, x->qkv_n, x->hidden));
        PB_TRY(residual(&p->gemm, x->hidden, x->q_dim));
        PB_TRY(gemm_prepare(&p->gemm, 2 * x->inter_l, x->hidden));
        PB_TRY(residual(&p->gemm, x->hidden, x->inter_l));
    }
    if (d->has_head) PB_TRY(gemm_prepare(&p->gemm, x->vocab_l, x->hidden));
    return PB_OK;
}

void llama_part_destroy(struct llama_part *p)
{
    if (!p) return;
    if (p->gemm_ready) gemm_destroy(&p->gemm);
    if (p->arena) cudaFree(p->arena);
    if (p->host) cudaFreeHost(p->host);
    free(p);
}

void *llama_part_hidden(struct llama_part *p) { return p->hidden; }
void *llama_part_tp_partial(struct llama_part *p) { return p->tp_partial; }
void *llama_part_logits(struct llama_part *p) { return p->logits; }
int *llama_part_tokens(struct llama_part *p) { return p->tokens; }

static void piece(struct weight_piece *w, const char *name, int full_rows, int full_cols, int row0, int col0,
                  int rows, int cols, bf16 *dst, int is_norm)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    w->full_rows = full_rows;
    w->full_cols = full_cols;
    w->row0 = row0;
    w->col0 = col0;
    w->rows = rows;
    w->cols = cols;
    w->dst = dst;
    w->is_norm = is_norm;
}

int part_pieces(const struct llama_part *p, int local, struct weight_piece out[PIECES_MAX])
{
    const struct part_dims *x = &p->dims;
    int H = x->hidden, hd = x->hd;
    char n[96];
    if (local == PIECES_EMBED) {
        piece(&out[0], "model.embed_tokens.weight", x->vocab, H, 0, 0, x->vocab, H, p->embed, 0);
        return 1;
    }
    if (local == PIECES_HEAD) {
        piece(&out[0], "model.norm.weight", 1, H, 0, 0, 1, H, p->head + p->hl.norm, 1);
        const char *lm = p->m.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
        piece(&out[1], lm, x->vocab, H, x->vocab0, 0, x->vocab_l, H, p->head + p->hl.lm_head, 0);
        return 2;
    }
    int L = p->d.first_layer + local;
    bf16 *base = p->layers + (size_t)local * p->ll.elems;
    const struct layer_layout *ll = &p->ll;
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", L, suffix), n)
    piece(&out[0], NAME("input_layernorm.weight"), 1, H, 0, 0, 1, H, base + ll->attn_norm, 1);
    piece(&out[1], NAME("self_attn.q_proj.weight"), x->heads * hd, H, x->q_head0 * hd, 0, x->q_dim, H,
          base + ll->wqkv, 0);
    piece(&out[2], NAME("self_attn.k_proj.weight"), x->kv_heads * hd, H, x->kv_head0 * hd, 0, x->kv_dim, H,
          base + ll->wqkv + (size_t)x->q_dim * H, 0);
    piece(&out[3], NAME("self_attn.v_proj.weight"), x->kv_heads * hd, H, x->kv_head0 * hd, 0, x->kv_dim, H,
          base + ll->wqkv + (size_t)(x->q_dim + x->kv_dim) * H, 0);
    piece(&out[4], NAME("self_attn.o_proj.weight"), H, x->heads * hd, 0, x->q_head0 * hd, H, x->q_dim,
          base + ll->wo, 0);
    piece(&out[5], NAME("post_attention_layernorm.weight"), 1, H, 0, 0, 1, H, base + ll->mlp_norm, 1);
    piece(&out[6], NAME("mlp.gate_proj.weight"), x->inter, H, x->inter0, 0, x->inter_l, H, base + ll->wgu, 0);
    piece(&out[7], NAME("mlp.up_proj.weight"), x->inter, H, x->inter0, 0, x->inter_l, H,
          base + ll->wgu + (size_t)x->inter_l * H, 0);
    piece(&out[8], NAME("mlp.down_proj.weight"), H, x->inter, 0, x->inter0, H, x->inter_l, base + ll->wdown, 0);
#undef NAME
    return 9;
}
