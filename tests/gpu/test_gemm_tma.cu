/* The TMA + wgmma decode kernel (gemm_tma) against the CPU fp32 reference, its K
 * slices through the partials the next norm adds, and the row-independence the
 * decode microbatches rely on: a row's bits must not depend on the rows sharing
 * the call, where the row sits, or wgmma's row tile. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

/* ks = 1: straight into y; ks > 1: partials, then k_add_partials onto y (which
 * the case fills as the residual when accumulating) */
static int tma_case(int m, int n, int k, int accumulate, int ks, int bn, int pdl, uint64_t seed)
{
    struct linear_case c;
    linear_case_setup(&c, m, n, k, ks > 1 || accumulate, seed);
    c.accumulate = ks > 1 || accumulate;
    int bad;
    if (ks > 1) {
        float *part = NULL;
        const int prow = m + 3;  /* slices further apart than the rows, as in a part's workspace */
        cudaMalloc((void **)&part, (size_t)ks * prow * n * sizeof(float));
        cudaMemset(part, 0xff, (size_t)ks * prow * n * sizeof(float));
        bad = gemm_tma_cfg(c.x, c.w, NULL, part, prow, m, n, k, 0, ks, bn, 0, 0, pdl) != 0;
        bad |= k_add_partials(c.y, part, ks, prow, m, n, 0, pdl) != 0;
        bad |= cudaDeviceSynchronize() != cudaSuccess;
        cudaFree(part);
    } else {
        bad = gemm_tma_cfg(c.x, c.w, c.y, NULL, 0, m, n, k, accumulate, 1, bn, 0, 0, pdl) != 0;
        bad |= cudaDeviceSynchronize() != cudaSuccess;
    }
    return linear_case_finish(&c, "gemm_tma", bad);
}

/* Odd shapes: K not a multiple of 64 (a zero-filled last tile), N not a multiple
 * of the unit (a partial unit), every row tile, more units than SMs (a block
 * takes several, the ring running on between them), slices of unequal K. */
TEST(test_gemm_tma_matches_cpu)
{
    CHECK(!tma_case(1, 100, 64, 0, 1, 64, 0, 301));
    CHECK(!tma_case(3, 777, 264, 1, 1, 128, 1, 302));
    CHECK(!tma_case(8, 256, 688, 0, 1, 64, 0, 303));
    CHECK(!tma_case(16, 1000, 4096, 1, 1, 64, 1, 304));
    CHECK(!tma_case(17, 300, 520, 0, 1, 128, 0, 305));
    CHECK(!tma_case(33, 4096, 4096, 1, 1, 64, 1, 306));  /* the decode o shape, accumulating */
    CHECK(!tma_case(64, 200, 256, 0, 1, 64, 0, 307));
    CHECK(!tma_case(5, 20000, 128, 0, 1, 64, 1, 308));   /* 313 units: two or three a block */
    CHECK(!tma_case(2, 64, 72, 0, 1, 64, 0, 309));
    CHECK(!tma_case(16, 4096, 4096, 0, 2, 64, 1, 310)); /* o in two slices */
    CHECK(!tma_case(9, 512, 11008, 0, 4, 128, 0, 311)); /* down's K in four */
    CHECK(!tma_case(64, 264, 200, 0, 3, 64, 1, 312));   /* four K tiles in three slices */
    CHECK(!tma_case(100, 1000, 4096, 1, 1, 128, 0, 313)); /* a short prompt's rows in the 128-row tile */
    CHECK(!tma_case(128, 4096, 1024, 0, 2, 64, 1, 314));
}

/* A row alone, among few rows, among many and in every row tile gives the same
 * bits: plain, accumulating, and as K-slice partials. */
TEST(test_gemm_tma_does_not_depend_on_row_count)
{
    const int M = 64, N = 4200, K = 4104, KS = 2;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 321, NULL), *w = dev_random((size_t)N * K, 0.1f, 322, NULL);
    bf16 *all, *part;
    float *pall, *ppart;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    cudaMalloc((void **)&pall, (size_t)KS * M * N * 4);
    cudaMalloc((void **)&ppart, (size_t)KS * M * N * 4);
    for (int bn = 64; bn <= 128; bn += 64) {
        poison(all, (size_t)M * N);
        CHECK(gemm_tma_cfg(x, w, all, NULL, 0, M, N, K, 0, 1, bn, 64, 0) == 0);
        CHECK(gemm_tma_cfg(x, w, NULL, pall, M, M, N, K, 0, KS, bn, 64, 0) == 0);
        const int lo[6] = {0, 5, 3, 9, 40, 0}, cnt[6] = {16, 11, 1, 33, 24, 8};
        const int tile[6] = {0, 0, 64, 128, 32, 8};
        for (int i = 0; i < 6; i++) {
            poison(part, (size_t)M * N);
            CHECK(gemm_tma_cfg(x + (size_t)lo[i] * K, w, part, NULL, 0, cnt[i], N, K, 0, 1, bn, tile[i], 0, i & 1) == 0);
            CHECK(gemm_tma_cfg(x + (size_t)lo[i] * K, w, NULL, ppart, M, cnt[i], N, K, 0, KS, bn, tile[i], 0,
                               i & 1) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(all + (size_t)lo[i] * N, part, (size_t)cnt[i] * N));
            for (int sl = 0; sl < KS; sl++)  /* fp32 partials: compare as pairs of bf16 */
                CHECK(bits_equal(pall + ((size_t)sl * M + lo[i]) * N, ppart + (size_t)sl * M * N,
                                 (size_t)cnt[i] * N * 2));
        }
    }
    bf16 *one = dev_random((size_t)M * N, 1.0f, 323, NULL);
    const int ms[4] = {1, 8, 16, 40};
    for (int i = 0; i < 4; i++) {
        cudaMemcpy(part, one, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);
        CHECK(gemm_tma_cfg(x, w, one, NULL, 0, ms[i], N, K, 1, 1, 64, 0, 0) == 0);
        CHECK(gemm_tma_cfg(x, w, part, NULL, 0, ms[i], N, K, 1, 1, 128, 64, 0, 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(one, part, (size_t)ms[i] * N));
    }
    cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part), cudaFree(one), cudaFree(pall), cudaFree(ppart);
}

/* The fused gate-up kernel gives the bits of the plain product then k_swiglu, at
 * every row tile, under programmatic launch or not, an intermediate size that is
 * not a multiple of the unit among them. */
TEST(test_gemm_tma_swiglu_equals_product_then_swiglu)
{
    const int K = 4096, ms[5] = {1, 13, 16, 33, 64}, tiles[5] = {0, 16, 0, 64, 0};
    fused_swiglu_case(
        failures_, 64, ms, 5, 331,
        [](const bf16 *x, const bf16 *w, bf16 *gu, int m, int n) {
            return gemm_tma_cfg(x, w, gu, NULL, 0, m, n, K, 0, 1, 64, 0, 0);
        },
        [&](const bf16 *x, const bf16 *w, bf16 *act, int m, int inter, int i) {
            return gemm_tma_swiglu(x, w, act, m, inter, K, tiles[i], 0, i & 1);
        });
}

/* Rings of 16 KiB (two stages), 64 KiB and the default give the same bits; sizes
 * outside 16-200 KiB are refused. */
TEST(test_gemm_tma_ring_size_keeps_the_bits)
{
    const int M = 64, N = 1000, K = 4104;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 341, NULL), *w = dev_random((size_t)N * K, 0.1f, 342, NULL);
    bf16 *a, *b;
    cudaMalloc((void **)&a, (size_t)M * N * 2);
    cudaMalloc((void **)&b, (size_t)M * N * 2);
    const int keep = gemm_tma_ring();
    CHECK(gemm_tma_set_ring(8 * 1024) != 0 && gemm_tma_set_ring(300 * 1024) != 0 && gemm_tma_ring() == keep);
    const int rows[3] = {5, 16, 64}, bn[3] = {64, 128, 128};
    for (int i = 0; i < 3; i++) {
        CHECK(gemm_tma_cfg(x, w, a, NULL, 0, rows[i], N, K, 0, 1, bn[i], 0, 0) == 0);
        for (int ring = 16 * 1024; ring <= 64 * 1024; ring *= 4) {
            poison(b, (size_t)M * N);
            CHECK(gemm_tma_set_ring(ring) == 0);
            CHECK(gemm_tma_cfg(x, w, b, NULL, 0, rows[i], N, K, 0, 1, bn[i], 0, 0, 1) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(a, b, (size_t)rows[i] * N));
        }
        CHECK(gemm_tma_set_ring(keep) == 0);
    }
    cudaFree(x), cudaFree(w), cudaFree(a), cudaFree(b);
}

/* One or two consumer warpgroups, one wgmma group in flight or none: the bits of
 * one warpgroup waiting on each stage, plain, as K-slice partials and fused with
 * the SwiGLU, at every row tile (8 rows keep one warpgroup), with a ring of two
 * stages among them; other settings are refused. */
TEST(test_gemm_tma_consumers_keep_the_bits)
{
    const int M = 128, N = 1000, K = 4104, KS = 2, I = 344;  /* w holds gate and up: 2 I <= N */
    bf16 *x = dev_random((size_t)M * K, 1.0f, 351, NULL), *w = dev_random((size_t)N * K, 0.1f, 352, NULL);
    bf16 *a, *b, *sa, *sb;
    float *pa, *pb;
    cudaMalloc((void **)&a, (size_t)M * N * 2);
    cudaMalloc((void **)&b, (size_t)M * N * 2);
    cudaMalloc((void **)&sa, (size_t)M * I * 2);
    cudaMalloc((void **)&sb, (size_t)M * I * 2);
    cudaMalloc((void **)&pa, (size_t)KS * M * N * 4);
    cudaMalloc((void **)&pb, (size_t)KS * M * N * 4);
    int wg0, inf0;
    gemm_tma_consumers(&wg0, &inf0);
    CHECK(gemm_tma_set_consumers(0, 1) != 0 && gemm_tma_set_consumers(3, 1) != 0 &&
          gemm_tma_set_consumers(1, 2) != 0);
    const int ring0 = gemm_tma_ring();
    const int rows[5] = {5, 16, 33, 64, 100}, bn[5] = {64, 128, 64, 128, 128};
    for (int i = 0; i < 5; i++) {
        const int m = rows[i];
        CHECK(gemm_tma_set_consumers(1, 0) == 0);
        CHECK(gemm_tma_cfg(x, w, a, NULL, 0, m, N, K, 0, 1, bn[i], 0, 0) == 0);
        CHECK(gemm_tma_cfg(x, w, NULL, pa, M, m, N, K, 0, KS, bn[i], 0, 0) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        for (int v = 1; v < 4; v++) {
            CHECK(gemm_tma_set_consumers(1 + v / 2, v % 2) == 0);
            CHECK(gemm_tma_set_ring(v == 3 && i == 4 ? 16 * 1024 : ring0) == 0);
            poison(b, (size_t)M * N);
            cudaMemset(pb, 0xff, (size_t)KS * M * N * 4);
            CHECK(gemm_tma_cfg(x, w, b, NULL, 0, m, N, K, 0, 1, bn[i], 0, 0, v & 1) == 0);
            CHECK(gemm_tma_cfg(x, w, NULL, pb, M, m, N, K, 0, KS, bn[i], 0, 0) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(a, b, (size_t)m * N));
            for (int sl = 0; sl < KS; sl++)
                CHECK(bits_equal(pa + (size_t)sl * M * N, pb + (size_t)sl * M * N, (size_t)m * N * 2));
            /* the fused SwiGLU: gate and up tiles in each warpgroup */
            CHECK(gemm_tma_set_consumers(1, 0) == 0);
            CHECK(gemm_tma_swiglu(x, w, sa, m, I, K, 0, 0) == 0);
            CHECK(gemm_tma_set_consumers(1 + v / 2, v % 2) == 0);
            poison(sb, (size_t)M * I);
            CHECK(gemm_tma_swiglu(x, w, sb, m, I, K, 0, 0, 1) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(sa, sb, (size_t)m * I));
        }
        CHECK(gemm_tma_set_ring(ring0) == 0);
    }
    CHECK(gemm_tma_set_consumers(wg0, inf0) == 0);
    cudaFree(x), cudaFree(w), cudaFree(a), cudaFree(b), cudaFree(sa), cudaFree(sb), cudaFree(pa), cudaFree(pb);
}

/* Bad arguments are refused with a message, not launched. */
TEST(test_gemm_tma_refuses_bad_arguments)
{
    bf16 *b;
    float *p;
    cudaMalloc((void **)&b, 1 << 20);
    cudaMalloc((void **)&p, 1 << 20);
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 1, 8, 12, 0, 1, 64, 0, 0) != 0);    /* K not a multiple of 8 */
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 129, 8, 64, 0, 1, 64, 0, 0) != 0);  /* over 128 rows */
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 1, 8, 64, 0, 1, 96, 0, 0) != 0);    /* no such unit */
    CHECK(gemm_tma_cfg(b, b, b, p, 4, 1, 8, 128, 0, 3, 64, 0, 0) != 0);     /* 3 slices of 2 K tiles */
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 1, 8, 128, 0, 2, 64, 0, 0) != 0);   /* slices without partials */
    CHECK(gemm_tma_cfg(b, b, b, p, 2, 4, 8, 128, 0, 2, 64, 0, 0) != 0);     /* partials of fewer rows */
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 20, 8, 64, 0, 1, 64, 16, 0) != 0);  /* a row tile under the rows */
    CHECK(gemm_tma_cfg(b + 1, b, b, NULL, 0, 1, 8, 64, 0, 1, 64, 0, 0) != 0); /* X not 16-byte aligned */
    CHECK(gemm_tma_cfg(b, b, b, NULL, 0, 1, 8, 64, 0, 1, 64, 0, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(b), cudaFree(p);
}
