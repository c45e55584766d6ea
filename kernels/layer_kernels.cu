/* The small kernels of a Llama layer; see layer_kernels.h. */
#include "layer_kernels.h"
#include "cuda_check.h"
#include "pdl.h"
#include "rope.cuh"
#include "row_norm.cuh"

__global__ void embed_kernel(const int *tokens, const bf16 *table, bf16 *y, int hidden, int vocab)
{
    pdl_wait();  /* first: see pdl.h */
    pdl_trigger();
    int r = blockIdx.x;
    int t = tokens[r];
    if (t < 0 || t >= vocab) t = 0;
    const uint4 *src = (const uint4 *)(table + (size_t)t * hidden);
    uint4 *dst = (uint4 *)(y + (size_t)r * hidden);
    for (int i = threadIdx.x; i < hidden / 8; i += blockDim.x) dst[i] = src[i];
}

int k_embed(const int *tokens, const bf16 *table, bf16 *y, int rows, int hidden, int vocab, cudaStream_t s, int pdl)
{
    if (rows <= 0) return PB_OK;
    cudaCheck(pdl_launch(embed_kernel, dim3(rows), dim3(128), 0, s, pdl, tokens, table, y, hidden, vocab));
    return PB_OK;
}

/* A thread's first NORM_HELD chunks of a row (rows of up to 8192 values at 256
 * threads) and of the norm weight stay in registers between the sum of squares and
 * the scaling; the weight's are loaded before pdl_wait, as no kernel writes weights
 * (pdl.h), so the norm's two dependent trips to memory become one. The sums are
 * row_inv_rms's: chunk i = thread + c * blockDim in ascending c, then the rest. */
#define NORM_HELD 4

template <int HELD = NORM_HELD>
__device__ __forceinline__ void norm_weights_held(const uint4 *wr, int n8, uint4 wv[HELD])
{
#pragma unroll
    for (int c = 0; c < HELD; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n8) wv[c] = wr[i];
    }
}

/* y = norm_apply8 of the row: the held chunks from registers, the rest from xr. */
template <int HELD = NORM_HELD>
__device__ __forceinline__ void norm_store_held(const uint4 xv[HELD], const uint4 wv[HELD], const uint4 *xr,
                                                const uint4 *wr, uint4 *yr, int n8, float inv)
{
#pragma unroll
    for (int c = 0; c < HELD; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n8) yr[i] = norm_apply8(xv[c], wv[c], inv);
    }
    for (int i = threadIdx.x + HELD * blockDim.x; i < n8; i += blockDim.x) yr[i] = norm_apply8(xr[i], wr[i], inv);
}

/* A thread's share of a row's sum of squares over its chunks get(i), i = thread,
 * thread + blockDim, ... in order; the first NORM_HELD are kept in xv. */
template <int HELD = NORM_HELD, class Get>
__device__ __forceinline__ float norm_row_ss(Get get, int n8, uint4 xv[HELD])
{
    float ss = 0.0f;
#pragma unroll
    for (int c = 0; c < HELD; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n8) {
            xv[c] = get(i);
            ss = norm_ss8(xv[c], ss);
        }
    }
    for (int i = threadIdx.x + HELD * blockDim.x; i < n8; i += blockDim.x) ss = norm_ss8(get(i), ss);
    return ss;
}

/* HELD 2 covers rows of up to 4096 values in registers: 50 registers against
 * NORM_HELD's 80 (ptxas), so five blocks share an SM instead of three, and a
 * prompt's many-row norms, bound by the bytes in flight, run 18% faster (docs/PERF.md).
 * The held chunks only cache the row, so the bits are the same. */
template <int HELD>
__global__ void __launch_bounds__(NORM_THREADS, HELD == 2 ? 4 : 1)
rmsnorm_kernel(const bf16 *x, int in_step, int in_offset, const bf16 *w, bf16 *y, int hidden, float eps)
{
    __shared__ float red[32];
    const int r = blockIdx.x, n8 = hidden / 8;
    const uint4 *xr = (const uint4 *)(x + ((size_t)r * in_step + in_offset) * hidden);
    const uint4 *wr = (const uint4 *)w;
    uint4 *yr = (uint4 *)(y + (size_t)r * hidden);
    uint4 wv[HELD], xv[HELD];
    norm_weights_held<HELD>(wr, n8, wv);
    pdl_wait();  /* before the row is read: see pdl.h */
    pdl_trigger();
    const float ss = norm_row_ss<HELD>([&](int i) { return xr[i]; }, n8, xv);
    norm_store_held<HELD>(xv, wv, xr, wr, yr, n8, norm_inv_rms(ss, hidden, eps, red));
}

int k_rmsnorm(const bf16 *x, int in_step, int in_offset, const bf16 *w, bf16 *y, int rows, int hidden, float eps,
              cudaStream_t s, int pdl)
{
    if (hidden % 8) return pb_fail("rmsnorm: hidden size %d is not a multiple of 8", hidden);
    if (rows <= 0) return PB_OK;
    if (hidden / 8 <= 2 * NORM_THREADS)
        cudaCheck(pdl_launch(rmsnorm_kernel<2>, dim3(rows), dim3(NORM_THREADS), 0, s, pdl, x, in_step, in_offset, w, y,
                             hidden, eps));
    else
        cudaCheck(pdl_launch(rmsnorm_kernel<NORM_HELD>, dim3(rows), dim3(NORM_THREADS), 0, s, pdl, x, in_step,
                             in_offset, w, y, hidden, eps));
    return PB_OK;
}

/* Eight values of row r from column 8 i: bf16(sum of the slices in order + h). */
__device__ __forceinline__ uint4 add_slices8(const bf16 *h, const float *part, int ks, size_t slice_stride, int i)
{
    float f[8];
    norm_unpack8(((const uint4 *)h)[i], f);
    float acc[8];
    const float4 *p0 = (const float4 *)part + 2 * i;
    const float4 a = p0[0], b = p0[1];
    acc[0] = a.x, acc[1] = a.y, acc[2] = a.z, acc[3] = a.w, acc[4] = b.x, acc[5] = b.y, acc[6] = b.z, acc[7] = b.w;
    for (int sl = 1; sl < ks; sl++) {
        const float4 *q = (const float4 *)(part + sl * slice_stride) + 2 * i;
        const float4 c = q[0], d = q[1];
        acc[0] += c.x, acc[1] += c.y, acc[2] += c.z, acc[3] += c.w, acc[4] += d.x, acc[5] += d.y, acc[6] += d.z,
            acc[7] += d.w;
    }
#pragma unroll
    for (int j = 0; j < 8; j++) f[j] = acc[j] + f[j];
    return norm_pack8(f);
}

/* One block a row. With w the norm follows: the sum of squares over the new bf16
 * values in row_inv_rms's order (thread i takes chunks i, i + blockDim, ...), so the
 * bits are k_rmsnorm's on the new row. */
__global__ void __launch_bounds__(NORM_THREADS)
add_partials_kernel(bf16 *h, const float *part, int ks, int slice_rows, const bf16 *w, bf16 *y, int hidden, float eps)
{
    __shared__ float red[32];
    const int r = blockIdx.x, n8 = hidden / 8;
    bf16 *hr = h + (size_t)r * hidden;
    const float *pr = part + (size_t)r * hidden;
    const size_t slice_stride = (size_t)slice_rows * hidden;
    const uint4 *wr = (const uint4 *)w;
    uint4 wv[NORM_HELD], xv[NORM_HELD];
    if (w) norm_weights_held(wr, n8, wv);
    pdl_wait();  /* before the row is read: see pdl.h */
    pdl_trigger();
    const float ss = norm_row_ss([&](int i) {
        const uint4 v = add_slices8(hr, pr, ks, slice_stride, i);
        ((uint4 *)hr)[i] = v;
        return v;
    }, n8, xv);
    if (!w) return;
    norm_store_held(xv, wv, (const uint4 *)hr, wr, (uint4 *)(y + (size_t)r * hidden), n8,
                    norm_inv_rms(ss, hidden, eps, red));
}

static int add_partials(bf16 *h, const float *part, int ks, int slice_rows, const bf16 *w, bf16 *y, int rows,
                        int hidden, float eps, cudaStream_t s, int pdl)
{
    if (hidden % 8) return pb_fail("add_partials: hidden size %d is not a multiple of 8", hidden);
    if (ks < 1 || rows > slice_rows) return pb_fail("add_partials: %d slices of %d rows for %d rows", ks, slice_rows, rows);
    if (rows <= 0) return PB_OK;
    cudaCheck(pdl_launch(add_partials_kernel, dim3(rows), dim3(NORM_THREADS), 0, s, pdl, h, part, ks, slice_rows, w, y,
                         hidden, eps));
    return PB_OK;
}

int k_add_partials(bf16 *h, const float *part, int ks, int slice_rows, int rows, int hidden, cudaStream_t s, int pdl)
{
    return add_partials(h, part, ks, slice_rows, NULL, NULL, rows, hidden, 0.0f, s, pdl);
}

int k_add_rmsnorm(bf16 *h, const float *part, int ks, int slice_rows, const bf16 *w, bf16 *y, int rows, int hidden,
                  float eps, cudaStream_t s, int pdl)
{
    if (!w || !y) return pb_fail("k_add_rmsnorm: the norm weight and output are needed");
    return add_partials(h, part, ks, slice_rows, w, y, rows, hidden, eps, s, pdl);
}

/* One block per row; the row's cos and sin (one position) go to shared memory
 * first, then a thread takes 8 rotation pairs (i, i + hd/2) of a q or k head with
 * 16-byte loads, then v is copied. rope.cuh holds the arithmetic and its rounding. */
#define ROPE_MAX_HALF 128
__global__ void rope_qkv_kernel(struct rope_args a)
{
    __shared__ float cs_tab[ROPE_MAX_HALF], sn_tab[ROPE_MAX_HALF];
    pdl_wait();  /* first: see pdl.h */
    pdl_trigger();
    int r = blockIdx.x;
    int b = r / a.seq, t = r % a.seq;
    int pos = (a.pos_dev ? *a.pos_dev : a.pos) + t;
    if (pos >= a.max_ctx) return;  /* the host checks; a graph replay past the cache does nothing */
    int half = a.hd / 2, chunks = half / 8;
    for (int i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos, a.inv_freq[i], &cs_tab[i], &sn_tab[i]);
    __syncthreads();
    int qkv_n = (a.hq + 2 * a.hkv) * a.hd;
    const bf16 *row = a.qkv + (size_t)r * qkv_n;
    size_t seq_base = (size_t)(a.batch_offset + b) * a.hkv;
    int work = (a.hq + a.hkv) * chunks;
    for (int p = threadIdx.x; p < work; p += blockDim.x) {
        int head = p / chunks, i0 = (p % chunks) * 8;
        const bf16 *src = row + head * a.hd;
        float x1[8], x2[8], o1[8], o2[8];
        norm_unpack8(*(const uint4 *)(src + i0), x1);
        norm_unpack8(*(const uint4 *)(src + i0 + half), x2);
#pragma unroll
        for (int j = 0; j < 8; j++) rope_rotate(x1[j], x2[j], cs_tab[i0 + j], sn_tab[i0 + j], &o1[j], &o2[j]);
        bf16 *dst;
        if (head < a.hq) {
            dst = a.q_out + (size_t)r * a.hq * a.hd + head * a.hd;
        } else {
            dst = a.k_cache + ((seq_base + head - a.hq) * a.max_ctx + pos) * a.hd;
        }
        *(uint4 *)(dst + i0) = norm_pack8(o1);
        *(uint4 *)(dst + i0 + half) = norm_pack8(o2);
    }
    const uint4 *v = (const uint4 *)(row + (a.hq + a.hkv) * a.hd);
    int vchunks = a.hd / 8;
    for (int e = threadIdx.x; e < a.hkv * vchunks; e += blockDim.x) {
        int kh = e / vchunks, d = e % vchunks;
        *(uint4 *)(a.v_cache + ((seq_base + kh) * a.max_ctx + pos) * a.hd + d * 8) = v[e];
    }
}

int k_rope_qkv(const struct rope_args *a, cudaStream_t s)
{
    if (a->hd % 16 || a->hd / 2 > ROPE_MAX_HALF)
        return pb_fail("rope: head_dim %d (a multiple of 16, at most %d)", a->hd, 2 * ROPE_MAX_HALF);
    if (a->rows <= 0) return PB_OK;
    cudaCheck(pdl_launch(rope_qkv_kernel, dim3(a->rows), dim3(256), 0, s, a->pdl, *a));
    return PB_OK;
}

__global__ void swiglu_kernel(const bf16 *gu, bf16 *act, int inter)
{
    pdl_wait();  /* first: see pdl.h */
    pdl_trigger();
    int r = blockIdx.y;
    const uint4 *g = (const uint4 *)(gu + (size_t)r * 2 * inter);
    const uint4 *u = (const uint4 *)(gu + (size_t)r * 2 * inter + inter);
    uint4 *o = (uint4 *)(act + (size_t)r * inter);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inter / 8; i += gridDim.x * blockDim.x) {
        float gf[8], uf[8];
        norm_unpack8(g[i], gf);
        norm_unpack8(u[i], uf);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float silu = __bfloat162float(__float2bfloat16(gf[j] / (1.0f + expf(-gf[j]))));
            gf[j] = silu * uf[j];
        }
        o[i] = norm_pack8(gf);
    }
}

int k_swiglu(const bf16 *gu, bf16 *act, int rows, int inter, cudaStream_t s, int pdl)
{
    if (inter % 8) return pb_fail("swiglu: intermediate size %d is not a multiple of 8", inter);
    if (rows <= 0) return PB_OK;
    int blocks = (inter / 8 + 255) / 256;
    cudaCheck(pdl_launch(swiglu_kernel, dim3(blocks, rows), dim3(256), 0, s, pdl, gu, act, inter));
    return PB_OK;
}

/* Keep (v, id) if it beats (*bv, *bi): larger, or equal with a lower id; the first
 * NaN is kept only while nothing else is, so a NaN row still gets an id. */
__device__ __forceinline__ void argmax_take(float v, int id, float *bv, int *bi)
{
    if (v > *bv || (v == *bv && id < *bi) || (*bi == 0x7fffffff && v != v)) {
        *bv = v;
        *bi = id;
    }
}

__global__ void argmax_kernel(const bf16 *logits, int slabs, size_t slab_stride, int vl, int row0, int row_step,
                              int *next)
{
    pdl_wait();  /* first: see pdl.h */
    pdl_trigger();
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    int b = blockIdx.x;
    size_t row = (size_t)(row0 + b * row_step) * vl;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int w = 0; w < slabs; w++) {
        const bf16 *l = logits + w * slab_stride + row;
        if (vl % 8 == 0 && (uintptr_t)l % 16 == 0) {  /* 16-byte loads: the row in a few rounds */
            for (int i = threadIdx.x; i < vl / 8; i += blockDim.x) {
                float f[8];
                norm_unpack8(((const uint4 *)l)[i], f);
#pragma unroll
                for (int j = 0; j < 8; j++) argmax_take(f[j], w * vl + 8 * i + j, &bv, &bi);
            }
        } else {
            for (int i = threadIdx.x; i < vl; i += blockDim.x) {
                argmax_take(__bfloat162float(l[i]), w * vl + i, &bv, &bi);
            }
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, off);
        int oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        best_v[warp] = bv;
        best_i[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) {
                bv = best_v[w];
                bi = best_i[w];
            }
        next[b] = bi == 0x7fffffff ? 0 : bi;
    }
}

int k_argmax(const bf16 *logits, int slabs, size_t slab_stride, int vocab_local, int row0, int row_step, int batch,
             int *next, cudaStream_t s, int pdl)
{
    if (batch <= 0) return PB_OK;
    cudaCheck(pdl_launch(argmax_kernel, dim3(batch), dim3(1024), 0, s, pdl, logits, slabs, slab_stride, vocab_local, row0,
                         row_step, next));
    return PB_OK;
}

__global__ void advance_pos_kernel(int *pos, int by)
{
    pdl_wait();
    *pos += by;
}

int k_advance_pos(int *pos, int by, cudaStream_t s, int pdl)
{
    cudaCheck(pdl_launch(advance_pos_kernel, dim3(1), dim3(1), 0, s, pdl, pos, by));
    return PB_OK;
}
