/* What the attention kernels share (attention.cu: prefill and the key-a-lane
 * decode kernel; attention_decode_spread.cu: the decode kernel that spreads a key
 * over lanes): the score's rounding, the split count, the layout of the decode
 * partials, the rope of the query and new key, the store of the new key and value,
 * and the ticket that picks the block that combines. One definition, so every
 * decode kernel writes the cache bits k_rope_qkv writes. */
#ifndef PB_ATTENTION_COMMON_CUH
#define PB_ATTENTION_COMMON_CUH
#include <cuda_bf16.h>
#include "attention.h"
#include "rope.cuh"
#include "pdl.h"
#include "last_block.cuh"

#define LOG2E 1.4426950408889634f

/* A score as transformers' eager attention has it (the q.k product rounded to bf16,
 * then scaled and rounded again), in log2 units for exp2. */
__device__ __forceinline__ float score_log2(float dot, float scale)
{
    float s = __bfloat162float(__float2bfloat16(dot));
    return __bfloat162float(__float2bfloat16(s * scale)) * LOG2E;
}

/* Blocks of the decode kernel over `keys` keys, `chunk` keys a block. */
__host__ __device__ static inline int decode_splits(int keys, int chunk) { return (keys + chunk - 1) / chunk; }

/* The splits a decode launch covers a head at `chunk` keys a block: the cache's
 * whole length when the position is on the device (a graph replays the launch at
 * every step), else the host position's keys (which bound pos_seq's). */
static inline int decode_launch_splits(const struct attn_args *a, int chunk)
{
    return decode_splits(a->pos_dev ? a->max_ctx : a->pos + 1, chunk);
}

/* What a decode block reads of its sequence b, head h and split: the position (each
 * sequence's own in serving, else the device word a kernel of the previous step
 * wrote, else the host's), whether the block has keys (the host checks pos; a
 * graph replay past the cache does nothing), and its kv head's cache rows. */
struct decode_seq {
    int pos, kv_len, key0;
    bool active;
    __nv_bfloat16 *kc, *vc;
};
template <int D>
__device__ __forceinline__ decode_seq decode_seq_of(const attn_args &a, int b, int h, int split, int chunk)
{
    decode_seq q;
    q.pos = a.pos_seq ? a.pos_seq[a.batch_offset + b] : a.pos_dev ? *a.pos_dev : a.pos;
    q.kv_len = q.pos + 1;
    q.key0 = split * chunk;
    q.active = q.pos >= 0 && q.pos < a.max_ctx && q.key0 < q.kv_len;
    const int kvh = h / (a.hq / a.hkv);
    const size_t cache_off = ((size_t)(a.batch_offset + b) * a.hkv + kvh) * a.max_ctx * D;
    q.kc = a.k_cache + cache_off;
    q.vc = a.v_cache + cache_off;
    return q;
}

/* The largest of every thread's mx in the block (WARPS warps, each a full 32), through
 * cmax[WARPS] in shared memory; every thread gets it. */
template <int WARPS>
__device__ __forceinline__ float decode_block_max(float mx, float *cmax)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    if ((threadIdx.x & 31) == 0) cmax[threadIdx.x >> 5] = mx;
    __syncthreads();
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < WARPS; w++) m = fmaxf(m, cmax[w]);
    return m;
}

/* The block's max and sum over its warps' (m, l), in warp order; a warp past the
 * last key has max -inf and adds nothing. */
template <int WARPS>
__device__ __forceinline__ void decode_block_max_sum(const float *wm, const float *wl, float *M, float *L)
{
    float mx = -INFINITY, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, wm[w]);
#pragma unroll
    for (int w = 0; w < WARPS; w++) sum += wm[w] == -INFINITY ? 0.0f : wl[w] * exp2f(wm[w] - mx);
    *M = mx;
    *L = sum;
}

/* Dim d of the block's weighted values: the warps' in warp order, each rescaled to
 * the block's max M; a warp past the last key adds nothing. */
template <int WARPS, int D>
__device__ __forceinline__ float decode_warps_value(const float *wm, const float (*wacc)[D], float M, int d)
{
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) sum += wm[w] == -INFINITY ? 0.0f : wacc[w][d] * exp2f(wm[w] - M);
    return sum;
}

/* A split's partial: its max at [0], its sum at [1], its weighted values from
 * [DECODE_PART_ACC], so that they start on 16 bytes (the spread kernel's combine
 * reads them as float4); DECODE_PART_ACC + hd floats a split. */
#define DECODE_PART_ACC 4

/* Rope the query of head h and, when the block holds the new key, the new key of
 * its kv head into shared memory (rope.cuh: k_rope_qkv's bits). Element i of the
 * loop (i < D/2: query pair i, else key pair i - D/2) needs the pair i % (D/2)'s
 * cos and sin, which thread threadIdx.x computed for pair threadIdx.x % (D/2):
 * the same pair as long as blockDim.x is a multiple of D/2 or at least D (the
 * callers' block sizes are). SM has qsh[D] (float) and knew[D] (bf16). */
template <int D, class SM>
__device__ __forceinline__ void decode_rope(SM &sm, const __nv_bfloat16 *row, int h, int hq, int kvh, bool holds_new,
                                            float cs, float sn)
{
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        if (!(i < D / 2 || holds_new)) continue;
        const bool is_k = i >= D / 2;
        const int pr = is_k ? i - D / 2 : i;
        const __nv_bfloat16 *src = row + (size_t)(is_k ? hq + kvh : h) * D;
        float o1, o2;
        rope_rotate(__bfloat162float(src[pr]), __bfloat162float(src[pr + D / 2]), cs, sn, &o1, &o2);
        if (is_k) {
            sm.knew[pr] = __float2bfloat16(o1);
            sm.knew[pr + D / 2] = __float2bfloat16(o2);
        } else {
            sm.qsh[pr] = bf16r(o1);
            sm.qsh[pr + D / 2] = bf16r(o2);
        }
    }
}

/* The new key and value into the cache at pos: by one block per kv head (the
 * group's first query head's block that holds pos), after decode_rope. */
template <int D, class SM>
__device__ __forceinline__ void decode_store_new(const SM &sm, __nv_bfloat16 *kc, __nv_bfloat16 *vc, int pos,
                                                 const __nv_bfloat16 *vnew)
{
    for (int c = threadIdx.x; c < 2 * (D / 8); c += blockDim.x) {
        const bool is_v = c >= D / 8;
        const int e = is_v ? c - D / 8 : c;
        uint4 *dst = (uint4 *)((is_v ? vc : kc) + (size_t)pos * D) + e;
        *dst = is_v ? ((const uint4 *)vnew)[e] : ((const uint4 *)sm.knew)[e];
    }
}

/* The spread decode kernel (attention_decode_spread.cu): `chunk` keys and
 * `warps` warps a block, one of the pairs attn_decode accepts. */
int attn_decode_spread(const struct attn_args *a, int chunk, int warps, cudaStream_t s);
/* The same setting fed by bulk copies (attention_decode_bulk.cu) in `stages` stages,
 * a->splits_per_block splits a block. */
int attn_decode_bulk(const struct attn_args *a, int chunk, int warps, int stages, cudaStream_t s);
/* The stages attn_decode gives the setting {chunk, warps} when the call names none
 * (0: the register kernel); attention.h's ATTN_DECODE_BULK_SPLITS says why. */
int attn_decode_bulk_default_stages(const struct attn_args *a, int chunk, int warps);
/* Between a decode block's cache loads and its math: its rope's cos and sin, the
 * programmatic-launch wait (pdl.h: before anything this step's kernels wrote is
 * read), then the query roped into shared memory, and in the block that holds the
 * new key (holds_new) that key too, stored with its value by the kv group's first
 * head. False for a block without keys, which leaves after the wait so the launch
 * chain holds. */
template <int D, class SM>
__device__ __forceinline__ bool decode_take_new_token_at(SM &sm, const attn_args &a, const decode_seq &sq, int b, int h,
                                                         bool holds_new, const __nv_bfloat16 **vnew)
{
    float cs = 0.0f, sn = 0.0f;  /* thread i < D: rotation pair i % (D/2) */
    if (sq.active && threadIdx.x < D) rope_cos_sin(sq.pos, __ldg(a.inv_freq + threadIdx.x % (D / 2)), &cs, &sn);
    pdl_wait();
    pdl_trigger();
    if (!sq.active) return false;
    const int group = a.hq / a.hkv, kvh = h / group;
    const __nv_bfloat16 *row = a.qkv + (size_t)b * (a.hq + 2 * a.hkv) * D;
    *vnew = row + (size_t)(a.hq + a.hkv + kvh) * D;
    decode_rope<D>(sm, row, h, a.hq, kvh, holds_new, cs, sn);
    __syncthreads();
    if (holds_new && h % group == 0) decode_store_new<D>(sm, sq.kc, sq.vc, sq.pos, *vnew);
    return true;
}

/* The same for a block of the keys [key0, key0 + chunk). */
template <int D, class SM>
__device__ __forceinline__ bool decode_take_new_token(SM &sm, const attn_args &a, const decode_seq &sq, int b, int h,
                                                      int chunk, const __nv_bfloat16 **vnew)
{
    return decode_take_new_token_at<D>(sm, a, sq, b, h, sq.pos < sq.key0 + chunk, vnew);
}
#endif
