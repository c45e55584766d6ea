/* The tensor-core decode kernel (gemm_skinny) against the CPU fp32 reference, and
 * the row-independence that keeps decode microbatches bit-identical: a row's bits
 * must not depend on how many rows share the call, where the row sits in its tile,
 * the block's column tiles, or the row chunks over blocks (more than 64 rows). */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static int skinny_case(int m, int n, int k, int accumulate, int pdl, uint64_t seed)
{
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = gemm_skinny(c.x, c.w, c.y, m, n, k, accumulate, 0, pdl) != 0;
    bad |= cudaDeviceSynchronize() != cudaSuccess;
    return linear_case_finish(&c, "gemm_skinny", bad);
}

/* Odd shapes: K not a multiple of 32 (a partial last chunk), N not a multiple of
 * 16 (a partial column tile), rows in each row-tile variant and over 64. */
TEST(test_gemm_skinny_matches_cpu)
{
    CHECK(!skinny_case(1, 100, 64, 0, 0, 71));
    CHECK(!skinny_case(3, 777, 264, 0, 1, 72));
    CHECK(!skinny_case(8, 256, 688, 1, 0, 73));
    CHECK(!skinny_case(16, 1000, 4096, 0, 1, 74));
    CHECK(!skinny_case(17, 300, 520, 1, 0, 75));
    CHECK(!skinny_case(64, 200, 256, 0, 0, 76));
    CHECK(!skinny_case(70, 130, 136, 1, 1, 77));
    CHECK(!skinny_case(5, 9000, 128, 0, 0, 78));  /* many column tiles, a partial last one */
}

/* A row computed alone, among few rows, among many and past 64 gives the same
 * bits; one or two column tiles a block too (plain and accumulating). */
TEST(test_gemm_skinny_does_not_depend_on_row_count)
{
    const int M = 80, N = 4200, K = 4104;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 81, NULL), *w = dev_random((size_t)N * K, 0.1f, 82, NULL);
    bf16 *all, *part;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    poison(all, (size_t)M * N);
    CHECK(gemm_skinny(x, w, all, M, N, K, 0, 0) == 0);
    const int lo[6] = {0, 5, 3, 9, 40, 1}, cnt[6] = {16, 11, 1, 71, 33, 7};
    for (int i = 0; i < 6; i++) {
        poison(part, (size_t)M * N);
        CHECK(gemm_skinny(x + (size_t)lo[i] * K, w, part, cnt[i], N, K, 0, 0, i & 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(all + (size_t)lo[i] * N, part, (size_t)cnt[i] * N));
    }
    const int ms[4] = {1, 8, 16, 40};
    bf16 *one = dev_random((size_t)M * N, 1.0f, 83, NULL);
    for (int i = 0; i < 4; i++)
        for (int acc = 0; acc < 2; acc++) {
            cudaMemcpy(part, one, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);
            CHECK(gemm_skinny_mt(x, w, one, ms[i], N, K, acc, 1, 0) == 0);
            CHECK(gemm_skinny_mt(x, w, part, ms[i], N, K, acc, 2, 0, acc) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(one, part, (size_t)ms[i] * N));
        }
    cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part), cudaFree(one);
}

/* The fused gate-up kernel with SwiGLU gives the bits of gemm_skinny then
 * k_swiglu, at every row-tile variant, and under programmatic launch. */
TEST(test_gemm_skinny_swiglu_equals_skinny_then_swiglu)
{
    const int I = 344, K = 264, M = 70;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 91, NULL), *w = dev_random((size_t)2 * I * K, 0.1f, 92, NULL);
    bf16 *gu, *want, *got;
    cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2);
    cudaMalloc((void **)&want, (size_t)M * I * 2);
    cudaMalloc((void **)&got, (size_t)M * I * 2);
    const int ms[6] = {1, 2, 13, 16, 33, 70};
    for (int i = 0; i < 6; i++) {
        int m = ms[i];
        poison(got, (size_t)M * I);
        CHECK(gemm_skinny(x, w, gu, m, 2 * I, K, 0, 0) == 0);
        CHECK(k_swiglu(gu, want, m, I, 0) == 0);
        CHECK(gemm_skinny_swiglu(x, w, got, m, I, K, 0, i & 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(want, got, (size_t)m * I));
    }
    cudaFree(x), cudaFree(w), cudaFree(gu), cudaFree(want), cudaFree(got);
}
