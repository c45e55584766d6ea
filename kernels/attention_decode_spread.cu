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
#include "attention_spread.cuh"
#include "cuda_check.h"
#include "pdl.h"

typedef __nv_bfloat16 bf16;

/* Grid (splits, hq, batch), WARPS * 32 threads. Rope, the new key and value, the
 * loads before pdl_wait and the ticket follow the key-a-lane kernel (attention.cu
 * says why each is safe). */
template <int D, int CHUNK, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) decode_spread_kernel(struct attn_args a, float scale, int splits)
{
    typedef spread_geom<D, CHUNK, WARPS> G;
    constexpr int LPK = G::LPK, KPI = G::KPI, KPW = G::KPW, S = G::S;
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
#pragma unroll
    for (int s = 0; s < S; s++)
        if (wbase + s * KPI == pos) {
            kr[s] = ((const uint4 *)sm.knew)[part];
            vr[s] = ((const uint4 *)vnew)[part];
        }
    const int n = min(decode_splits(kv_len, CHUNK), (int)gridDim.x);
    float *all = a.partials + ((size_t)b * a.hq + h) * splits * (D + DECODE_PART_ACC);
    float *mine = all + (size_t)split * (D + DECODE_PART_ACC);
    bf16 *out = a.out + ((size_t)b * a.hq + h) * D;
    spread_split<D, CHUNK, WARPS>(sm, sm.red[0], kr, vr, wbase, kv_len, scale, n == 1, mine, out);
    if (n == 1) return;
    /* wacc and wl are read above and rewritten by the combine: take_last_ticket's
     * barriers order the two */
    if (!take_last_ticket(a.counters + (size_t)b * a.hq + h, 1, n, &sm.is_last)) return;
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
    const int splits = decode_launch_splits(a, chunk);
    const float scale = 1.0f / sqrtf((float)a->hd);
    cudaCheck(pdl_launch(a->hd == 64 ? st->d64 : st->d128, dim3(splits, a->hq, a->batch), dim3(warps * 32), 0, s,
                         a->pdl, *a, scale, stride_splits));
    return PB_OK;
}
