/* The shared-memory streaming decode kernel (gemm_stream) against the CPU fp32
 * reference, and the row-independence that keeps decode microbatches
 * bit-identical: a row's bits must not depend on how many rows share the call,
 * where the row sits, or the rows of X a block takes; only the K-split may change
 * them, and it comes from the shape alone. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static int stream_case(int m, int n, int k, int accumulate, int splits, int pdl, uint64_t seed)
{
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = splits ? gemm_stream_cfg(c.x, c.w, c.y, m, n, k, accumulate, 0, splits, 0, splits, 0, pdl) != 0
                     : gemm_stream(c.x, c.w, c.y, m, n, k, accumulate, 0, pdl) != 0;
    bad |= cudaDeviceSynchronize() != cudaSuccess;
    return linear_case_finish(&c, "gemm_stream", bad);
}

/* Odd shapes: K not a multiple of 64 (a partial last tile), N not a multiple of
 * 128 (a partial block), rows in each row-tile variant and over 64, every split
 * count, more splits than K tiles, L2 prefetch on (the prefetch count rides on the
 * split argument here only to vary it). */
TEST(test_gemm_stream_matches_cpu)
{
    CHECK(!stream_case(1, 100, 64, 0, 0, 0, 171));
    CHECK(!stream_case(3, 777, 264, 0, 2, 1, 172));
    CHECK(!stream_case(8, 256, 688, 1, 3, 0, 173));
    CHECK(!stream_case(16, 1000, 4096, 0, 8, 1, 174));
    CHECK(!stream_case(17, 300, 520, 1, 5, 0, 175));
    CHECK(!stream_case(64, 200, 256, 0, 4, 0, 176));
    CHECK(!stream_case(70, 130, 136, 1, 1, 1, 177));
    CHECK(!stream_case(5, 9000, 128, 0, 0, 0, 178));
    CHECK(!stream_case(2, 64, 72, 0, 7, 0, 179));     /* seven splits of two K tiles: empty blocks add zeros */
    CHECK(!stream_case(33, 4096, 4096, 1, 0, 1, 180)); /* the decode o shape, default split, accumulating */
}

/* A row computed alone, among few rows, among many, past 64 and in a 128-row tile
 * gives the same bits, plain and accumulating; a different split changes only
 * rounding. */
TEST(test_gemm_stream_does_not_depend_on_row_count)
{
    const int M = 150, N = 4200, K = 4104;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 181, NULL), *w = dev_random((size_t)N * K, 0.1f, 182, NULL);
    bf16 *all, *part;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    const int sp[2] = {0, 3};
    for (int v = 0; v < 2; v++) {
        int splits = sp[v] ? sp[v] : gemm_stream_splits(N, K, 0);
        poison(all, (size_t)M * N);
        CHECK(gemm_stream_cfg(x, w, all, M, N, K, 0, 0, splits, 0, 0, 0) == 0);
        const int lo[7] = {0, 5, 3, 9, 40, 1, 0}, cnt[7] = {16, 11, 1, 71, 33, 7, 150};
        const int tile[7] = {0, 0, 0, 0, 0, 8, 128};
        for (int i = 0; i < 7; i++) {
            poison(part, (size_t)M * N);
            CHECK(gemm_stream_cfg(x + (size_t)lo[i] * K, w, part, cnt[i], N, K, 0, 0, splits, tile[i], 2 * i, 0,
                                  i & 1) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(all + (size_t)lo[i] * N, part, (size_t)cnt[i] * N));
        }
    }
    bf16 *one = dev_random((size_t)M * N, 1.0f, 183, NULL);
    const int ms[4] = {1, 8, 16, 40};
    for (int i = 0; i < 4; i++) {
        cudaMemcpy(part, one, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);
        CHECK(gemm_stream(x, w, one, ms[i], N, K, 1, 0) == 0);
        CHECK(gemm_stream_cfg(x, w, part, ms[i], N, K, 1, 0, gemm_stream_splits(N, K, 0), 64, 0, 0, 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(one, part, (size_t)ms[i] * N));
    }
    cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part), cudaFree(one);
}

/* The fused gate-up kernel with SwiGLU gives the bits of gemm_stream then
 * k_swiglu, at every row-tile variant, split or not, under programmatic launch. */
TEST(test_gemm_stream_swiglu_equals_stream_then_swiglu)
{
    const int K = 4096, inter[2] = {344, 11008};
    for (int v = 0; v < 2; v++) CHECK(gemm_stream_splits(2 * inter[v], K, 0) == gemm_stream_splits(inter[v], K, 1));
    const int ms[6] = {1, 2, 13, 16, 33, 70};
    fused_swiglu_case(
        failures_, 70, ms, 6, 191,
        [](const bf16 *x, const bf16 *w, bf16 *gu, int m, int n) { return gemm_stream(x, w, gu, m, n, K, 0, 0); },
        [](const bf16 *x, const bf16 *w, bf16 *act, int m, int inter_, int i) {
            return gemm_stream_swiglu(x, w, act, m, inter_, K, 0, i & 1);
        });
}

/* Bad arguments are refused with a message, not launched. */
TEST(test_gemm_stream_refuses_bad_arguments)
{
    bf16 *b;
    cudaMalloc((void **)&b, 4096);
    CHECK(gemm_stream(b, b, b, 1, 8, 12, 0, 0) != 0);                      /* K not a multiple of 8 */
    CHECK(gemm_stream_cfg(b, b, b, 1, 8, 16, 0, 0, 9, 0, 0, 0) != 0);     /* more than a cluster of 8 */
    CHECK(gemm_stream_cfg(b, b, b, 1, 8, 16, 0, 0, 1, 24, 0, 0) != 0);    /* no such row tile */
    cudaFree(b);
}

/* Blocks of 4 warps (64 weight rows) give the bits of blocks of 8, and so does the
 * default's choice by rows: plain and SwiGLU, accumulating, every row tile, split
 * and unsplit, partial blocks; a bad setting is refused. */
TEST(test_gemm_stream_four_warps_equal_eight)
{
    const int N = 300, K = 1000, M = 70;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 190, NULL), *w = dev_random((size_t)2 * N * K, 0.1f, 191, NULL);
    bf16 *base = dev_random((size_t)M * 2 * N, 1.0f, 192, NULL), *a, *b;
    cudaMalloc((void **)&a, (size_t)M * 2 * N * 2);
    cudaMalloc((void **)&b, (size_t)M * 2 * N * 2);
    const int was = gemm_stream_warps();
    const int ms[5] = {1, 16, 17, 64, 70}, splits[3] = {1, 2, 4};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            for (int sw = 0; sw < 2; sw++) {
                const int acc = (i + j) & 1;
                cudaMemcpy(a, base, (size_t)M * 2 * N * 2, cudaMemcpyDeviceToDevice);
                cudaMemcpy(b, base, (size_t)M * 2 * N * 2, cudaMemcpyDeviceToDevice);
                gemm_stream_set_warps(8);
                CHECK(gemm_stream_cfg(x, w, a, ms[i], N, K, sw ? 0 : acc, sw, splits[j], 0, 0, 0, i & 1) == 0);
                gemm_stream_set_warps(4);
                CHECK(gemm_stream_cfg(x, w, b, ms[i], N, K, sw ? 0 : acc, sw, splits[j], 0, 0, 0, i & 1) == 0);
                CHECK(cudaDeviceSynchronize() == cudaSuccess);
                CHECK(bits_equal(a, b, (size_t)ms[i] * N));
            }
    gemm_stream_set_warps(0);  /* by rows: the same bits again */
    for (int i = 0; i < 5; i++) {
        CHECK(gemm_stream_cfg(x, w, b, ms[i], N, K, 0, 1, 2, 0, 0, 0, 0) == 0);
        gemm_stream_set_warps(8);
        CHECK(gemm_stream_cfg(x, w, a, ms[i], N, K, 0, 1, 2, 0, 0, 0, 0) == 0);
        gemm_stream_set_warps(0);
        CHECK(bits_equal(a, b, (size_t)ms[i] * N));
    }
    gemm_stream_set_warps(3);
    CHECK(gemm_stream(x, w, a, 1, N, K, 0, 0) != 0);
    gemm_stream_set_warps(was);
    cudaFree(x), cudaFree(w), cudaFree(base), cudaFree(a), cudaFree(b);
}
