/* The decode attention with a key spread over lanes (attention.h,
 * attn_args.warps_per_block > 0): D/8 lanes hold one key's row, 8 dims (16 bytes)
 * a lane, so a warp's load is 512 contiguous bytes of K or V (the key-a-lane
 * kernel in attention.cu gives each lane a whole row: 32 rows a load) and a score
 * is 8 fused multiply-adds a lane and a shuffle tree, not a chain of D. The
 * CHUNK keys of a block are split over WARPS warps, CHUNK / WARPS consecutive keys
 * a warp, S = CHUNK / WARPS / (32 / (D/8)) of them a lane ("slots"), all loaded
 * into registers before pdl_wait. Small chunks (32 or 64 keys) put batch 1's few
 * heads on many SMs: at 1 x 256 with 32 heads, 256 or 128 blocks where 128 keys
 * a block give 64.
 *
 * Every sum has one order fixed by the key positions and the setting (CHUNK,
 * WARPS): the dot over a lane's 8 dims, then the xor tree over the key's lanes;
 * a warp's keys in slot order per lane, then the xor tree over the lanes that
 * hold different keys (each pair adds the same two floats, so every lane of a
 * tree ends with the same bits); the block's warps in warp order; the splits in
 * split order by warp (warp w takes splits w, w + WARPS, ...) and then the warps
 * in warp order. Nothing depends on the batch, the grid's size or which block
 * finishes last, so a sequence has the same bits alone and in any batch, under a
 * host or device position, at a given (CHUNK, WARPS). The bits differ from one
 * setting to another and from the key-a-lane kernel's. */
#include "attention_common.cuh"
#include "cuda_check.h"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

template <int D, int WARPS> struct spread_smem {
    __align__(16) float qsh[D];
    __align__(16) bf16 knew[D];
    __align__(16) float wacc[WARPS][D];
    float wm[WARPS], wl[WARPS], cmax[WARPS];
    int is_last;
};

__device__ __forceinline__ void unpack8(uint4 r, float f[8])
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&r;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

/* DPL floats of a partial's weighted values (a lane's dims in the combine) as one load. */
template <int DPL> struct fvec_t;
template <> struct fvec_t<2> { typedef float2 type; };
template <> struct fvec_t<4> { typedef float4 type; };
__device__ __forceinline__ void fvec_unpack(float2 v, float f[2]) { f[0] = v.x, f[1] = v.y; }
__device__ __forceinline__ void fvec_unpack(float4 v, float f[4]) { f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w; }

/* The last block of a (sequence, head) combines its n splits' partials: warp w
 * takes the splits w, w + WARPS, ... in ascending order with lane l's D/32 dims,
 * then the warps are added in order. The first HELD of a warp's splits are loaded
 * into registers before the max over all splits is known, so that up to HELD *
 * WARPS splits (8 at 1 x 256 with 32 keys a block) cost one round trip to L2, not
 * one for the max and one for the values; the sums are the same for any HELD. */
template <int D, int WARPS>
__device__ __forceinline__ void spread_combine(spread_smem<D, WARPS> &sm, int n, const float *all, bf16 *out)
{
    constexpr int PS = D + DECODE_PART_ACC;  /* floats a split */
    constexpr int DPL = D / 32;
    constexpr int HELD = WARPS >= 16 ? 4 : 8;  /* 64 splits at least */
    typedef typename fvec_t<DPL>::type fvec;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float hm[HELD], hl[HELD], hv[HELD][DPL];
#pragma unroll
    for (int k = 0; k < HELD; k++) {
        const int i = warp + k * WARPS;
        const float *pi = all + (size_t)i * PS;
        hm[k] = i < n ? __ldcg(pi) : -INFINITY;
        hl[k] = i < n ? __ldcg(pi + 1) : 0.0f;
        if (i < n) fvec_unpack(__ldcg((const fvec *)(pi + DECODE_PART_ACC) + lane), hv[k]);
        else
#pragma unroll
            for (int e = 0; e < DPL; e++) hv[k][e] = 0.0f;
    }
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < HELD; k++) mx = fmaxf(mx, hm[k]);
    for (int i = HELD * WARPS + threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, __ldcg(all + (size_t)i * PS));
    const float M = decode_block_max<WARPS>(mx, sm.cmax);
    float num[DPL], den = 0.0f;
#pragma unroll
    for (int e = 0; e < DPL; e++) num[e] = 0.0f;
#pragma unroll
    for (int k = 0; k < HELD; k++) {
        if (warp + k * WARPS >= n) break;
        const float f = exp2f(hm[k] - M);
        den = fmaf(hl[k], f, den);
#pragma unroll
        for (int e = 0; e < DPL; e++) num[e] = fmaf(hv[k][e], f, num[e]);
    }
#pragma unroll 8
    for (int i = warp + HELD * WARPS; i < n; i += WARPS) {
        const float *pi = all + (size_t)i * PS;
        const float f = exp2f(__ldcg(pi) - M);
        den = fmaf(__ldcg(pi + 1), f, den);
        float vf[DPL];
        fvec_unpack(__ldcg((const fvec *)(pi + DECODE_PART_ACC) + lane), vf);
#pragma unroll
        for (int e = 0; e < DPL; e++) num[e] = fmaf(vf[e], f, num[e]);
    }
#pragma unroll
    for (int e = 0; e < DPL; e++) sm.wacc[warp][lane * DPL + e] = num[e];
    if (lane == 0) sm.wl[warp] = den;
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float nsum = 0.0f, dsum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            nsum += sm.wacc[w][d];
            dsum += sm.wl[w];
        }
        out[d] = __float2bfloat16(nsum / dsum);
    }
}

/* Grid (splits, hq, batch), WARPS * 32 threads. Rope, the new key and value, the
 * loads before pdl_wait and the ticket follow the key-a-lane kernel (attention.cu
 * says why each is safe). */
template <int D, int CHUNK, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) decode_spread_kernel(struct attn_args a, float scale, int splits)
{
    constexpr int LPK = D / 8;          /* lanes a key */
    constexpr int KPI = 32 / LPK;       /* keys a warp holds at one slot */
    constexpr int KPW = CHUNK / WARPS;  /* keys a warp */
    constexpr int S = KPW / KPI;        /* slots a lane */
    static_assert(KPW % KPI == 0 && S >= 1 && S <= 16, "keys a warp: a multiple of 32 / (D/8), at most 16 slots");
    static_assert((WARPS * 32) % (D / 2) == 0, "decode_rope needs the block a multiple of D/2 threads");
    __shared__ spread_smem<D, WARPS> sm;
    const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane / LPK, part = lane % LPK;  /* which key of a slot, which 8 dims */
    const decode_seq sq = decode_seq_of<D>(a, b, h, split, CHUNK);
    const int pos = sq.pos, kv_len = sq.kv_len, key0 = sq.key0;
    const bool active = sq.active;
    bf16 *kc = sq.kc, *vc = sq.vc;
    const int wbase = key0 + warp * KPW + sub;  /* this lane's key at slot s: wbase + s * KPI */
    uint4 kr[S], vr[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        const int key = wbase + s * KPI;
        const bool cached = active && key < pos;
        kr[s] = cached ? __ldg((const uint4 *)(kc + (size_t)key * D) + part) : make_uint4(0, 0, 0, 0);
        vr[s] = cached ? __ldg((const uint4 *)(vc + (size_t)key * D) + part) : make_uint4(0, 0, 0, 0);
    }
    const bf16 *vnew;
    if (!decode_take_new_token<D>(sm, a, sq, b, h, CHUNK, &vnew)) return;
    float q[8];
    {
        const float4 q0 = ((const float4 *)sm.qsh)[2 * part], q1 = ((const float4 *)sm.qsh)[2 * part + 1];
        q[0] = q0.x, q[1] = q0.y, q[2] = q0.z, q[3] = q0.w, q[4] = q1.x, q[5] = q1.y, q[6] = q1.z, q[7] = q1.w;
    }
    /* scores: 8 dims a lane, then the key's lanes */
    float score[S];
    float m = -INFINITY;
#pragma unroll
    for (int s = 0; s < S; s++) {
        const int key = wbase + s * KPI;
        if (key == pos) {
            kr[s] = ((const uint4 *)sm.knew)[part];
            vr[s] = ((const uint4 *)vnew)[part];
        }
        float kf[8];
        unpack8(kr[s], kf);
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) dot = fmaf(kf[e], q[e], dot);
#pragma unroll
        for (int off = 1; off < LPK; off <<= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        score[s] = key < kv_len ? score_log2(dot, scale) : -INFINITY;
        m = fmaxf(m, score[s]);
    }
#pragma unroll
    for (int off = LPK; off < 32; off <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    /* softmax weights and p . V over the lane's slots, then the warp's keys */
    float l = 0.0f, acc[8];
#pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.0f;
#pragma unroll
    for (int s = 0; s < S; s++) {
        const float p = m == -INFINITY ? 0.0f : exp2f(score[s] - m);
        l += p;
        float vf[8];
        unpack8(vr[s], vf);
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] = fmaf(p, vf[e], acc[e]);
    }
#pragma unroll
    for (int off = LPK; off < 32; off <<= 1) {
        l += __shfl_xor_sync(0xffffffffu, l, off);
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] += __shfl_xor_sync(0xffffffffu, acc[e], off);
    }
    if (sub == 0) {
        ((float4 *)sm.wacc[warp])[2 * part] = make_float4(acc[0], acc[1], acc[2], acc[3]);
        ((float4 *)sm.wacc[warp])[2 * part + 1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    }
    if (lane == 0) {
        sm.wm[warp] = m;
        sm.wl[warp] = l;
    }
    __syncthreads();
    float M, L;
    decode_block_max_sum<WARPS>(sm.wm, sm.wl, &M, &L);
    const int n = min(decode_splits(kv_len, CHUNK), (int)gridDim.x);
    float *all = a.partials + ((size_t)b * a.hq + h) * splits * (D + DECODE_PART_ACC);
    float *mine = all + (size_t)split * (D + DECODE_PART_ACC);
    bf16 *out = a.out + ((size_t)b * a.hq + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) sum += sm.wm[w] == -INFINITY ? 0.0f : sm.wacc[w][d] * exp2f(sm.wm[w] - M);
        if (n == 1) out[d] = __float2bfloat16(sum / L);  /* what the combine gives one split */
        else mine[DECODE_PART_ACC + d] = sum;
    }
    if (n == 1) return;
    if (threadIdx.x == 0) {
        mine[0] = M;
        mine[1] = L;
    }
    /* wacc and wl are read above and rewritten by the combine: decode_take_ticket's
     * barriers order the two */
    if (!decode_take_ticket(a.counters + (size_t)b * a.hq + h, n, &sm.is_last)) return;
    spread_combine<D, WARPS>(sm, n, all, out);
}

typedef void (*spread_fn)(struct attn_args, float, int);
struct spread_setting {
    int chunk, warps;
    spread_fn d64, d128;
};
#define SPREAD(c, w) {c, w, decode_spread_kernel<64, c, w>, decode_spread_kernel<128, c, w>}
/* The settings attention.h lists (ATTN_DECODE_SPREAD_SETTINGS). */
/* (256, 16): a context of up to 256 keys in one block a head, no combine at all;
 * (256, 32), 4 slots a lane in 1024 threads, spilled at 64 registers and is left out */
static const struct spread_setting spread_settings[] = {
    SPREAD(32, 2),  SPREAD(32, 4),   SPREAD(64, 2),  SPREAD(64, 4),   SPREAD(64, 8),
    SPREAD(128, 4), SPREAD(128, 8), SPREAD(128, 16), SPREAD(256, 8), SPREAD(256, 16)};
#undef SPREAD

static_assert(sizeof spread_settings / sizeof spread_settings[0] == ATTN_DECODE_SPREAD_COUNT,
              "the table is attention.h's ATTN_DECODE_SPREAD_SETTINGS");

int attn_decode_spread(const struct attn_args *a, int chunk, int warps, cudaStream_t s)
{
    const struct spread_setting *st = NULL;
    for (const struct spread_setting &x : spread_settings)
        if (x.chunk == chunk && x.warps == warps) st = &x;
    if (!st) return pb_fail("attn_decode: %d keys and %d warps a block is not a spread setting (attention.h)", chunk, warps);
    const int stride_splits = decode_splits(a->max_ctx, chunk);  /* the partials' layout for this chunk */
    const int splits = a->pos_dev ? stride_splits : decode_splits(a->pos + 1, chunk);  /* pos bounds pos_seq */
    const float scale = 1.0f / sqrtf((float)a->hd);
    cudaCheck(pdl_launch(a->hd == 64 ? st->d64 : st->d128, dim3(splits, a->hq, a->batch), dim3(warps * 32), 0, s,
                         a->pdl, *a, scale, stride_splits));
    return PB_OK;
}
