/* The small kernels of a Llama layer. Each works row by row with a fixed order of
 * arithmetic inside a row, so a row's result never depends on the other rows of
 * the call (microbatching must not change a bit). Rows are call-local unless a
 * kernel says otherwise; every function launches on stream s and checks it. */
#ifndef PB_LAYER_KERNELS_H
#define PB_LAYER_KERNELS_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>

/* pdl: launch with programmatic dependent launch (pdl.h); the kernels are written
 * for it either way. */
typedef __nv_bfloat16 bf16;

/* y[r] = table[token[r]] for r < rows; tokens outside [0, vocab) read row 0. */
int k_embed(const int *tokens, const bf16 *table, bf16 *y, int rows, int hidden, int vocab, cudaStream_t s,
            int pdl = 0);

/* y[r] = rmsnorm(x[r * in_step + in_offset]) * w, as transformers rounds it:
 * bf16(bf16(x * rsqrt(mean(x^2) + eps)) * w). hidden a multiple of 8. */
int k_rmsnorm(const bf16 *x, int in_step, int in_offset, const bf16 *w, bf16 *y, int rows, int hidden, float eps,
              cudaStream_t s, int pdl = 0);

/* A residual product's K slices (gemm_lt_partials) onto h: h[r] = bf16(p_0[r] + p_1[r]
 * + ... + p_{ks-1}[r] + h[r]), the slices added in order in fp32, one rounding.
 * Slice i of row r is part + (i * slice_rows + r) * hidden. */
int k_add_partials(bf16 *h, const float *part, int ks, int slice_rows, int rows, int hidden, cudaStream_t s,
                   int pdl = 0);
/* k_add_partials, then y = rmsnorm(h) * w of the new h, in one launch: the bits of
 * k_add_partials followed by k_rmsnorm. */
int k_add_rmsnorm(bf16 *h, const float *part, int ks, int slice_rows, const bf16 *w, bf16 *y, int rows, int hidden,
                  float eps, cudaStream_t s, int pdl = 0);

/* Rotary embedding on q and k of the fused qkv rows [rows, (hq + 2 hkv) * hd]:
 * roped q -> q_out [rows, hq * hd]; roped k and plain v -> the layer's cache
 * [max_batch][hkv][max_ctx][hd] at sequence batch_offset + r / seq and position
 * pos + r % seq, pos read from pos_dev when it is not NULL. */
struct rope_args {
    const bf16 *qkv;
    bf16 *q_out, *k_cache, *v_cache;
    const float *inv_freq;  /* [hd / 2] */
    int rows, seq, batch_offset, pos;
    const int *pos_dev;
    int hq, hkv, hd, max_ctx;
    int pdl;                /* programmatic launch (pdl.h) */
};
int k_rope_qkv(const struct rope_args *a, cudaStream_t s);

/* act[r][j] = silu(gu[r][j]) * gu[r][inter + j], rounded as transformers does. */
int k_swiglu(const bf16 *gu, bf16 *act, int rows, int inter, cudaStream_t s, int pdl = 0);

/* Greedy next token of `batch` rows: row b of the logits is
 * logits + (row0 + b * row_step) * vocab_local in each of `slabs` slabs spaced
 * slab_stride elements apart (tensor-parallel ranks' vocabulary slices, slab w
 * holding ids [w * vocab_local, (w + 1) * vocab_local)). Ties go to the lowest id,
 * as torch.argmax. Writes next[b]. */
int k_argmax(const bf16 *logits, int slabs, size_t slab_stride, int vocab_local, int row0, int row_step,
             int batch, int *next, cudaStream_t s, int pdl = 0);

/* *pos += by, on the device (for decode steps replayed from a CUDA graph). */
int k_advance_pos(int *pos, int by, cudaStream_t s, int pdl = 0);
#endif
