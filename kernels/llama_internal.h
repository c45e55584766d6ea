/* What a llama_part holds, shared by the files of the kernel core (llama_part.cu,
 * llama_forward.cu, llama_weights.cu). Not for callers: they use llama.h. */
#ifndef PB_LLAMA_INTERNAL_H
#define PB_LLAMA_INTERNAL_H
#include <cuda_bf16.h>
#include "gemm.h"
#include "llama.h"

typedef __nv_bfloat16 bf16;

/* Sizes of the whole model and of this rank's shard. */
struct part_dims {
    int hidden, hd, heads, kv_heads, inter, vocab;
    int hq, hkv, inter_l, vocab_l;     /* local: query heads, kv heads, MLP columns, vocabulary rows */
    int q_head0, kv_head0, inter0, vocab0;  /* first global index of each local slice */
    int q_dim, kv_dim, qkv_n;          /* hq*hd, hkv*hd, q_dim + 2 kv_dim */
};

/* Element offsets inside one layer's weight block (each 256-byte aligned); the
 * attention half [0, attn_elems) precedes the MLP half [attn_elems, elems), so
 * cpu offload can stream each half separately. Same for the head block. */
struct layer_layout {
    size_t attn_norm, wqkv, wo, attn_elems, mlp_norm, wgu, wdown, elems;
};
struct head_layout {
    size_t norm, lm_head, elems;
};

/* Byte offsets of everything in the device arena. */
struct arena_layout {
    size_t embed, layers, head, staging;
    size_t k_cache, v_cache, hidden, tp_partial, tokens, logits;
    size_t normed, qkv, q, attn, gu, act;
    size_t inv_freq, partials, counters, norm_ticket, workspace;
    size_t total;
    /* host (pinned) block for cpu offload: embed | layers | head */
    size_t host_embed, host_layers, host_head, host_total;
    size_t cache_layer_elems;          /* max_batch * hkv * max_ctx * hd */
};

/* The kernels a one-token step's linear layers can run on (gemm.h): each gives its
 * own bits, the same for any row count. DECODE_TENSOR takes, per shape (never per
 * row count), the faster of the two tensor-core kernels; DECODE_LT is cuBLASLt's
 * decode class (one algorithm per shape, timed at the part's max_batch rows). */
enum decode_path { DECODE_GEMV, DECODE_SKINNY, DECODE_STREAM, DECODE_TENSOR, DECODE_LT };

struct layer_w {
    bf16 *attn_norm, *wqkv, *wo, *mlp_norm, *wgu, *wdown;
};

struct llama_part {
    struct model_spec m;
    struct llama_part_desc d;
    struct part_dims dims;
    struct layer_layout ll;
    struct head_layout hl;
    struct arena_layout al;
    unsigned char *arena;              /* device */
    unsigned char *host;               /* pinned weights when weights_on_host */
    unsigned char *host_dev;           /* the same memory as the device sees it */
    bf16 *embed, *layers, *head;       /* weights as kernels read them (device or mapped host) */
    bf16 *staging;                     /* offload: one layer or the head at a time */
    bf16 *k_cache, *v_cache, *hidden, *logits, *normed, *qkv, *q, *attn, *gu, *act;
    bf16 *tp_partial;                  /* world > 1: this rank's o / down products (llama.h), else NULL */
    int *tokens;
    float *inv_freq, *partials;
    int *counters;                     /* the decode attention's tickets (attention.h) */
    int *norm_ticket;                  /* gemm_rows_then_norm's ticket (gemm.h), zero between calls */
    struct gemm_ctx gemm;
    int gemm_ready;
    int fold_norm;                     /* one-token steps fold RMSNorm into the GEMV: 0 from creation,
                                        * as it measured slower (docs/PERF.md); the benchmark times it.
                                        * It implies the GEMV path (the fold is a GEMV prologue) */
    int tail_norm;                     /* one-token steps on the GEMV: o and down leave the next norm to
                                        * their last block (gemm_rows_then_norm): 0 from creation, as
                                        * it measured slower (docs/PERF.md); the benchmark times it */
    int decode_path;                   /* the kernel of one-token steps' linears (enum decode_path), set
                                        * at creation (llama.h says why); the benchmark switches it to
                                        * time every path on one part */
    int decode_attn_keys;              /* keys a block of the decode attention (attn_args.keys_per_block;
                                        * 0: its default); the benchmark times every setting */
    int decode_attn_warps;             /* its warps a block (attn_args.warps_per_block; 0: the key-a-lane
                                        * kernel). Both are set at creation from nothing (a constant:
                                        * the defaults), never from a call's batch, so a sequence's bits
                                        * are the same in every call and in every part of one run */
    int decode_attn_stages;            /* its copy stages (attn_args.decode_stages; 0: the register kernel)
                                        * and splits a block (splits_per_block): a constant, as above */
    int decode_attn_per_block;
    int decode_prefetch;               /* DECODE_STREAM: K tiles of each block's weights prefetched into L2
                                        * before pdl_wait (gemm_stream_cfg); same bits for any value */
};

/* One slice of a Hugging Face tensor that lands in a part: rows [row0, row0+rows)
 * and columns [col0, col0+cols) of the full [full_rows, full_cols] tensor, stored
 * contiguously at dst (device-visible). Norm weights are 1 x hidden. */
struct weight_piece {
    char name[96];
    int full_rows, full_cols;
    int row0, col0, rows, cols;
    bf16 *dst;
    int is_norm;                       /* a norm weight: 1-D on disk, ones when random */
};

#define PIECES_MAX 9
/* Pieces of layer `local` of the part (0 <= local < n_layers), of the embedding
 * (local == PIECES_EMBED) or of the head (local == PIECES_HEAD); returns the count. */
#define PIECES_EMBED (-1)
#define PIECES_HEAD (-2)
int part_pieces(const struct llama_part *p, int local, struct weight_piece out[PIECES_MAX]);

/* (Re)creates the part's GEMM context for calls of at most max_rows rows and
 * prepares its shapes, with the decode class timed at decode_rows when it is above
 * 1: creation passes d.max_rows and d.max_batch; the benchmark passes a prefill's
 * own rows or a decode step's batch, to time the algorithms a part sized for that
 * call would use. */
int part_gemm_setup(struct llama_part *p, int max_rows, int decode_rows);
int part_dims_make(const struct model_spec *m, const struct llama_part_desc *d, struct part_dims *out);
void part_layouts(const struct model_spec *m, const struct llama_part_desc *d, const struct part_dims *dims,
                  struct layer_layout *ll, struct head_layout *hl, struct arena_layout *al);
#endif
