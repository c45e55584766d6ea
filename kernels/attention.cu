/* Causal GQA attention over the KV cache: a flash-attention prefill kernel on
 * bf16 tensor cores (mma.sync m16n8k16, online softmax in fp32) and a split-KV
 * decode kernel that ropes its own query and key, a key's row in one lane (the
 * spread decode kernel, a row over D/8 lanes, is attention_decode_spread.cu). See
 * attention.h. Both compute
 * each query row alone, in an order fixed by its position, so microbatching
 * cannot change a bit. */
#include "attention.h"
#include "cuda_check.h"
#include "pdl.h"
#include "mma.cuh"
#include "attention_common.cuh"

typedef __nv_bfloat16 bf16;

#define FA_BM 64      /* query rows per block: 4 warps x 16 */
#define FA_BN 64      /* keys per step */
#define FA_THREADS 128

/* Two stages of K and V tiles; the Q tile overlays stage 1's K tile, which is free
 * until the fragments of Q are in registers. Four tiles instead of five let three
 * blocks (12 warps) share an SM at head_dim 128 instead of two. */
static size_t fa_smem_bytes(int d) { return (size_t)4 * 64 * (d + 8) * sizeof(bf16); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Copy a 64 x D tile (rows beyond `valid_rows` zero-filled) into shared memory. */
template <int D>
__device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, size_t g_stride, int valid_rows)
{
    constexpr int CH = D / 8;  /* 16-byte chunks per row */
    for (int c = threadIdx.x; c < 64 * CH; c += FA_THREADS) {
        int r = c / CH, k = c % CH;
        bool ok = r < valid_rows;
        cp_async16(sm + r * (D + 8) + k * 8, g + (size_t)(ok ? r : 0) * g_stride + k * 8, ok);
    }
}

/* Three blocks an SM at head_dim 128: at most 168 registers a thread (ptxas: 168,
 * with a 16-byte spill at head_dim 128; it measured 6% faster than two blocks). */
template <int D>
__global__ void __launch_bounds__(FA_THREADS, 3) flash_prefill_kernel(struct attn_args a, float scale)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *ks = (bf16 *)smem_raw;  /* [2][64][D+8] */
    bf16 *vs = ks + 2 * 64 * (D + 8);
    bf16 *qs = ks + 64 * (D + 8);  /* stage 1's K tile until Q is in registers */

    const int n_qtiles = gridDim.x;
    const int qt = n_qtiles - 1 - blockIdx.x;  /* longest tiles first */
    const int h = blockIdx.y, b = blockIdx.z;
    const int q0 = qt * FA_BM;
    const int kvh = h / (a.hq / a.hkv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;

    const size_t q_stride = (size_t)a.hq * D;
    const bf16 *qg = a.q + ((size_t)b * a.seq + q0) * q_stride + h * D;
    const size_t cache_off = ((size_t)(a.batch_offset + b) * a.hkv + kvh) * a.max_ctx * D;
    const bf16 *kg = a.k_cache + cache_off, *vg = a.v_cache + cache_off;

    const int n_keys = a.pos + min(q0 + FA_BM, a.seq);  /* keys the last row of the tile sees */
    const int n_blocks = (n_keys + FA_BN - 1) / FA_BN;
    /* The warp's first row's position. A key tile wholly past its last row's is
     * masked out for every row of the warp, and the math on it would change no bit
     * (every row saw key 0 in tile 0, so its max stays, its factor is 1 and its
     * weights 0), so the warp skips it; a tile wholly at or before the first row's
     * needs no mask. Same bits, 1% faster at 8x512 on an H200 (docs/PERF.md). */
    const int wpos0 = a.pos + q0 + warp * 16, wpos1 = wpos0 + 15;

    load_tile<D>(qs, qg, q_stride, a.seq - q0);
    load_tile<D>(ks, kg, D, n_keys);
    load_tile<D>(vs, vg, D, n_keys);
    cp_async_commit();

    uint32_t qf[D / 16][4];
    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const int qp0 = a.pos + q0 + warp * 16 + g, qp1 = qp0 + 8;  /* positions of my two rows */

    {  /* Q's fragments to registers before stage 1 (Q's space) is refilled */
        cp_async_wait<0>();
        __syncthreads();
        const bf16 *qw = qs + warp * 16 * (D + 8);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            qf[kk][0] = *(const uint32_t *)(qw + g * (D + 8) + kk * 16 + t4 * 2);
            qf[kk][1] = *(const uint32_t *)(qw + (g + 8) * (D + 8) + kk * 16 + t4 * 2);
            qf[kk][2] = *(const uint32_t *)(qw + g * (D + 8) + kk * 16 + 8 + t4 * 2);
            qf[kk][3] = *(const uint32_t *)(qw + (g + 8) * (D + 8) + kk * 16 + 8 + t4 * 2);
        }
        __syncthreads();
    }

    for (int j = 0; j < n_blocks; j++) {
        const int st = j & 1;
        if (j + 1 < n_blocks) {
            const int key0 = (j + 1) * FA_BN;
            load_tile<D>(ks + (st ^ 1) * 64 * (D + 8), kg + (size_t)key0 * D, D, n_keys - key0);
            load_tile<D>(vs + (st ^ 1) * 64 * (D + 8), vg + (size_t)key0 * D, D, n_keys - key0);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *kt = ks + st * 64 * (D + 8);
        const bf16 *vt = vs + st * 64 * (D + 8);
        const int key_base = j * FA_BN;
        if (key_base <= wpos1) {  /* else this tile and the rest are masked for all my rows */
            float s[FA_BN / 8][4];
#pragma unroll
            for (int nt = 0; nt < FA_BN / 8; nt++) {
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
                /* one ldmatrix.x4 gives the B fragments of two k-steps (four 32-bit
                 * shared loads before); the sum runs over kk in the same order */
                const bf16 *kr = kt + (nt * 8 + (lane & 7)) * (D + 8) + (lane >> 3) * 8;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk += 2) {
                    uint32_t kb[4];
                    ldmatrix_x4(kb, kr + kk * 16);
                    mma_bf16(s[nt], qf[kk], kb[0], kb[1]);
                    mma_bf16(s[nt], qf[kk + 1], kb[2], kb[3]);
                }
            }
            /* scale into log2 units and mask the future (and keys past the cache end) */
            const bool masked = key_base + FA_BN - 1 > wpos0;
            float mx0 = m0, mx1 = m1;
#pragma unroll
            for (int nt = 0; nt < FA_BN / 8; nt++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int key = key_base + nt * 8 + t4 * 2 + e;
                    s[nt][e] = !masked || key <= qp0 ? score_log2(s[nt][e], scale) : -INFINITY;
                    s[nt][2 + e] = !masked || key <= qp1 ? score_log2(s[nt][2 + e], scale) : -INFINITY;
                    mx0 = fmaxf(mx0, s[nt][e]);
                    mx1 = fmaxf(mx1, s[nt][2 + e]);
                }
            }
#pragma unroll
            for (int off = 1; off < 4; off <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
            }
            const float base0 = mx0 == -INFINITY ? 0.0f : mx0, base1 = mx1 == -INFINITY ? 0.0f : mx1;
            const float al0 = exp2f(m0 - base0), al1 = exp2f(m1 - base1);
            m0 = mx0;
            m1 = mx1;
            float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
            for (int nt = 0; nt < FA_BN / 8; nt++) {
                s[nt][0] = exp2f(s[nt][0] - base0);
                s[nt][1] = exp2f(s[nt][1] - base0);
                s[nt][2] = exp2f(s[nt][2] - base1);
                s[nt][3] = exp2f(s[nt][3] - base1);
                ps0 += s[nt][0] + s[nt][1];
                ps1 += s[nt][2] + s[nt][3];
            }
            l0 = l0 * al0 + ps0;
            l1 = l1 * al1 + ps1;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                o[dt][0] *= al0;
                o[dt][1] *= al0;
                o[dt][2] *= al1;
                o[dt][3] *= al1;
            }
            /* O += P V: the S accumulators are already in the A-operand layout */
#pragma unroll
            for (int kt2 = 0; kt2 < FA_BN / 16; kt2++) {
                uint32_t pa[4];
                pa[0] = pack_bf16(s[2 * kt2][0], s[2 * kt2][1]);
                pa[1] = pack_bf16(s[2 * kt2][2], s[2 * kt2][3]);
                pa[2] = pack_bf16(s[2 * kt2 + 1][0], s[2 * kt2 + 1][1]);
                pa[3] = pack_bf16(s[2 * kt2 + 1][2], s[2 * kt2 + 1][3]);
                const bf16 *vr = vt + (kt2 * 16 + (lane & 15)) * (D + 8) + (lane >> 4) * 8;
#pragma unroll
                for (int dt = 0; dt < D / 8; dt += 2) {
                    uint32_t vb[4];
                    ldmatrix_x4_trans(vb, vr + dt * 8);
                    mma_bf16(o[dt], pa, vb[0], vb[1]);
                    mma_bf16(o[dt + 1], pa, vb[2], vb[3]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, off);
        l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    bf16 *out0 = a.out + ((size_t)b * a.seq + r0) * q_stride + h * D + t4 * 2;
    bf16 *out1 = a.out + ((size_t)b * a.seq + r1) * q_stride + h * D + t4 * 2;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
        if (r0 < a.seq) *(__nv_bfloat162 *)(out0 + dt * 8) = __floats2bfloat162_rn(o[dt][0] * inv0, o[dt][1] * inv0);
        if (r1 < a.seq) *(__nv_bfloat162 *)(out1 + dt * 8) = __floats2bfloat162_rn(o[dt][2] * inv1, o[dt][3] * inv1);
    }
}

int attn_setup(void)
{
    cudaCheck(cudaFuncSetAttribute(flash_prefill_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)fa_smem_bytes(64)));
    cudaCheck(cudaFuncSetAttribute(flash_prefill_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int)fa_smem_bytes(128)));
    /* all of the SM's unified memory as shared memory, or the third block will not fit */
    cudaCheck(cudaFuncSetAttribute(flash_prefill_kernel<128>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                   cudaSharedmemCarveoutMaxShared));
    return PB_OK;
}

static int check_args(const struct attn_args *a)
{
    if (a->hd != 64 && a->hd != 128) return pb_fail("attention: head_dim %d is not supported (64 or 128)", a->hd);
    if (a->hkv <= 0 || a->hq % a->hkv) return pb_fail("attention: %d query heads over %d kv heads", a->hq, a->hkv);
    return PB_OK;
}

int attn_prefill(const struct attn_args *a, cudaStream_t s)
{
    PB_TRY(check_args(a));
    if (a->batch <= 0 || a->seq <= 0) return PB_OK;
    dim3 grid((a->seq + FA_BM - 1) / FA_BM, a->hq, a->batch);
    float scale = 1.0f / sqrtf((float)a->hd);
    if (a->hd == 64)
        flash_prefill_kernel<64><<<grid, FA_THREADS, fa_smem_bytes(64), s>>>(*a, scale);
    else
        flash_prefill_kernel<128><<<grid, FA_THREADS, fa_smem_bytes(128), s>>>(*a, scale);
    cudaCheckLaunch();
    return PB_OK;
}

/* ---- decode, the key-a-lane kernel: grid (splits, hq, batch); a warp scores 32
 * keys, one per lane (attention_decode_spread.cu has the other decode kernel) ---- */
/* Splits the last block combines with the splits' factors in shared memory (up to
 * 32768 keys at 128 a block); beyond, a serial loop with the same sums. */
#define COMBINE_MAX 256

/* laid out for the smallest chunk, so any chunk size fits */
size_t attn_decode_partials_floats(int max_batch, int hq, int hd, int max_ctx)
{
    return (size_t)max_batch * hq * decode_splits(max_ctx, ATTN_DECODE_CHUNK_MIN) * (hd + DECODE_PART_ACC);
}

size_t attn_decode_counters(int max_batch, int hq) { return (size_t)max_batch * hq; }

int attn_decode_setting_supported(int keys, int warps)
{
    if (keys == 0) return 1;  /* the default */
    const int chunk = keys;
    if (warps == 0) return chunk == 128 || chunk == 256;
    static const int spread[ATTN_DECODE_SPREAD_COUNT][2] = ATTN_DECODE_SPREAD_SETTINGS;
    for (int i = 0; i < ATTN_DECODE_SPREAD_COUNT; i++)
        if (spread[i][0] == chunk && spread[i][1] == warps) return 1;
    return 0;
}

/* DPL consecutive bf16 (2 or 4: a lane's dims of a value row) as one load. */
template <int DPL> struct dims_t;
template <> struct dims_t<2> { typedef unsigned type; };
template <> struct dims_t<4> { typedef uint2 type; };

template <int DPL>
__device__ __forceinline__ void unpack_dims(typename dims_t<DPL>::type r, float f[DPL])
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&r;
#pragma unroll
    for (int i = 0; i < DPL / 2; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

/* Shared memory of one decode block besides the keys and values. */
template <int D, int CHUNK> struct decode_smem {
    static constexpr int WARPS = CHUNK / 32;
    float qsh[D];
    __align__(16) bf16 knew[D];
    float wm[WARPS], wl[WARPS], wacc[WARPS][D];
    int is_last;
    float cf[COMBINE_MAX], cl[COMBINE_MAX], cmax[WARPS];
};

/* One split of CHUNK keys from key0 (the keys before pos in kv and vv, the new key
 * and value substituted at pos): scores, softmax and p . V per warp, then the
 * warps combined. With one split in all (n == 1) the block writes the output
 * itself (what the combine would give for one split: it scales by 1), else the
 * split's max, sum and weighted values into part. Ends with a barrier. */
template <int D, int CHUNK>
__device__ __forceinline__ void decode_split_math(decode_smem<D, CHUNK> &sm, uint4 kv[D / 8],
                                                  typename dims_t<D / 32>::type vv[32], int key0, int pos,
                                                  const bf16 *vnew, float scale, int n, float *part, bf16 *out)
{
    constexpr int DEC_WARPS = CHUNK / 32;
    constexpr int DPL = D / 32;
    typedef typename dims_t<DPL>::type vdims;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kv_len = pos + 1;
    const int base = key0 + warp * 32;
    const int key = base + lane;
    const int n_here = max(0, min(32, kv_len - base));  /* keys of this warp, uniform */
    float score = -INFINITY;
    if (key < kv_len) {
        if (key == pos)
#pragma unroll
            for (int i = 0; i < D / 8; i++) kv[i] = ((const uint4 *)sm.knew)[i];
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            const __nv_bfloat162 *hh = (const __nv_bfloat162 *)&kv[i];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 f = __bfloat1622float2(hh[e]);
                dot = fmaf(f.x, sm.qsh[i * 8 + 2 * e], dot);
                dot = fmaf(f.y, sm.qsh[i * 8 + 2 * e + 1], dot);
            }
        }
        score = score_log2(dot, scale);
    }
    float m = score;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float p = m == -INFINITY ? 0.0f : exp2f(score - m);
    float l = p;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off);

    /* p . V over the warp's keys in ascending order */
    float acc[DPL];
#pragma unroll
    for (int e = 0; e < DPL; e++) acc[e] = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; j++) {
        float pj = __shfl_sync(0xffffffffu, p, j);
        if (j < n_here) {
            if (base + j == pos) vv[j] = ((const vdims *)vnew)[lane];
            float vf[DPL];
            unpack_dims<DPL>(vv[j], vf);
#pragma unroll
            for (int e = 0; e < DPL; e++) acc[e] = fmaf(pj, vf[e], acc[e]);
        }
    }
    if (lane == 0) {
        sm.wm[warp] = m;
        sm.wl[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < DPL; e++) sm.wacc[warp][lane * DPL + e] = acc[e];
    __syncthreads();
    float M, L;
    decode_block_max_sum<DEC_WARPS>(sm.wm, sm.wl, &M, &L);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float sum = decode_warps_value<DEC_WARPS, D>(sm.wm, sm.wacc, M, d);
        if (n == 1) out[d] = __float2bfloat16(sum / L);
        else part[DECODE_PART_ACC + d] = sum;
    }
    if (n > 1 && threadIdx.x == 0) {
        part[0] = M;
        part[1] = L;
    }
    __syncthreads();  /* wm, wl and wacc free for the next split */
}

/* After its n_blocks blocks of this (sequence, head) have left their splits'
 * partials: the one that finishes last (a ticket counter) combines the n splits in
 * split order, so the result does not depend on which block that is. */
template <int D, int CHUNK>
__device__ __forceinline__ void decode_combine(decode_smem<D, CHUNK> &sm, int *ticket, int n_blocks, int n,
                                               const float *all, bf16 *out)
{
    constexpr int DEC_WARPS = CHUNK / 32;
    if (!take_last_ticket(ticket, 1, n_blocks, &sm.is_last)) return;
    if (n <= COMBINE_MAX) {
        /* the same sums as the serial loop below, in the same order, with the splits'
         * max and sum loaded by all threads at once (one round trip, not n) and each
         * split's factor computed once into shared memory */
        float mx = -INFINITY;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float mi = __ldcg(all + (size_t)i * (D + DECODE_PART_ACC));
            sm.cf[i] = mi;
            sm.cl[i] = __ldcg(all + (size_t)i * (D + DECODE_PART_ACC) + 1);
            mx = fmaxf(mx, mi);
        }
        const float Mx = decode_block_max<DEC_WARPS>(mx, sm.cmax);
        for (int i = threadIdx.x; i < n; i += blockDim.x) sm.cf[i] = exp2f(sm.cf[i] - Mx);
        __syncthreads();
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float num = 0.0f, den = 0.0f;
#pragma unroll 8
            for (int i = 0; i < n; i++) {
                const float f = sm.cf[i];
                den += sm.cl[i] * f;
                num += __ldcg(all + (size_t)i * (D + DECODE_PART_ACC) + DECODE_PART_ACC + d) * f;
            }
            out[d] = __float2bfloat16(num / den);
        }
        return;
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float Mx = -INFINITY;
        for (int i = 0; i < n; i++) Mx = fmaxf(Mx, __ldcg(all + (size_t)i * (D + DECODE_PART_ACC)));
        float num = 0.0f, den = 0.0f;
        for (int i = 0; i < n; i++) {
            const float *pi = all + (size_t)i * (D + DECODE_PART_ACC);
            float f = exp2f(__ldcg(pi) - Mx);
            den += __ldcg(pi + 1) * f;
            num += __ldcg(pi + DECODE_PART_ACC + d) * f;
        }
        out[d] = __float2bfloat16(num / den);
    }
}

/* Each block ropes the query of its head (cos and sin computed before pdl_wait:
 * they need only the position); the block whose keys include pos also
 * ropes the new key of its kv head into shared memory and reads the new value from
 * the qkv row, so no block reads the cache at pos (no race with the one block per
 * kv head, the group's first query head, that writes it there). The cached keys
 * and values before pos are loaded into registers before pdl_wait: the decode
 * kernel of this layer wrote them a step or more ago, and under programmatic
 * launch every kernel before the one ahead has finished when this one starts (pdl.h), so their
 * latency hides under the qkv GEMV's tail. Each block leaves its split's max, sum
 * and weighted values in the partials; the last of the sequence-head's blocks to
 * finish (a ticket counter) combines the splits in split order, so the result does
 * not depend on which block finished last. */
template <int D, int CHUNK>
__global__ void __launch_bounds__(CHUNK) decode_kernel(struct attn_args a, float scale, int splits)
{
    constexpr int DPL = D / 32;  /* value dims per lane */
    typedef typename dims_t<DPL>::type vdims;
    __shared__ decode_smem<D, CHUNK> sm;
    const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const decode_seq sq = decode_seq_of<D>(a, b, h, split, CHUNK);
    const int pos = sq.pos, kv_len = sq.kv_len, key0 = sq.key0;
    const bool active = sq.active;
    bf16 *kc = sq.kc, *vc = sq.vc;
    const int base = key0 + warp * 32;
    const int key = base + lane;
    const int n_here = active ? max(0, min(32, kv_len - base)) : 0;  /* keys of this warp, uniform */
    uint4 kv[D / 8];
    vdims vv[32];
#pragma unroll
    for (int i = 0; i < D / 8; i++) kv[i] = key < pos && n_here ? __ldg((const uint4 *)(kc + (size_t)key * D) + i)
                                                                : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int j = 0; j < 32; j++)
        if (j < n_here && base + j < pos) vv[j] = __ldg((const vdims *)(vc + (size_t)(base + j) * D) + lane);
    const bf16 *vnew;
    if (!decode_take_new_token<D>(sm, a, sq, b, h, CHUNK, &vnew)) return;
    const int n = min(decode_splits(kv_len, CHUNK), (int)gridDim.x);
    float *all = a.partials + ((size_t)b * a.hq + h) * splits * (D + DECODE_PART_ACC);
    bf16 *out = a.out + ((size_t)b * a.hq + h) * D;
    decode_split_math<D, CHUNK>(sm, kv, vv, key0, pos, vnew, scale, n, all + (size_t)split * (D + DECODE_PART_ACC), out);
    if (n == 1) return;
    decode_combine<D, CHUNK>(sm, a.counters + (size_t)b * a.hq + h, n, n, all, out);
}

int attn_decode_default_stages(const struct attn_args *a)
{
    return attn_decode_bulk_default_stages(a, ATTN_DECODE_CHUNK, ATTN_DECODE_WARPS);
}

int attn_decode(const struct attn_args *a, cudaStream_t s)
{
    PB_TRY(check_args(a));
    if (a->seq != 1) return pb_fail("attn_decode: seq %d, expected 1", a->seq);
    if (!a->qkv || !a->inv_freq || !a->counters || !a->partials)
        return pb_fail("attn_decode: qkv, inv_freq, partials and counters are all needed");
    if (a->batch <= 0) return PB_OK;
    const int chunk = a->keys_per_block ? a->keys_per_block : ATTN_DECODE_CHUNK;
    const int warps = a->keys_per_block ? a->warps_per_block : ATTN_DECODE_WARPS;
    int stages = a->decode_stages;
    if (!a->keys_per_block && !stages) stages = attn_decode_default_stages(a);  /* the same bits either way */
    if (warps) return stages ? attn_decode_bulk(a, chunk, warps, stages, s) : attn_decode_spread(a, chunk, warps, s);
    if (stages) return pb_fail("attn_decode: the key-a-lane kernel has no copy stages");
    if (chunk != 128 && chunk != 256) return pb_fail("attn_decode: %d keys a block (128 or 256)", chunk);
    /* the partials are laid out for the largest split count so both cases agree */
    int stride_splits = decode_splits(a->max_ctx, chunk);
    int splits = decode_launch_splits(a, chunk);
    float scale = 1.0f / sqrtf((float)a->hd);
    dim3 grid(splits, a->hq, a->batch);
    void (*kernel)(struct attn_args, float, int) =
        a->hd == 64 ? (chunk == 128 ? decode_kernel<64, 128> : decode_kernel<64, 256>)
                    : (chunk == 128 ? decode_kernel<128, 128> : decode_kernel<128, 256>);
    cudaCheck(pdl_launch(kernel, grid, dim3(chunk), 0, s, a->pdl, *a, scale, stride_splits));
    return PB_OK;
}
