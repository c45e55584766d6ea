/* What the two spread decode kernels share (attention_decode_spread.cu, whose
 * lanes load their keys into registers, and attention_decode_bulk.cu, whose blocks
 * copy them into shared memory by the copy engine): the geometry of a split (D/8
 * lanes a key, CHUNK / WARPS consecutive keys a warp), the math of one split from
 * the lane's slots to its partial, and the combine. One definition, so both give
 * the same bits at a setting (CHUNK, WARPS); the order of every sum is the one
 * attention_decode_spread.cu's head comment states. */
#ifndef PB_ATTENTION_SPREAD_CUH
#define PB_ATTENTION_SPREAD_CUH
#include "attention_common.cuh"

typedef __nv_bfloat16 bf16;

/* What a split's warps hand each other: their weighted values, maxima and sums. */
template <int D, int WARPS> struct spread_red {
    __align__(16) float wacc[WARPS][D];
    float wm[WARPS], wl[WARPS];
};

/* RED sets of spread_red: a kernel that works several splits in turn alternates
 * two, so that one barrier a split orders both the writes and the reads. */
template <int D, int WARPS, int RED = 1> struct spread_smem {
    __align__(16) float qsh[D];
    __align__(16) bf16 knew[D];
    spread_red<D, WARPS> red[RED];
    float cmax[WARPS];
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

/* A partial's floats: from L2 (another block wrote them: ld.global.cg) or, LOCAL,
 * from this block's shared memory. */
template <bool LOCAL, class T> __device__ __forceinline__ T part_load(const T *p) { return LOCAL ? *p : __ldcg(p); }

/* The last block of a (sequence, head) combines its n splits' partials: warp w
 * takes the splits w, w + WARPS, ... in ascending order with lane l's D/32 dims,
 * then the warps are added in order. The first HELD of a warp's splits are loaded
 * into registers before the max over all splits is known, so that up to HELD *
 * WARPS splits (8 at 1 x 256 with 32 keys a block) cost one round trip to L2, not
 * one for the max and one for the values; the sums are the same for any HELD, and
 * for partials read from L2 or (LOCAL) from the block's own shared memory. */
template <int D, int WARPS, int RED, bool LOCAL = false>
__device__ __forceinline__ void spread_combine(spread_smem<D, WARPS, RED> &sm, int n, const float *all, bf16 *out)
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
        hm[k] = i < n ? part_load<LOCAL>(pi) : -INFINITY;
        hl[k] = i < n ? part_load<LOCAL>(pi + 1) : 0.0f;
        if (i < n) fvec_unpack(part_load<LOCAL>((const fvec *)(pi + DECODE_PART_ACC) + lane), hv[k]);
        else
#pragma unroll
            for (int e = 0; e < DPL; e++) hv[k][e] = 0.0f;
    }
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < HELD; k++) mx = fmaxf(mx, hm[k]);
    for (int i = HELD * WARPS + threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, part_load<LOCAL>(all + (size_t)i * PS));
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
        const float f = exp2f(part_load<LOCAL>(pi) - M);
        den = fmaf(part_load<LOCAL>(pi + 1), f, den);
        float vf[DPL];
        fvec_unpack(part_load<LOCAL>((const fvec *)(pi + DECODE_PART_ACC) + lane), vf);
#pragma unroll
        for (int e = 0; e < DPL; e++) num[e] = fmaf(vf[e], f, num[e]);
    }
#pragma unroll
    for (int e = 0; e < DPL; e++) sm.red[0].wacc[warp][lane * DPL + e] = num[e];
    if (lane == 0) sm.red[0].wl[warp] = den;
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float nsum = 0.0f, dsum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            nsum += sm.red[0].wacc[w][d];
            dsum += sm.red[0].wl[w];
        }
        out[d] = __float2bfloat16(nsum / dsum);
    }
}

/* A split's lanes and slots at (D, CHUNK, WARPS). */
template <int D, int CHUNK, int WARPS> struct spread_geom {
    static constexpr int LPK = D / 8;          /* lanes a key */
    static constexpr int KPI = 32 / LPK;       /* keys a warp holds at one slot */
    static constexpr int KPW = CHUNK / WARPS;  /* keys a warp */
    static constexpr int S = KPW / KPI;        /* slots a lane */
    static_assert(KPW % KPI == 0 && S >= 1 && S <= 16, "keys a warp: a multiple of 32 / (D/8), at most 16 slots");
    static_assert((WARPS * 32) % (D / 2) == 0, "decode_rope needs the block a multiple of D/2 threads");
};

/* One split from the lane's slots to its partial: kr and vr hold the lane's 8 dims
 * of the keys wbase + s * KPI (zeros where there is no key, the new key and value
 * where the key is pos). Scores, softmax and p . V per warp, the warps in order,
 * then the split's weighted values and (thread 0) its max and sum into `mine`, or,
 * when it is the sequence's only split, the output. Every thread calls it, with
 * the query in sm.qsh; `loaded` runs in every thread after the block's barrier,
 * when every thread has its slots (so a caller may refill what they were read
 * from). It leaves r read by others, so a caller that rewrites r (another split,
 * the combine) passes a barrier first. */
struct spread_nothing {
    __device__ void operator()() const {}
};
template <int D, int CHUNK, int WARPS, class SM, class Loaded = spread_nothing>
__device__ __forceinline__ void spread_split(const SM &sm, spread_red<D, WARPS> &r, const uint4 *kr, const uint4 *vr,
                                             int wbase, int kv_len, float scale, bool only, float *mine, bf16 *out,
                                             Loaded loaded = Loaded())
{
    typedef spread_geom<D, CHUNK, WARPS> G;
    constexpr int LPK = G::LPK, KPI = G::KPI, S = G::S;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane / LPK, part = lane % LPK;
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
        ((float4 *)r.wacc[warp])[2 * part] = make_float4(acc[0], acc[1], acc[2], acc[3]);
        ((float4 *)r.wacc[warp])[2 * part + 1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    }
    if (lane == 0) {
        r.wm[warp] = m;
        r.wl[warp] = l;
    }
    __syncthreads();
    loaded();
    float M, L;
    decode_block_max_sum<WARPS>(r.wm, r.wl, &M, &L);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float sum = decode_warps_value<WARPS, D>(r.wm, r.wacc, M, d);
        if (only) out[d] = __float2bfloat16(sum / L);  /* what the combine gives one split */
        else mine[DECODE_PART_ACC + d] = sum;
    }
    if (!only && threadIdx.x == 0) {
        mine[0] = M;
        mine[1] = L;
    }
}
#endif
