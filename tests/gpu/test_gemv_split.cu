/* The GEMV with each column's K split over several warps of a block (gemm.h,
 * gemv_wave_set): the fp32 reference at every split and load width, odd K (parts
 * of unequal length, parts past K that add nothing), a row's bits independent of
 * the rows sharing the call and of the load width, SwiGLU and the folded norm
 * giving their two-kernel bits at the same split, and bad settings refused. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static const struct gemv_wave_cfg wave_default = gemv_wave_get();

static const int splits[4] = {1, 2, 4, 8};

static int split_case(int ks, int u, int m, int n, int k, int accumulate, int pdl, uint64_t seed)
{
    gemv_wave_set({1, ks, ks, ks, u});
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = gemm_rows(c.x, c.w, c.y, m, n, k, accumulate, 0, pdl) != 0;
    bad |= cudaDeviceSynchronize() != cudaSuccess;
    gemv_wave_set(wave_default);
    if (bad) fprintf(stderr, "  K over %d warps, %d vectors a lane\n", ks, u);
    return linear_case_finish(&c, "gemm_rows (K split)", bad);
}

TEST(test_gemv_k_split_matches_cpu)
{
    for (int i = 0; i < 4; i++)
        for (int u = 2; u <= 8; u *= 2) {
            int ks = splits[i];
            uint64_t seed = 500 + 10 * i + u;
            CHECK(!split_case(ks, u, 1, 100, 64, 0, 0, seed));         /* fewer vectors than parts of 32 */
            CHECK(!split_case(ks, u, 2, 777, 264, 1, 1, seed + 100));  /* a partial last part */
            CHECK(!split_case(ks, u, 4, 256, 11008, 0, 0, seed + 200)); /* the down shape's K */
            CHECK(!split_case(ks, u, 8, 300, 4104, 1, 1, seed + 300));  /* eight rows a block */
            CHECK(!split_case(ks, u, 13, 61, 4096, 0, 0, seed + 400));  /* two row blocks, a partial column block */
        }
}

/* The vectors a lane loads at a time change the loads, not the sums: the same
 * bits, plain and SwiGLU, at each split and row count. */
TEST(test_gemv_vectors_a_lane_keep_the_bits)
{
    const int M = 8, N = 300, K = 11008;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 580, NULL), *w = dev_random((size_t)2 * N * K, 0.1f, 581, NULL);
    bf16 *a, *b;
    cudaMalloc((void **)&a, (size_t)M * N * 2);
    cudaMalloc((void **)&b, (size_t)M * N * 2);
    const int ms[4] = {1, 2, 3, 8};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            for (int sw = 0; sw < 2; sw++) {
                poison(a, (size_t)M * N), poison(b, (size_t)M * N);
                gemv_wave_set({1, splits[i], splits[i], splits[i], 8});
                CHECK((sw ? gemm_rows_swiglu(x, w, a, ms[j], N, K, 0) : gemm_rows(x, w, a, ms[j], N, K, 0, 0)) == 0);
                for (int u = 2; u <= 4; u *= 2) {
                    gemv_wave_set({1, splits[i], splits[i], splits[i], u});
                    CHECK((sw ? gemm_rows_swiglu(x, w, b, ms[j], N, K, 0) : gemm_rows(x, w, b, ms[j], N, K, 0, 0)) == 0);
                    CHECK(bits_equal(a, b, (size_t)ms[j] * N));
                }
            }
    gemv_wave_set(wave_default);
    cudaFree(x), cudaFree(w), cudaFree(a), cudaFree(b);
}

/* A row alone, among few rows and among many: the same bits at each split. */
TEST(test_gemv_k_split_rows_independent)
{
    const int M = 13, N = 203, K = 4104;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 550, NULL), *w = dev_random((size_t)N * K, 0.1f, 551, NULL);
    bf16 *all, *part;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    for (int i = 1; i < 4; i++) {
        gemv_wave_set({1, splits[i], splits[i], splits[i], 8});
        CHECK(gemm_rows(x, w, all, M, N, K, 0, 0) == 0);
        const int ms[4] = {1, 2, 3, 8};
        for (int j = 0; j < 4; j++) {
            poison(part, (size_t)M * N);
            CHECK(gemm_rows(x + 5 * K, w, part, ms[j], N, K, 0, 0) == 0);
            CHECK(bits_equal(all + 5 * N, part, (size_t)ms[j] * N));
        }
    }
    gemv_wave_set(wave_default);
    cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part);
}

/* SwiGLU in the epilogue equals the GEMV then k_swiglu, and the folded norm equals
 * k_rmsnorm then the GEMV, at each split. */
TEST(test_gemv_k_split_swiglu_and_norm_keep_their_bits)
{
    const int H = 4096, I = 72, N = 136, M = 4;
    bf16 *x = dev_random((size_t)M * H, 3.0f, 560, NULL), *nw = dev_random(H, 1.0f, 561, NULL);
    bf16 *w = dev_random((size_t)2 * I * H, 0.1f, 562, NULL);
    bf16 *normed, *gu, *want, *got;
    cudaMalloc((void **)&normed, (size_t)M * H * 2);
    cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2);
    cudaMalloc((void **)&want, (size_t)M * N * 2);
    cudaMalloc((void **)&got, (size_t)M * N * 2);
    for (int i = 1; i < 4; i++) {
        gemv_wave_set({1, splits[i], splits[i], splits[i], 8});
        for (int m = 1; m <= M; m++) {
            CHECK(gemm_rows(x, w, gu, m, 2 * I, H, 0, 0) == 0);
            CHECK(k_swiglu(gu, want, m, I, 0) == 0);
            poison(got, (size_t)M * N);
            CHECK(gemm_rows_swiglu(x, w, got, m, I, H, 0, m & 1) == 0);
            CHECK(bits_equal(want, got, (size_t)m * I));
            CHECK(k_rmsnorm(x, 1, 0, nw, normed, m, H, 1e-5f, 0) == 0);
            CHECK(gemm_rows(normed, w, want, m, N, H, 0, 0) == 0);
            poison(got, (size_t)M * N);
            CHECK(gemm_rows_norm(x, nw, 1e-5f, w, got, m, N, H, 0, m & 1) == 0);
            CHECK(bits_equal(want, got, (size_t)m * N));
        }
    }
    gemv_wave_set(wave_default);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(nw), cudaFree(w), cudaFree(normed), cudaFree(gu), cudaFree(want), cudaFree(got);
}

TEST(test_gemv_k_split_refuses_a_bad_split)
{
    bf16 *x = dev_random(64, 1.0f, 570, NULL), *w = dev_random(64 * 64, 0.1f, 571, NULL), *y;
    cudaMalloc((void **)&y, 64 * 2);
    gemv_wave_set({1, 3, 1, 1, 8});
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_wave_set({1, 1, 16, 1, 8});
    CHECK(gemm_rows(x, w, y, 1, 9000, 64, 0, 0) != 0);
    gemv_wave_set({1, 1, 1, 1, 6});
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_wave_set(wave_default);
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(y);
}
