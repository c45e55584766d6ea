/* The attention kernels against the CPU's attention over the same cache: prefill
 * at a position offset and not, and the decode kernels (key-a-lane and spread) at
 * every setting and on each split's boundaries. */
#include "../../kernels/attention.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

/* The CPU's attention for `batch` sequences of `seq` queries [batch, seq, hq, hd]
 * at positions pos.., over a cache laid out as the kernels' ([max_batch][hkv]
 * [max_ctx][hd], sequence b at bo + b), keys [0, pos + seq). */
static void ref_attention_over_cache(const float *q, const float *kcache, const float *vcache, float *out, int batch,
                                     int seq, int pos, int bo, int hq, int hkv, int hd, int max_ctx)
{
    int n_keys = pos + seq;
    float *k = (float *)malloc((size_t)n_keys * hkv * hd * 4), *v = (float *)malloc((size_t)n_keys * hkv * hd * 4);
    for (int b = 0; b < batch; b++) {
        for (int j = 0; j < n_keys; j++)
            for (int kh = 0; kh < hkv; kh++) {
                size_t at = (((size_t)(bo + b) * hkv + kh) * max_ctx + j) * hd;
                memcpy(k + ((size_t)j * hkv + kh) * hd, kcache + at, hd * 4);
                memcpy(v + ((size_t)j * hkv + kh) * hd, vcache + at, hd * 4);
            }
        ref_attention(q + (size_t)b * seq * hq * hd, k, v, out + (size_t)b * seq * hq * hd, seq, pos, hq, hkv, hd);
    }
    free(k), free(v);
}

/* Prefill attention over a random cache, with and without a position offset,
 * against the CPU. */
static void attention_case(int *failures_, int hd, int hq, int hkv, int batch, int seq, int pos, uint64_t seed)
{
    int max_ctx = pos + seq + 3, bo = 1, max_batch = batch + 1;
    size_t cache = (size_t)max_batch * hkv * max_ctx * hd, qn = (size_t)batch * seq * hq * hd;
    float *hq_, *hk, *hv;
    bf16 *q = dev_random(qn, 2.0f, seed, &hq_), *kc = dev_random(cache, 2.0f, seed + 1, &hk);
    bf16 *vc = dev_random(cache, 1.0f, seed + 2, &hv), *out;
    cudaMalloc((void **)&out, qn * 2);
    poison(out, qn);
    struct attn_args a = {q, kc, vc, out, batch, seq, bo, pos, NULL, hq, hkv, hd, max_ctx, NULL};
    CHECK(attn_setup() == 0);
    CHECK(attn_prefill(&a, 0) == 0);
    float *got = download(out, qn), *ref = (float *)malloc(qn * 4);
    ref_attention_over_cache(hq_, hk, hv, ref, batch, seq, pos, bo, hq, hkv, hd, max_ctx);
    double e = ref_rel_error(got, ref, qn);
    if (!(e <= REL_TOL_KERNEL)) {
        fprintf(stderr, "  attention hd=%d hq=%d hkv=%d batch=%d seq=%d pos=%d: rel error %g\n", hd, hq, hkv, batch,
                seq, pos, e);
        (*failures_)++;
    }
    free(hq_), free(hk), free(hv), free(got), free(ref);
    cudaFree(q), cudaFree(kc), cudaFree(vc), cudaFree(out);
}

TEST(test_attention_prefill_matches_cpu)
{
    attention_case(failures_, 64, 4, 2, 2, 77, 0, 80);
    attention_case(failures_, 128, 4, 4, 3, 64, 0, 81);
    attention_case(failures_, 128, 8, 2, 1, 130, 19, 82);
    attention_case(failures_, 64, 2, 1, 2, 1, 0, 83);
    attention_case(failures_, 128, 4, 4, 2, 300, 0, 84);   /* several query tiles, a ragged last one */
    attention_case(failures_, 128, 4, 2, 1, 200, 77, 85);  /* query tiles not aligned to the key tiles */
    attention_case(failures_, 64, 4, 4, 1, 256, 0, 86);
}

/* The decode kernel from un-roped qkv rows: it must write exactly the cache bits
 * k_rope_qkv writes (and nothing else), and its output must match the CPU's
 * attention over that cache with k_rope_qkv's query. Called twice (host and device
 * position), it must give the same bits and leave its counters at zero. */
static void decode_case(int *failures_, int hd, int hq, int hkv, int batch, int pos, int extra_ctx, int dev_pos,
                        uint64_t seed, int keys_per_block = 0, int warps_per_block = 0)
{
    int max_ctx = pos + 1 + extra_ctx, bo = 1, max_batch = batch + 1;
    int qkv_n = (hq + 2 * hkv) * hd;
    size_t cache = (size_t)max_batch * hkv * max_ctx * hd, qn = (size_t)batch * hq * hd;
    float *dinv = dev_tiny_inv_freq(hd);
    float *hqkv, *hk, *hv;
    bf16 *qkv = dev_random((size_t)batch * qkv_n, 2.0f, seed, &hqkv);
    bf16 *kc = dev_random(cache, 2.0f, seed + 1, &hk), *vc = dev_random(cache, 1.0f, seed + 2, &hv);
    bf16 *kc_ref, *vc_ref, *q_ref, *out;
    cudaMalloc((void **)&kc_ref, cache * 2);
    cudaMalloc((void **)&vc_ref, cache * 2);
    cudaMemcpy(kc_ref, kc, cache * 2, cudaMemcpyDeviceToDevice);
    cudaMemcpy(vc_ref, vc, cache * 2, cudaMemcpyDeviceToDevice);
    cudaMalloc((void **)&q_ref, qn * 2);
    cudaMalloc((void **)&out, qn * 2);
    poison(out, qn);
    struct rope_args ra = {qkv, q_ref, kc_ref, vc_ref, dinv, batch, 1, bo, pos, NULL, hq, hkv, hd, max_ctx};
    CHECK(k_rope_qkv(&ra, 0) == 0);
    float *partials;
    int *counters, *dpos;
    cudaMalloc((void **)&partials, attn_decode_partials_floats(max_batch, hq, hd, max_ctx) * 4);
    cudaMalloc((void **)&counters, attn_decode_counters(max_batch, hq) * sizeof(int));
    cudaMemset(counters, 0, attn_decode_counters(max_batch, hq) * sizeof(int));
    cudaMalloc((void **)&dpos, sizeof(int));
    cudaMemcpy(dpos, &pos, sizeof(int), cudaMemcpyHostToDevice);
    struct attn_args a = {NULL, kc, vc, out, batch, 1, bo, pos, dev_pos ? dpos : NULL, hq, hkv, hd, max_ctx, partials};
    a.qkv = qkv;
    a.inv_freq = dinv;
    a.counters = counters;
    a.keys_per_block = keys_per_block;
    a.warps_per_block = warps_per_block;
    CHECK(attn_decode(&a, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(bits_equal(kc, kc_ref, cache));
    CHECK(bits_equal(vc, vc_ref, cache));
    float *got = download(out, qn), *ref = (float *)malloc(qn * 4);
    /* again, with the other kind of position: the same bits, nothing carried over */
    bf16 *first;
    cudaMalloc((void **)&first, qn * 2);
    cudaMemcpy(first, out, qn * 2, cudaMemcpyDeviceToDevice);
    poison(out, qn);
    a.pos_dev = dev_pos ? NULL : dpos;
    CHECK(attn_decode(&a, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(bits_equal(first, out, qn));
    int *hc = (int *)malloc(attn_decode_counters(max_batch, hq) * sizeof(int));
    cudaMemcpy(hc, counters, attn_decode_counters(max_batch, hq) * sizeof(int), cudaMemcpyDeviceToHost);
    int nonzero = 0;
    for (size_t i = 0; i < attn_decode_counters(max_batch, hq); i++) nonzero += hc[i] != 0;
    CHECK(nonzero == 0);
    float *rq = download(q_ref, qn), *rk = download(kc_ref, cache), *rv = download(vc_ref, cache);
    ref_attention_over_cache(rq, rk, rv, ref, batch, 1, pos, bo, hq, hkv, hd, max_ctx);
    double e = ref_rel_error(got, ref, qn);
    if (!(e <= REL_TOL_KERNEL)) {
        fprintf(stderr, "  decode hd=%d hq=%d hkv=%d batch=%d pos=%d keys a block %d, warps %d: rel error %g\n", hd,
                hq, hkv, batch, pos, keys_per_block, warps_per_block, e);
        (*failures_)++;
    }
    free(hqkv), free(hk), free(hv), free(got), free(ref), free(hc), free(rq), free(rk), free(rv);
    cudaFree(qkv), cudaFree(kc), cudaFree(vc), cudaFree(kc_ref), cudaFree(vc_ref), cudaFree(q_ref), cudaFree(out);
    cudaFree(first), cudaFree(partials), cudaFree(counters), cudaFree(dpos), cudaFree(dinv);
}

TEST(test_attention_decode_matches_cpu)
{
    decode_case(failures_, 128, 4, 2, 3, 0, 0, 0, 90);
    decode_case(failures_, 128, 4, 2, 3, 300, 3, 0, 91);
    decode_case(failures_, 64, 4, 1, 2, 129, 200, 1, 92);
    decode_case(failures_, 128, 8, 8, 1, 555, 1, 1, 93);
    decode_case(failures_, 64, 2, 2, 2, 255, 130, 1, 94);  /* the new key is the last of its split */
    decode_case(failures_, 128, 4, 1, 1, 256, 0, 0, 95);   /* ... and the first of a new one */
    decode_case(failures_, 64, 2, 2, 2, 127, 130, 1, 97);    /* the last key of the first block of 128 */
    /* the key-a-lane kernel (warps 0) at 128 keys a block, the default before the spread one */
    decode_case(failures_, 128, 4, 2, 3, 300, 3, 0, 101, 128);
    decode_case(failures_, 64, 2, 2, 2, 127, 130, 1, 102, 128);
    decode_case(failures_, 128, 4, 1, 1, 128, 0, 0, 103, 128);
    /* 256 keys a block, the other size: fewer splits, the same boundary cases */
    decode_case(failures_, 128, 4, 2, 3, 300, 3, 0, 96, 256);
    decode_case(failures_, 64, 2, 2, 2, 255, 130, 1, 98, 256);
    decode_case(failures_, 128, 4, 1, 1, 256, 0, 1, 99, 256);
    decode_case(failures_, 128, 8, 8, 1, 555, 1, 0, 100, 256);
}

/* The spread kernel at every setting (attention.h), on the key-a-lane kernel's
 * cases and on each chunk's own boundaries: the new key the last of a split, the
 * first of one, a single split, a split whose last warps have no key, more splits
 * than the combine's warps, and more than they hold in registers. */
TEST(test_attention_decode_spread_matches_cpu)
{
    static const int settings[ATTN_DECODE_SPREAD_COUNT][2] = ATTN_DECODE_SPREAD_SETTINGS;
    for (int i = 0; i < ATTN_DECODE_SPREAD_COUNT; i++) {
        const int c = settings[i][0], w = settings[i][1];
        const uint64_t seed = 200 + 10 * i;
        decode_case(failures_, 128, 4, 2, 3, 0, 0, 0, seed, c, w);                 /* one key */
        decode_case(failures_, 128, 4, 2, 3, 300, 3, 0, seed + 1, c, w);
        decode_case(failures_, 64, 4, 1, 2, c - 1, 200, 1, seed + 2, c, w);       /* the last key of split 0 */
        decode_case(failures_, 128, 4, 1, 1, c, 0, 0, seed + 3, c, w);            /* the first of split 1 */
        decode_case(failures_, 64, 2, 2, 2, 2 * c + c / 4, 130, 1, seed + 4, c, w); /* warps past the last key */
        decode_case(failures_, 128, 8, 8, 1, 555, 1, 1, seed + 5, c, w);
        decode_case(failures_, 128, 2, 1, 1, 1500, 40, 1, seed + 6, c, w);        /* up to 47 splits */
        /* one split more than the combine holds in registers (8 a warp): the rest by its loop */
        decode_case(failures_, 128, 2, 1, 1, 8 * w * c + c / 2, 5, 0, seed + 7, c, w);
    }
}
