/* The forward pass of a part: embedding, decoder layers (attention and MLP halves,
 * tensor-parallel aware), final norm + lm_head, greedy argmax. See llama.h. */
#include "attention.h"
#include "cuda_check.h"
#include "layer_kernels.h"
#include "llama_internal.h"

/* Row counts and bounds of a call against what the part was sized for. */
static int check_call(const struct llama_part *p, const struct llama_call *c)
{
    const struct llama_part_desc *d = &p->d;
    if (c->batch < 1 || c->seq < 1 || c->batch_offset < 0 || c->batch_offset + c->batch > d->max_batch)
        return pb_fail("llama call: sequences [%d, %d) of seq %d outside the part's %d", c->batch_offset,
                       c->batch_offset + c->batch, c->seq, d->max_batch);
    if ((size_t)(c->batch_offset + c->batch) * c->seq > (size_t)d->max_rows)
        return pb_fail("llama call: rows up to %d exceed the part's max_rows %d", (c->batch_offset + c->batch) * c->seq,
                       d->max_rows);
    if ((c->pos_device || c->pos_seq) && c->seq != 1)
        return pb_fail("llama call: device positions need seq 1 (decode)");
    if (!c->pos_device && (c->pos < 0 || c->pos + c->seq > d->max_context))
        return pb_fail("llama call: positions [%d, %d) exceed the KV cache of %d", c->pos, c->pos + c->seq,
                       d->max_context);
    return PB_OK;
}

/* One-token steps use the part's decode path (llama.h: the GEMV when max_batch is 1,
 * else cuBLASLt's decode class; the folded norms need the GEMV; the benchmark also
 * runs the tensor-core kernels), everything else cuBLASLt (algorithm class by prompt length, tuned at
 * the part's max_rows). The choice depends only on seq and the part's settings,
 * never on the call's rows, so a microbatch gets the bits the whole batch gets. */
static int decode_path(const struct llama_part *p) { return p->fold_norm ? DECODE_GEMV : p->decode_path; }

/* DECODE_TENSOR's choice, by the output columns of the product: wide products
 * (qkv, gate-up, lm_head of Llama-2-7B) have blocks enough for the shared-memory
 * stream and gain from its staged rows; at N = 4096 (o, down) the register
 * kernel was faster at 1, 16 and 64 rows on an H200 (docs/PERF.md). */
static int decode_streams(const struct llama_part *p, int n_cols)
{
    int path = decode_path(p);
    return path == DECODE_STREAM || (path == DECODE_TENSOR && n_cols >= 8192);
}

/* The class (gemm_class.h) a call's linears take through gemm_lt: a prompt's by its
 * length, a one-token step's the decode class on DECODE_LT; -1 where they take our
 * decode kernels. */
static int lt_class(const struct llama_part *p, const struct llama_call *c)
{
    if (c->seq != 1) return gemm_class_for_seq(c->seq);
    return decode_path(p) == DECODE_LT ? GEMM_CLASS_DECODE : -1;
}

static int linear(struct llama_part *p, const struct llama_call *c, const bf16 *x, const bf16 *w, bf16 *y, int m,
                  int n, int k, int accumulate, cudaStream_t s)
{
    int pdl = p->d.programmatic_launch;
    const int cls = lt_class(p, c);
    if (cls >= 0) return gemm_lt(&p->gemm, x, w, y, m, n, k, accumulate, cls, s, pdl);
    if (decode_path(p) == DECODE_GEMV) return gemm_rows(x, w, y, m, n, k, accumulate, s, pdl);
    if (decode_streams(p, n))
        return gemm_stream_cfg(x, w, y, m, n, k, accumulate, 0, gemm_stream_splits(n, k, 0), 0, p->decode_prefetch, s,
                               pdl);
    return gemm_skinny(x, w, y, m, n, k, accumulate, s, pdl);
}

/* act = SwiGLU(x W_gu^T) of a one-token step in one launch, on the decode path. */
static int linear_swiglu(struct llama_part *p, const bf16 *x, const bf16 *w, bf16 *act, int m, int inter, int k,
                         cudaStream_t s)
{
    int pdl = p->d.programmatic_launch;
    if (decode_path(p) == DECODE_GEMV) return gemm_rows_swiglu(x, w, act, m, inter, k, s, pdl);
    if (decode_path(p) == DECODE_LT) {  /* cuBLASLt has no SwiGLU epilogue: gemm_tma's, or the products then k_swiglu */
        if (gemm_tma_serves(&p->gemm, 2 * inter, k, GEMM_CLASS_DECODE))
            return gemm_tma_swiglu(x, w, act, m, inter, k, 0, s, pdl);
        PB_TRY(gemm_lt(&p->gemm, x, w, p->gu, m, 2 * inter, k, 0, GEMM_CLASS_DECODE, s, pdl));
        return k_swiglu(p->gu, act, m, inter, s, pdl);
    }
    if (decode_streams(p, 2 * inter))
        return gemm_stream_cfg(x, w, act, m, inter, k, 0, 1, gemm_stream_splits(inter, k, 1), 0, p->decode_prefetch, s,
                               pdl);
    return gemm_skinny_swiglu(x, w, act, m, inter, k, s, pdl);
}

/* One-token steps can fold each RMSNorm into the GEMV after it (gemm_rows_norm):
 * the same bits as k_rmsnorm + GEMV, one launch fewer, but every block of the GEMV
 * recomputes its rows' norms before its main loop, and on an H100 that cost more
 * than the launch (5.39 against 5.20 ms a step, docs/PERF.md),
 * so it is off unless p->fold_norm is set. It puts the whole step on the GEMV,
 * whose bits are not the tensor-core kernel's. */
static int fold_norm(const struct llama_part *p, const struct llama_call *c, int rows, int hidden)
{
    return p->fold_norm && c->seq == 1 && gemm_rows_norm_fits(rows, hidden);
}

static int layer_local(const struct llama_part *p, int layer, int *local)
{
    *local = layer - p->d.first_layer;
    if (*local < 0 || *local >= p->d.n_layers)
        return pb_fail("llama: layer %d is not on this part (layers [%d, %d))", layer, p->d.first_layer,
                       p->d.first_layer + p->d.n_layers);
    return PB_OK;
}

/* Pointers to a layer's weights; with cpu offload the wanted half (attention or
 * MLP) is first copied into the staging buffer on the call's stream. */
static int layer_weights(struct llama_part *p, int local, int mlp_half, cudaStream_t s, struct layer_w *w)
{
    const struct layer_layout *ll = &p->ll;
    bf16 *base = p->layers + (size_t)local * ll->elems;
    if (p->d.weights_on_host) {
        size_t from = mlp_half ? ll->attn_elems : 0, to = mlp_half ? ll->elems : ll->attn_elems;
        cudaCheck(cudaMemcpyAsync(p->staging + from, base + from, (to - from) * sizeof(bf16), cudaMemcpyDefault, s));
        base = p->staging;
    }
    w->attn_norm = base + ll->attn_norm;
    w->wqkv = base + ll->wqkv;
    w->wo = base + ll->wo;
    w->mlp_norm = base + ll->mlp_norm;
    w->wgu = base + ll->wgu;
    w->wdown = base + ll->wdown;
    return PB_OK;
}

int llama_embed(struct llama_part *p, const struct llama_call *c, cudaStream_t s)
{
    PB_TRY(check_call(p, c));
    if (!p->d.has_embed) return pb_fail("llama_embed: this part holds no embedding");
    size_t row0 = (size_t)c->batch_offset * c->seq;
    return k_embed(p->tokens + row0, p->embed, p->hidden + row0 * p->dims.hidden, c->batch * c->seq,
                   p->dims.hidden, p->dims.vocab, s, p->d.programmatic_launch);
}

/* What both halves of a layer start with: check the call, find the layer in this
 * part, make its weights (of one half) resident, and point at the call's rows. */
static int layer_begin(struct llama_part *p, int layer, int mlp_half, const struct llama_call *c,
                       cudaStream_t s, int *local, struct layer_w *w, bf16 **h)
{
    PB_TRY(check_call(p, c));
    PB_TRY(layer_local(p, layer, local));
    PB_TRY(layer_weights(p, *local, mlp_half, s, w));
    *h = p->hidden + (size_t)c->batch_offset * c->seq * p->dims.hidden;
    return PB_OK;
}

/* A half's last product, onto the residual h: whole layers add it in the GEMM
 * (h = bf16(h + x W^T), one rounding); a tensor-parallel rank writes its partial to
 * the same rows of tp_partial instead, for the all-reduce to add to h with one
 * rounding too. Adding it here and summing the ranks' hidden buffers would round
 * the residual twice, at the magnitude of |h| (issue 25).
 * Given `pending` (the caller runs a norm next, of weight next_norm):
 *  - a call whose class takes this product's K in slices (gemm.h:
 *    gemm_prepare_residual; a one-token step's decode class, or a prompt's short
 *    class on gemm_tma) leaves fp32 partials, added to h with one rounding by that
 *    norm (norm_rows), which saves a launch: *pending then holds the slice count;
 *  - a one-token step on the GEMV with the part's tail_norm has the GEMV's last
 *    block run that norm into p->normed (gemm_rows_then_norm, the same bits):
 *    *pending is then NORM_DONE;
 *  - else *pending is 0. Without `pending` the product is added whole at once. */
#define NORM_DONE (-1)

/* Whether the GEMV's last block may run the next norm of a whole part's residual:
 * its weights are resident (with cpu offload the next half's are not staged yet)
 * and nothing folds norms into the GEMV. */
static int tail_norm_fits(const struct llama_part *p, const struct llama_call *c, int rows)
{
    return p->tail_norm && c->seq == 1 && decode_path(p) == DECODE_GEMV && !p->fold_norm && !p->d.weights_on_host &&
           gemm_rows_then_norm_fits(rows, p->dims.hidden);
}

static int output_projection(struct llama_part *p, const struct llama_call *c, const bf16 *x, const bf16 *w,
                             bf16 *h, int rows, int k, cudaStream_t s, int *pending, const bf16 *next_norm)
{
    int H = p->dims.hidden;
    if (pending) *pending = 0;
    if (p->d.world == 1) {
        if (pending && next_norm && tail_norm_fits(p, c, rows)) {
            *pending = NORM_DONE;
            return gemm_rows_then_norm(x, w, h, rows, H, k, 1, next_norm, (float)p->m.rms_eps, p->normed,
                                       p->norm_ticket, s, p->d.programmatic_launch);
        }
        const int cls = lt_class(p, c), ks = cls >= 0 ? gemm_ksplit(&p->gemm, H, k, cls) : 0;
        if (!ks) return linear(p, c, x, w, h, rows, H, k, 1, s);
        PB_TRY(gemm_lt_partials(&p->gemm, x, w, rows, H, k, cls, s, p->d.programmatic_launch));
        if (pending) {
            *pending = ks;
            return PB_OK;
        }
        return k_add_partials(h, gemm_partials(&p->gemm), ks, gemm_partials_rows(&p->gemm, cls), rows, H, s,
                              p->d.programmatic_launch);
    }
    bf16 *partial = p->tp_partial + (h - p->hidden);
    return linear(p, c, x, w, partial, rows, H, k, 0, s);
}

/* normed = rmsnorm(h) * w, after adding the K slices of a product of call c that
 * left them pending (output_projection) to h: the bits of k_add_partials then
 * k_rmsnorm. */
static int norm_rows(struct llama_part *p, const struct llama_call *c, bf16 *h, int pending, const bf16 *w, int rows,
                     cudaStream_t s)
{
    const int H = p->dims.hidden, pdl = p->d.programmatic_launch;
    const float eps = (float)p->m.rms_eps;
    if (pending == NORM_DONE) return PB_OK;  /* the product before ran it (output_projection) */
    if (pending)
        return k_add_rmsnorm(h, gemm_partials(&p->gemm), pending, gemm_partials_rows(&p->gemm, lt_class(p, c)), w,
                             p->normed, rows, H, eps, s, pdl);
    return k_rmsnorm(h, 1, 0, w, p->normed, rows, H, eps, s, pdl);
}

/* The attention half of a layer. pending: the K slices (0: none) of the previous
 * product, still to be added to h by this half's norm; pending_out (NULL: add o at
 * once): where o's slices are left for the caller, which runs the MLP half next. */
static int attention_half(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s, int pending,
                          int *pending_out)
{
    int local;
    struct layer_w w;
    bf16 *h;
    PB_TRY(layer_begin(p, layer, 0, c, s, &local, &w, &h));
    const struct part_dims *x = &p->dims;
    int rows = c->batch * c->seq, H = x->hidden;
    float eps = (float)p->m.rms_eps;
    int pdl = p->d.programmatic_launch;
    if (fold_norm(p, c, rows, H)) {
        if (pending) return pb_fail("llama: a folded norm cannot add pending K slices");
        PB_TRY(gemm_rows_norm(h, w.attn_norm, eps, w.wqkv, p->qkv, rows, x->qkv_n, H, s, pdl));
    } else {
        PB_TRY(norm_rows(p, c, h, pending, w.attn_norm, rows, s));
        PB_TRY(linear(p, c, p->normed, w.wqkv, p->qkv, rows, x->qkv_n, H, 0, s));
    }
    size_t cache_off = (size_t)local * p->al.cache_layer_elems;
    struct attn_args aa = {p->q, p->k_cache + cache_off, p->v_cache + cache_off, p->attn,
                           c->batch, c->seq, c->batch_offset, c->pos, c->pos_device,
                           x->hq, x->hkv, x->hd, p->d.max_context, p->partials};
    aa.pdl = p->d.programmatic_launch;
    aa.pos_seq = c->pos_seq;
    if (c->seq == 1) {  /* the decode kernel ropes q and the new key itself */
        aa.qkv = p->qkv;
        aa.inv_freq = p->inv_freq;
        aa.counters = p->counters;
        aa.keys_per_block = p->decode_attn_keys;
        aa.warps_per_block = p->decode_attn_warps;
        aa.decode_stages = p->decode_attn_stages;
        aa.splits_per_block = p->decode_attn_per_block;
        PB_TRY(attn_decode(&aa, s));
    } else {
        struct rope_args ra = {p->qkv, p->q, p->k_cache + cache_off, p->v_cache + cache_off, p->inv_freq,
                               rows, c->seq, c->batch_offset, c->pos, c->pos_device,
                               x->hq, x->hkv, x->hd, p->d.max_context};
        ra.pdl = p->d.programmatic_launch;
        PB_TRY(k_rope_qkv(&ra, s));
        PB_TRY(attn_prefill(&aa, s));
    }
    return output_projection(p, c, p->attn, w.wo, h, rows, x->q_dim, s, pending_out, w.mlp_norm);
}

/* The MLP half; pending and pending_out as attention_half's. */
static int mlp_half(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s, int pending,
                    int *pending_out)
{
    int local;
    struct layer_w w;
    bf16 *h;
    PB_TRY(layer_begin(p, layer, 1, c, s, &local, &w, &h));
    const struct part_dims *x = &p->dims;
    int rows = c->batch * c->seq, H = x->hidden;
    float eps = (float)p->m.rms_eps;
    int pdl = p->d.programmatic_launch;
    if (fold_norm(p, c, rows, H)) {  /* norm, gate, up and SwiGLU in one GEMV, the same bits */
        if (pending) return pb_fail("llama: a folded norm cannot add pending K slices");
        PB_TRY(gemm_rows_swiglu_norm(h, w.mlp_norm, eps, w.wgu, p->act, rows, x->inter_l, H, s, pdl));
    } else if (c->seq == 1) {  /* one-token steps: gate, up and SwiGLU in one launch, the same bits */
        PB_TRY(norm_rows(p, c, h, pending, w.mlp_norm, rows, s));
        PB_TRY(linear_swiglu(p, p->normed, w.wgu, p->act, rows, x->inter_l, H, s));
    } else {
        PB_TRY(norm_rows(p, c, h, pending, w.mlp_norm, rows, s));
        if (gemm_tma_serves(&p->gemm, 2 * x->inter_l, H, lt_class(p, c))) {  /* SwiGLU fused */
            PB_TRY(gemm_tma_swiglu(p->normed, w.wgu, p->act, rows, x->inter_l, H, 0, s, pdl));
        } else {
            PB_TRY(linear(p, c, p->normed, w.wgu, p->gu, rows, 2 * x->inter_l, H, 0, s));
            PB_TRY(k_swiglu(p->gu, p->act, rows, x->inter_l, s, pdl));
        }
    }
    /* the next layer's norm, when the caller runs that layer next on this part */
    const bf16 *next_norm = pending_out && local + 1 < p->d.n_layers
                                ? p->layers + (size_t)(local + 1) * p->ll.elems + p->ll.attn_norm
                                : NULL;
    return output_projection(p, c, p->act, w.wdown, h, rows, x->inter_l, s, pending_out, next_norm);
}

int llama_attention(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s)
{
    return attention_half(p, layer, c, s, 0, NULL);
}

int llama_mlp(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s)
{
    return mlp_half(p, layer, c, s, 0, NULL);
}

/* The layers one after another on the part: a product's K slices left pending are
 * added by the next half's norm, and the last layer's at once, so h is whole when
 * this returns (the same bits as llama_attention then llama_mlp). */
int llama_layers(struct llama_part *p, int layer, int count, const struct llama_call *c, cudaStream_t s)
{
    if (p->d.world > 1)
        return pb_fail("llama_layers: a tensor-parallel part (world %d) needs llama_attention and llama_mlp with an "
                       "all-reduce after each", p->d.world);
    int pending = 0;
    for (int l = layer; l < layer + count; l++) {
        PB_TRY(attention_half(p, l, c, s, pending, &pending));
        PB_TRY(mlp_half(p, l, c, s, pending, l < layer + count - 1 ? &pending : NULL));
    }
    return PB_OK;
}

int llama_head(struct llama_part *p, const struct llama_call *c, cudaStream_t s)
{
    PB_TRY(check_call(p, c));
    if (!p->d.has_head) return pb_fail("llama_head: this part holds no head");
    const struct part_dims *x = &p->dims;
    int H = x->hidden;
    bf16 *head = p->head;
    if (p->d.weights_on_host) {
        cudaCheck(cudaMemcpyAsync(p->staging, head, p->hl.elems * sizeof(bf16), cudaMemcpyDefault, s));
        head = p->staging;
    }
    const bf16 *h = p->hidden + (size_t)c->batch_offset * c->seq * H;
    int rows;
    bf16 *logits;
    if (c->seq == 1) {
        rows = c->batch;
        logits = p->logits + (size_t)c->batch_offset * x->vocab_l;
        if (fold_norm(p, c, rows, H))
            return gemm_rows_norm(h, head + p->hl.norm, (float)p->m.rms_eps, head + p->hl.lm_head, logits, rows,
                                  x->vocab_l, H, s, p->d.programmatic_launch);
        PB_TRY(k_rmsnorm(h, 1, 0, head + p->hl.norm, p->normed, rows, H, (float)p->m.rms_eps, s,
                         p->d.programmatic_launch));
    } else if (c->last_only) {
        rows = c->batch;
        logits = p->logits + (size_t)c->batch_offset * x->vocab_l;
        PB_TRY(k_rmsnorm(h, c->seq, c->seq - 1, head + p->hl.norm, p->normed, rows, H, (float)p->m.rms_eps, s,
                         p->d.programmatic_launch));
    } else {
        rows = c->batch * c->seq;
        logits = p->logits + (size_t)c->batch_offset * c->seq * x->vocab_l;
        PB_TRY(k_rmsnorm(h, 1, 0, head + p->hl.norm, p->normed, rows, H, (float)p->m.rms_eps, s,
                         p->d.programmatic_launch));
    }
    return linear(p, c, p->normed, head + p->hl.lm_head, logits, rows, x->vocab_l, H, 0, s);
}

int llama_argmax(struct llama_part *p, const struct llama_call *c, int *d_next, cudaStream_t s)
{
    PB_TRY(check_call(p, c));
    if (!p->d.has_head) return pb_fail("llama_argmax: this part holds no head");
    int row0 = c->last_only ? c->batch_offset : c->batch_offset * c->seq + c->seq - 1;
    int step = c->last_only ? 1 : c->seq;
    return k_argmax(p->logits, 1, 0, p->dims.vocab_l, row0, step, c->batch, d_next + c->batch_offset, s,
                    p->d.programmatic_launch);
}

int llama_argmax_gathered(const void *gathered, int world, size_t rank_stride, int vocab_local,
                          const struct llama_call *c, int *d_next, cudaStream_t s)
{
    int row0 = c->last_only ? c->batch_offset : c->batch_offset * c->seq + c->seq - 1;
    int step = c->last_only ? 1 : c->seq;
    return k_argmax((const bf16 *)gathered, world, rank_stride, vocab_local, row0, step, c->batch,
                    d_next + c->batch_offset, s);
}

int llama_advance_pos(int *pos_device, int by, cudaStream_t s) { return k_advance_pos(pos_device, by, s); }
