/* The spread decode kernel fed by the copy engine (attention.h,
 * attn_args.decode_stages > 0). Its lanes hold a key's row as the register kernel's
 * do (attention_decode_spread.cu) and every split runs that kernel's math
 * (attention_spread.cuh), so a setting (CHUNK, WARPS) gives the same bits in both.
 * What differs is who loads the keys and values and how many splits a block takes:
 *
 * - a block takes the splits blockIdx.x, blockIdx.x + gridDim.x, ... of its
 *   (sequence, head), so the grid can be sized to the device's resident blocks
 *   whatever the context, and a short context in a long cache still spreads its
 *   splits over blocks;
 * - thread 0 copies each split's cached keys and values into shared memory with
 *   one bulk copy each (cp.async.bulk, completing on an mbarrier), STAGES splits
 *   ahead, the first ones before pdl_wait. The register kernel's block holds its
 *   one split in registers (91 a thread at 64 keys, 4 warps: 5 blocks an SM) and
 *   loads nothing while it works; here the copies of the next splits run while the
 *   block works one, and the registers stay free.
 *
 * A stage is refilled once the block's barrier in the split's math shows every
 * thread has read it, and the warps' sums alternate between two sets, so a split
 * costs one barrier.
 *
 * The partials, the tickets (a block takes one per split it holds) and the combine
 * are the register kernel's, so neither the split-to-block assignment nor the
 * grid's size can change a bit. When the grid has one block a head (batches of
 * many sequences), that block keeps its partials in shared memory and combines
 * them without a ticket: the same floats in the same order. */
#include <algorithm>
#include "attention_spread.cuh"
#include "cuda_check.h"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(unsigned long long *bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

/* Arm the barrier for `bytes` of copies and copy the n bytes at src (16-byte
 * multiples, 16-byte aligned) to dst, twice (keys, values), completing on it. */
__device__ __forceinline__ void bulk_copy_pair(void *dst_k, const void *src_k, void *dst_v, const void *src_v,
                                               unsigned n, unsigned long long *bar)
{
    const unsigned b = smem_u32(bar);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(2 * n) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst_k)),
                 "l"(src_k), "r"(n), "r"(b)
                 : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst_v)),
                 "l"(src_v), "r"(n), "r"(b)
                 : "memory");
}

__device__ __forceinline__ void mbar_wait(unsigned long long *bar, unsigned parity)
{
    unsigned done;
    do {
        asm volatile(
            "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
            : "=r"(done)
            : "r"(smem_u32(bar)), "r"(parity)
            : "memory");
    } while (!done);
}

/* Grid (blocks a head, hq, batch), WARPS * 32 threads; nsplit splits launched a head
 * (the register kernel's grid.x), their partials `splits` apart. Dynamic shared
 * memory: min(STAGES, splits a block) stages of a chunk's keys then its values. */
template <int D, int CHUNK, int WARPS, int STAGES>
__global__ void __launch_bounds__(WARPS * 32)
    decode_bulk_kernel(struct attn_args a, float scale, int splits, int nsplit, int local)
{
    typedef spread_geom<D, CHUNK, WARPS> G;
    constexpr int LPK = G::LPK, KPI = G::KPI, KPW = G::KPW, S = G::S;
    constexpr int CE = CHUNK * D;  /* elements of a chunk's keys */
    __shared__ spread_smem<D, WARPS, 2> sm;
    __shared__ __align__(8) unsigned long long bar[STAGES];
    extern __shared__ __align__(128) unsigned char stage_mem[];
    bf16 *stage = (bf16 *)stage_mem;  /* [STAGES][2][CE] */
    const int j0 = blockIdx.x, nb = gridDim.x, h = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane / LPK, part = lane % LPK;
    const decode_seq sq = decode_seq_of<D>(a, b, h, j0, CHUNK);
    const int pos = sq.pos, kv_len = sq.kv_len;
    const int n = min(decode_splits(kv_len, CHUNK), nsplit);
    const int held = sq.active ? (n - 1 - j0) / nb + 1 : 0;  /* splits j0 + t nb < n */
    /* split t's keys before pos, which earlier steps wrote: readable before pdl_wait */
    auto cached = [&](int t) { return max(0, min(CHUNK, pos - (j0 + t * nb) * CHUNK)); };
    auto issue = [&](int t) {
        const int ck = cached(t);
        if (ck == 0) return;
        bf16 *dk = stage + (size_t)(t % STAGES) * 2 * CE;
        const size_t off = (size_t)(j0 + t * nb) * CE;
        bulk_copy_pair(dk, sq.kc + off, dk + CE, sq.vc + off, (unsigned)ck * D * sizeof(bf16), &bar[t % STAGES]);
    };
    if (threadIdx.x == 0) {
#pragma unroll
        for (int st = 0; st < STAGES; st++) mbar_init(&bar[st], 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        for (int t = 0; t < min(STAGES, held); t++) issue(t);
    }
    __syncthreads();
    const bf16 *vnew;
    if (!decode_take_new_token_at<D>(sm, a, sq, b, h, (pos / CHUNK) % nb == j0, &vnew)) return;
    /* local: the grid has one block a head, which keeps its partials in shared memory */
    float *all = local ? (float *)(stage + (size_t)min(STAGES, nsplit) * 2 * CE)
                       : a.partials + ((size_t)b * a.hq + h) * splits * (D + DECODE_PART_ACC);
    bf16 *out = a.out + ((size_t)b * a.hq + h) * D;
    unsigned phase = 0;  /* a bit a stage: the parity its next copy completes */
    for (int t = 0; t < held; t++) {
        const int j = j0 + t * nb, key0 = j * CHUNK, st = t % STAGES;
        const bf16 *ks = stage + (size_t)st * 2 * CE, *vs = ks + CE;
        if (cached(t) > 0) {
            mbar_wait(&bar[st], (phase >> st) & 1u);
            phase ^= 1u << st;
        }
        const int wbase = key0 + warp * KPW + sub;
        uint4 kr[S], vr[S];
#pragma unroll
        for (int s = 0; s < S; s++) {
            const int key = wbase + s * KPI;
            if (key < pos) {
                kr[s] = ((const uint4 *)(ks + (size_t)(key - key0) * D))[part];
                vr[s] = ((const uint4 *)(vs + (size_t)(key - key0) * D))[part];
            } else if (key == pos) {
                kr[s] = ((const uint4 *)sm.knew)[part];
                vr[s] = ((const uint4 *)vnew)[part];
            } else {
                kr[s] = vr[s] = make_uint4(0, 0, 0, 0);
            }
        }
        /* The stage is refilled as soon as every thread holds its slots, before the
         * split's partial is formed; the partial's two sets alternate, so the next
         * split's barrier is the only one a split needs. */
        auto refill = [&]() {
            if (threadIdx.x == 0 && t + STAGES < held) {
                asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  /* the reads above before the copy's writes */
                issue(t + STAGES);
            }
        };
        spread_split<D, CHUNK, WARPS>(sm, sm.red[t & 1], kr, vr, wbase, kv_len, scale, n == 1,
                                      all + (size_t)j * (D + DECODE_PART_ACC), out, refill);
    }
    if (n == 1) return;
    if (local) {
        __syncthreads();  /* every thread's partials written, the last split's sums read */
        spread_combine<D, WARPS, 2, true>(sm, n, all, out);
        return;
    }
    if (!take_last_ticket(a.counters + (size_t)b * a.hq + h, held, n, &sm.is_last)) return;
    spread_combine<D, WARPS>(sm, n, all, out);
}

typedef void (*bulk_fn)(struct attn_args, float, int, int, int);
struct bulk_setting {
    int chunk, warps, stages;
    bulk_fn d64, d128;
};
#define BULK(c, w, st) {c, w, st, decode_bulk_kernel<64, c, w, st>, decode_bulk_kernel<128, c, w, st>}
#define BULK_STAGES(c, w) BULK(c, w, 1), BULK(c, w, 2), BULK(c, w, 3), BULK(c, w, 4)
static const struct bulk_setting bulk_settings[] = {BULK_STAGES(32, 2), BULK_STAGES(32, 4), BULK_STAGES(64, 2),
                                                    BULK_STAGES(64, 4), BULK_STAGES(64, 8)};
#undef BULK_STAGES
#undef BULK

/* A block with every split of its head keeps their partials in shared memory when
 * they take at most half a stage (31 splits of 64 keys at 128 dims); past that
 * they go through L2 as the others' do, so the copies keep the memory. */
static size_t bulk_local_bytes(size_t stage_bytes) { return stage_bytes / 2; }
static int bulk_local_on = 1;
void attn_decode_bulk_set_local(int on) { bulk_local_on = on; }

/* The device's resident blocks of fn at its stages' shared memory, once per
 * (kernel, device): the grid the auto split count aims at. The limit it sets
 * leaves room for the local partials. */
static int resident_blocks(bulk_fn fn, size_t smem, size_t stage_bytes)
{
    enum { SLOTS = 256 };
    static struct { bulk_fn fn; int dev, blocks; } seen[SLOTS];
    static int n_seen;
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    for (int i = 0; i < n_seen; i++)
        if (seen[i].fn == fn && seen[i].dev == dev) return seen[i].blocks;
    cudaCheck(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(smem + bulk_local_bytes(stage_bytes))));
    int per_sm = 0, sms = 0;
    cudaFuncAttributes fa;
    cudaCheck(cudaFuncGetAttributes(&fa, fn));
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, fa.maxThreadsPerBlock, smem));
    cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int blocks = per_sm > 0 ? per_sm * sms : sms;
    if (n_seen < SLOTS) seen[n_seen++] = {fn, dev, blocks};
    return blocks;
}

static const struct bulk_setting *bulk_setting_of(int chunk, int warps, int stages)
{
    for (const struct bulk_setting &x : bulk_settings)
        if (x.chunk == chunk && x.warps == warps && x.stages == stages) return &x;
    return NULL;
}

int attn_decode_bulk_supported(int chunk, int warps, int stages) { return bulk_setting_of(chunk, warps, stages) != NULL; }

/* A stage: a chunk's keys then its values. */
static size_t bulk_stage_bytes(int chunk, int hd) { return (size_t)2 * chunk * hd * sizeof(bf16); }

static int resident_blocks_of(const struct bulk_setting *st, int hd)
{
    const size_t stage_bytes = bulk_stage_bytes(st->chunk, hd);
    return resident_blocks(hd == 64 ? st->d64 : st->d128, st->stages * stage_bytes, stage_bytes);
}

/* Blocks a head of a one-wave grid: as many as the resident blocks allow. */
static int one_wave_blocks(const struct attn_args *a, int resident, int nsplit)
{
    return std::max(1, std::min(nsplit, resident / (a->hq * a->batch)));
}

int attn_decode_bulk_default_stages(const struct attn_args *a, int chunk, int warps)
{
    const struct bulk_setting *one = bulk_setting_of(chunk, warps, 1);
    const int nsplit = decode_launch_splits(a, chunk);
    if (one && nsplit > 1 && one_wave_blocks(a, resident_blocks_of(one, a->hd), nsplit) == 1) return 1;
    if (nsplit >= ATTN_DECODE_BULK_SPLITS && bulk_setting_of(chunk, warps, ATTN_DECODE_BULK_STAGES))
        return ATTN_DECODE_BULK_STAGES;
    return 0;
}

int attn_decode_bulk(const struct attn_args *a, int chunk, int warps, int stages, cudaStream_t s)
{
    const struct bulk_setting *st = bulk_setting_of(chunk, warps, stages);
    if (!st)
        return pb_fail("attn_decode: %d keys, %d warps a block in %d stages is not a bulk setting (attention.h)", chunk,
                       warps, stages);
    if (a->splits_per_block < 0) return pb_fail("attn_decode: %d splits a block", a->splits_per_block);
    const bulk_fn fn = a->hd == 64 ? st->d64 : st->d128;
    const size_t stage_bytes = bulk_stage_bytes(chunk, a->hd);
    const int stride_splits = decode_splits(a->max_ctx, chunk);
    const int nsplit = decode_launch_splits(a, chunk);
    const int resident = resident_blocks_of(st, a->hd);  /* also raises fn's shared-memory limit */
    int per_block = a->splits_per_block;
    if (per_block == 0) {  /* one wave */
        const int nb = one_wave_blocks(a, resident, nsplit);
        per_block = (nsplit + nb - 1) / nb;
    }
    per_block = std::min(per_block, nsplit);
    const int nb = (nsplit + per_block - 1) / per_block;
    const size_t part_bytes = (size_t)nsplit * (a->hd + DECODE_PART_ACC) * sizeof(float);
    const int local = bulk_local_on && nb == 1 && nsplit > 1 && part_bytes <= bulk_local_bytes(stage_bytes);
    const size_t smem = std::min(st->stages, per_block) * stage_bytes + (local ? part_bytes : 0);
    const float scale = 1.0f / sqrtf((float)a->hd);
    cudaCheck(pdl_launch(fn, dim3(nb, a->hq, a->batch), dim3(warps * 32), smem, s, a->pdl, *a, scale, stride_splits,
                         nsplit, local));
    return PB_OK;
}
