/* The GEMV with each column's K split over several warps of a block (gemm.h,
 * gemv_wave_set): the fp32 reference at every split and load width, odd K (parts
 * of unequal length, parts past K that add nothing), a row's bits independent of
 * the rows sharing the call and of the load width, SwiGLU and the folded norm
 * giving their two-kernel bits at the same split, the norm folded late against
 * its fp32 reference, the L2 prefetch before pdl_wait keeping the bits, and bad
 * settings refused. */
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

/* The norm folded late (gemm_rows_norm_late): y = bf16(x g) W^T / rms(x) against
 * a reference in doubles with that one rounding, at each split, for the gate-up
 * SwiGLU too; a row's bits alone and among the others, and SwiGLU's bits equal
 * the plain late fold over [gate; up] then k_swiglu. */
static void ref_norm_late(const float *x, const float *g, const float *w, float *y, int m, int n, int k, float eps)
{
    for (int r = 0; r < m; r++) {
        double ss = 0;
        for (int i = 0; i < k; i++) ss += (double)x[(size_t)r * k + i] * x[(size_t)r * k + i];
        const double inv = 1.0 / sqrt(ss / k + eps);
        for (int c = 0; c < n; c++) {
            double acc = 0;
            for (int i = 0; i < k; i++)
                acc += (double)ref_from_bits(ref_bf16_bits(x[(size_t)r * k + i] * g[i])) * w[(size_t)c * k + i];
            y[(size_t)r * n + c] = (float)(acc * inv);
        }
    }
}

TEST(test_gemv_norm_late_matches_cpu)
{
    const int M = 4, N = 136, I = 72, ks[2] = {4104, 11008};
    for (int kc = 0; kc < 2; kc++) {
        const int K = ks[kc];
        float *hx, *hg, *hw;
        bf16 *x = dev_random((size_t)M * K, 3.0f, 600 + kc, &hx), *g = dev_random(K, 1.0f, 602 + kc, &hg);
        bf16 *w = dev_random((size_t)2 * I * K > (size_t)N * K ? (size_t)2 * I * K : (size_t)N * K, 0.1f, 604 + kc, &hw);
        bf16 *a, *b, *gu;
        cudaMalloc((void **)&a, (size_t)M * N * 2);
        cudaMalloc((void **)&b, (size_t)M * N * 2);
        cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2);
        float *ref = (float *)malloc((size_t)M * N * 4);
        ref_norm_late(hx, hg, hw, ref, M, N, K, 1e-5f);
        for (int i = 0; i < 4; i++) {
            gemv_wave_set({1, splits[i], splits[i], splits[i], 2});
            poison(a, (size_t)M * N);
            CHECK(gemm_rows_norm_late(x, g, 1e-5f, w, a, M, N, K, 0, i & 1) == 0);
            float *got = download(a, (size_t)M * N);
            CHECK_REL(got, ref, (size_t)M * N, REL_TOL_KERNEL);
            free(got);
            for (int m = 1; m < M; m++) {  /* row 1 alone and among m rows: the same bits */
                poison(b, (size_t)M * N);
                CHECK(gemm_rows_norm_late(x + (size_t)K, g, 1e-5f, w, b, m, N, K, 0, m & 1) == 0);
                CHECK(bits_equal(a + N, b, N));
            }
            for (int m = 1; m <= M; m += 3) {
                CHECK(gemm_rows_norm_late(x, g, 1e-5f, w, gu, m, 2 * I, K, 0) == 0);
                CHECK(k_swiglu(gu, b, m, I, 0) == 0);
                poison(a, (size_t)M * N);
                CHECK(gemm_rows_swiglu_norm_late(x, g, 1e-5f, w, a, m, I, K, 0, 1) == 0);
                CHECK(bits_equal(a, b, (size_t)m * I));
            }
        }
        gemv_wave_set(wave_default);
        CHECK(!gemm_rows_norm_fits(8, K) && !gemm_rows_norm_fits(1, 16392));  /* rows; the norm weight in shared memory */
        CHECK(gemm_rows_norm_late(x, g, 1e-5f, w, a, 8, N, K, 0) != 0);  /* more rows than a fold takes */
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        cudaFree(x), cudaFree(g), cudaFree(w), cudaFree(a), cudaFree(b), cudaFree(gu);
        free(hx), free(hg), free(hw), free(ref);
    }
}

/* The bulk L2 prefetch before pdl_wait (gemv_wave_cfg.pf) only asks for bytes
 * early: the fp32 reference, and the bits without it, at each split, for a part
 * longer and shorter than the prefetch, plain, SwiGLU and with the folded norm,
 * under programmatic launch (without it nothing is prefetched) and with the
 * weights ending where their allocation ends. */
TEST(test_gemv_l2_prefetch_keeps_the_bits)
{
    const int M = 4, N = 301, K = 11008;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 590, NULL), *w = dev_random((size_t)2 * N * K, 0.1f, 591, NULL);
    bf16 *nw = dev_random(K, 1.0f, 592, NULL);
    bf16 *a, *b;
    cudaMalloc((void **)&a, (size_t)M * 2 * N * 2);
    cudaMalloc((void **)&b, (size_t)M * 2 * N * 2);
    const int pfs[4] = {16, 1024, 4096, 1 << 20};
    for (int i = 0; i < 4; i++)
        for (int mode = 0; mode < 3; mode++)
            for (int m = 1; m <= M; m += 3) {
                struct gemv_wave_cfg c = {1, splits[i], splits[i], splits[i], 2, 0};
                gemv_wave_set(c);
                poison(a, (size_t)M * 2 * N);
                int n = mode == 1 ? N : 2 * N;  /* plain over all 2N rows: the last row ends the allocation */
                CHECK((mode == 0 ? gemm_rows(x, w, a, m, n, K, 0, 0, 1)
                       : mode == 1 ? gemm_rows_swiglu(x, w, a, m, N, K, 0, 1)
                                   : gemm_rows_norm(x, nw, 1e-5f, w, a, m, n, K, 0, 1)) == 0);
                for (int j = 0; j < 4; j++) {
                    c.pf = pfs[j];
                    gemv_wave_set(c);
                    poison(b, (size_t)M * 2 * N);
                    CHECK((mode == 0 ? gemm_rows(x, w, b, m, n, K, 0, 0, 1)
                           : mode == 1 ? gemm_rows_swiglu(x, w, b, m, N, K, 0, 1)
                                       : gemm_rows_norm(x, nw, 1e-5f, w, b, m, n, K, 0, 1)) == 0);
                    CHECK(bits_equal(a, b, (size_t)m * n));
                }
            }
    gemv_wave_set(wave_default);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(nw), cudaFree(a), cudaFree(b);
    for (int i = 0; i < 4; i++) {  /* and against the reference, a partial last part */
        gemv_wave_set({1, splits[i], splits[i], splits[i], 2, 1 << 20});
        struct linear_case c;
        linear_case_setup(&c, 2, 777, 264, 1, 595 + i);
        int bad = gemm_rows(c.x, c.w, c.y, 2, 777, 264, 1, 0, 1) != 0;
        bad |= cudaDeviceSynchronize() != cudaSuccess;
        gemv_wave_set(wave_default);
        CHECK(!linear_case_finish(&c, "gemm_rows (L2 prefetch)", bad));
    }
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
    gemv_wave_set({1, 1, 1, 1, 8, 100});  /* a prefetch not a multiple of 16 bytes */
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_wave_set({1, 1, 1, 1, 8, -16});
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_wave_set(wave_default);
    CHECK(gemm_rows(x, w, y, 1, 64, 64, 0, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(y);
}
