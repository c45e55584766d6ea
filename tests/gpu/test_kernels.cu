/* Each kernel of the core against the CPU fp32 reference on random inputs of
 * several shapes (odd ones too), outputs poisoned first, NaN never passes; and the
 * row-independence that keeps microbatches bit-identical. The attention kernels'
 * are in test_attention.cu. */
#include <math.h>
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static int gemm_lt_case(int m, int n, int k, int accumulate, uint64_t seed)
{
    struct gemm_ctx g;
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    if (gemm_init(&g, ws, m) || gemm_prepare(&g, n, k)) return 1;
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = gemm_lt(&g, c.x, c.w, c.y, m, n, k, accumulate, m % 2 ? GEMM_CLASS_SHORT : GEMM_CLASS_LONG, 0) != 0;
    bad = linear_case_finish(&c, "gemm_lt", bad);
    gemm_destroy(&g);
    cudaFree(ws);
    return bad;
}

TEST(test_gemm_lt_matches_cpu)
{
    CHECK(!gemm_lt_case(7, 96, 64, 0, 1));
    CHECK(!gemm_lt_case(130, 688, 256, 0, 2));
    CHECK(!gemm_lt_case(333, 1000, 344, 0, 3));
    CHECK(!gemm_lt_case(65, 256, 688, 1, 4));
}

static int gemm_rows_case(int m, int n, int k, int accumulate, uint64_t seed)
{
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = gemm_rows(c.x, c.w, c.y, m, n, k, accumulate, 0) != 0;
    return linear_case_finish(&c, "gemm_rows", bad);
}

TEST(test_gemm_rows_matches_cpu)
{
    CHECK(!gemm_rows_case(1, 100, 64, 0, 11));
    CHECK(!gemm_rows_case(3, 777, 264, 0, 12));
    CHECK(!gemm_rows_case(8, 256, 688, 1, 13));
    CHECK(!gemm_rows_case(13, 1000, 4096, 0, 14));
}

/* A row computed alone, or among few rows, or among many, gives the same bits. */
TEST(test_gemm_rows_do_not_depend_on_row_count)
{
    const int M = 1024, N = 768, K = 256, lo = 100, cnt = 37;
    struct gemm_ctx g;
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    CHECK(gemm_init(&g, ws, M) == 0 && gemm_prepare(&g, N, K) == 0);
    bf16 *x = dev_random((size_t)M * K, 1.0f, 21, NULL), *w = dev_random((size_t)N * K, 0.1f, 22, NULL);
    bf16 *all, *part;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    poison(part, (size_t)M * N);
    for (int cls = 0; cls < 2; cls++) {
        CHECK(gemm_lt(&g, x, w, all, M, N, K, 0, cls, 0) == 0);
        CHECK(gemm_lt(&g, x + (size_t)lo * K, w, part + (size_t)lo * N, cnt, N, K, 0, cls, 0) == 0);
        CHECK(bits_equal(all + (size_t)lo * N, part + (size_t)lo * N, (size_t)cnt * N));
        CHECK(gemm_lt(&g, x + (size_t)lo * K, w, part + (size_t)lo * N, 1, N, K, 0, cls, 0) == 0);
        CHECK(bits_equal(all + (size_t)lo * N, part + (size_t)lo * N, N));
    }
    /* the GEMV path likewise: 16 rows at once and 8 + 8, and 1 */
    CHECK(gemm_rows(x, w, all, 16, N, K, 0, 0) == 0);
    CHECK(gemm_rows(x, w, part, 5, N, K, 0, 0) == 0);
    CHECK(gemm_rows(x + 5 * K, w, part + 5 * N, 11, N, K, 0, 0) == 0);
    CHECK(bits_equal(all, part, (size_t)16 * N));
    for (int m = 1; m <= 4; m++) {  /* the narrow variants (1, 2, 4 rows) too */
        CHECK(gemm_rows(x + 3 * K, w, part, m, N, K, 0, 0) == 0);
        CHECK(bits_equal(all + 3 * N, part, (size_t)m * N));
    }
    gemm_destroy(&g);
    cudaFree(ws), cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part);
}

/* The long class, timed at 4096 rows in a context whose calls can be long: a row
 * gets the same bits in a call of 4096 rows, of 1000 and 3096, and alone; two such
 * contexts keep one algorithm (the process-wide table); it matches the CPU. A
 * context of at most GEMM_SHORT_SEQ rows times nothing for it. */
TEST(test_long_prompt_algorithm_is_timed_shared_and_row_independent)
{
    const int M = 4096, N = 1024, K = 1024, lo = 1000;
    CHECK(gemm_short_is_timed(N, K, M));
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    struct gemm_ctx g, other, small;
    CHECK(gemm_init(&g, ws, M) == 0 && gemm_prepare(&g, N, K) == 0 && g.long_prompts);
    CHECK(gemm_init(&other, ws, 300) == 0 && gemm_prepare(&other, N, K) == 0 && other.long_prompts);
    CHECK(gemm_init(&small, ws, GEMM_SHORT_SEQ) == 0 && !small.long_prompts);
    CHECK(g.shapes[0].cls == GEMM_CLASS_LONG && other.shapes[0].cls == GEMM_CLASS_LONG);
    CHECK(!memcmp(&g.shapes[0].algo, &other.shapes[0].algo, sizeof g.shapes[0].algo));
    bf16 *x = dev_random((size_t)M * K, 1.0f, 25, NULL), *w = dev_random((size_t)N * K, 0.1f, 26, NULL);
    bf16 *all, *part;
    cudaMalloc((void **)&all, (size_t)M * N * 2);
    cudaMalloc((void **)&part, (size_t)M * N * 2);
    poison(part, (size_t)M * N);
    CHECK(gemm_lt(&g, x, w, all, M, N, K, 0, GEMM_CLASS_LONG, 0) == 0);
    CHECK(gemm_lt(&g, x, w, part, lo, N, K, 0, GEMM_CLASS_LONG, 0) == 0);
    CHECK(gemm_lt(&g, x + (size_t)lo * K, w, part + (size_t)lo * N, M - lo, N, K, 0, GEMM_CLASS_LONG, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(bits_equal(all, part, (size_t)M * N));
    CHECK(gemm_lt(&other, x + (size_t)7 * K, w, part, 1, N, K, 0, GEMM_CLASS_LONG, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(bits_equal(all + (size_t)7 * N, part, N));
    struct linear_case c;
    linear_case_setup(&c, 300, N, K, 1, 27);
    int bad = gemm_lt(&g, c.x, c.w, c.y, 300, N, K, 1, GEMM_CLASS_LONG, 0) != 0;
    CHECK(!linear_case_finish(&c, "gemm_lt long", bad));
    gemm_destroy(&g), gemm_destroy(&other), gemm_destroy(&small);
    cudaFree(ws), cudaFree(x), cudaFree(w), cudaFree(all), cudaFree(part);
}

/* The decode class (one-token steps of a part of 16 sequences): its algorithm is
 * timed at 16 rows from candidates for 16, 64 and 128 rows (and gemm_skinny),
 * matches the CPU, and gives a row the same bits in a call of 16 rows, of 5 and 11,
 * and alone, with and without accumulation; a shape given to gemm_skinny gives its
 * bits; a context without decode rows prepares no decode class. */
TEST(test_gemm_decode_class_matches_cpu_and_not_row_count)
{
    const int N = 2048, K = 2048, M = 16;  /* just big enough to be timed */
    CHECK(gemm_decode_is_timed(N, K) && !gemm_decode_is_timed(N, K / 2));
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    struct gemm_ctx g, plain;
    CHECK(gemm_init(&plain, ws, 128) == 0 && gemm_prepare(&plain, N, K) == 0 && plain.n_shapes == 2);
    CHECK(gemm_lt(&plain, NULL, NULL, NULL, 1, N, K, 0, GEMM_CLASS_DECODE, 0) != 0);
    const int tma = gemm_tma_mode();
    gemm_set_tma(GEMM_TMA_OFF);  /* cuBLASLt's decode class (gemm_tma has its own tests) */
    CHECK(gemm_init(&g, ws, 128) == 0 && gemm_set_decode_rows(&g, M) == 0 && gemm_prepare(&g, N, K) == 0);
    gemm_set_tma(tma);
    CHECK(g.n_shapes == 3 && g.decode_rows == M);
    CHECK(gemm_set_decode_rows(&g, 4) != 0);  /* only before the first prepare */
    for (int acc = 0; acc < 2; acc++) {
        struct linear_case c;
        linear_case_setup(&c, M, N, K, acc, 31 + acc);
        bf16 *part;
        cudaMalloc((void **)&part, (size_t)M * N * 2);
        cudaMemcpy(part, c.y, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);  /* the same accumulator */
        bf16 *one;
        cudaMalloc((void **)&one, (size_t)N * 2);
        cudaMemcpy(one, c.y + (size_t)7 * N, (size_t)N * 2, cudaMemcpyDeviceToDevice);
        CHECK(gemm_lt(&g, c.x, c.w, part, 5, N, K, acc, GEMM_CLASS_DECODE, 0) == 0);
        CHECK(gemm_lt(&g, c.x + (size_t)5 * K, c.w, part + (size_t)5 * N, 11, N, K, acc, GEMM_CLASS_DECODE, 0) == 0);
        CHECK(gemm_lt(&g, c.x + (size_t)7 * K, c.w, one, 1, N, K, acc, GEMM_CLASS_DECODE, 0) == 0);
        int bad = gemm_lt(&g, c.x, c.w, c.y, M, N, K, acc, GEMM_CLASS_DECODE, 0) != 0;
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(c.y, part, (size_t)M * N));
        CHECK(bits_equal(c.y + (size_t)7 * N, one, N));
        CHECK(!linear_case_finish(&c, "gemm_lt decode", bad));
        cudaFree(part), cudaFree(one);
    }
    /* a shape the tuning gave to gemm_skinny: gemm_lt gives gemm_skinny's bits */
    g.shapes[2].skinny = 1;
    CHECK(g.shapes[2].cls == GEMM_CLASS_DECODE);
    bf16 *x = dev_random((size_t)M * K, 1.0f, 41, NULL), *w = dev_random((size_t)N * K, 0.1f, 42, NULL);
    bf16 *a, *b;
    cudaMalloc((void **)&a, (size_t)M * N * 2);
    cudaMalloc((void **)&b, (size_t)M * N * 2);
    poison(a, (size_t)M * N), poison(b, (size_t)M * N);
    CHECK(gemm_skinny(x, w, a, M, N, K, 0, 0) == 0);
    CHECK(gemm_lt(&g, x, w, b, 3, N, K, 0, GEMM_CLASS_DECODE, 0) == 0);
    CHECK(gemm_lt(&g, x + (size_t)3 * K, w, b + (size_t)3 * N, M - 3, N, K, 0, GEMM_CLASS_DECODE, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(bits_equal(a, b, (size_t)M * N));
    cudaFree(x), cudaFree(w), cudaFree(a), cudaFree(b);
    gemm_destroy(&g), gemm_destroy(&plain);
    cudaFree(ws);
}

/* A residual product's decode class with K in 2 and 4 slices (gemm_force_ksplit):
 * the slices' partials add up to the CPU's product; a row's partials are the same
 * in a call of 16 rows, of 11 and of 1; k_add_partials adds the slices in order to
 * h in fp32 with one rounding (the host's arithmetic, bit for bit); k_add_rmsnorm
 * gives the bits of k_add_partials then k_rmsnorm. Slices that do not divide K, or
 * a shape prepared without residual, are refused. */
TEST(test_decode_k_slices_add_up_and_do_not_depend_on_rows)
{
    const int N = 512, K = 1024, M = 16;
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    struct gemm_ctx g;
    CHECK(gemm_init(&g, ws, 128) == 0 && gemm_set_decode_rows(&g, M) == 0);
    CHECK(gemm_prepare_residual(&g, N, K) == 0 && gemm_prepare(&g, 256, K) == 0);
    CHECK(gemm_ksplit(&g, N, K, GEMM_CLASS_DECODE) == 0);  /* too small to be timed: not split */
    CHECK(gemm_force_ksplit(&g, N, K, 3) != 0 && gemm_force_ksplit(&g, 256, K, 2) != 0);
    CHECK(gemm_lt_partials(&g, NULL, NULL, 1, 256, K, GEMM_CLASS_DECODE, 0) != 0);
    float *hx, *hw, *hh, *hn;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 51, &hx), *w = dev_random((size_t)N * K, 0.1f, 52, &hw);
    bf16 *h0 = dev_random((size_t)M * N, 1.0f, 53, &hh), *nw = dev_random(N, 1.0f, 54, &hn);
    bf16 *h, *h2, *y, *y2;
    cudaMalloc((void **)&h, (size_t)M * N * 2), cudaMalloc((void **)&h2, (size_t)M * N * 2);
    cudaMalloc((void **)&y, (size_t)M * N * 2), cudaMalloc((void **)&y2, (size_t)M * N * 2);
    float *ref = (float *)malloc((size_t)M * N * 4);
    ref_matmul(hx, hw, ref, M, N, K);
    for (int ks = 2; ks <= 4; ks += 2) {
        CHECK(gemm_force_ksplit(&g, N, K, ks) == 0 && gemm_ksplit(&g, N, K, GEMM_CLASS_DECODE) == ks);
        const size_t mn = (size_t)M * N, all = (size_t)ks * mn;
        float *full = (float *)malloc(all * 4), *part = (float *)malloc(all * 4), *sum = (float *)malloc(mn * 4);
        CHECK(gemm_lt_partials(&g, x, w, M, N, K, GEMM_CLASS_DECODE, 0) == 0);
        CUDA_OK(cudaMemcpy(full, gemm_partials(&g), all * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < mn; i++) {
            sum[i] = 0.0f;
            for (int sl = 0; sl < ks; sl++) sum[i] += full[sl * mn + i];
        }
        CHECK_REL(sum, ref, mn, REL_TOL_KERNEL);
        const int from[2] = {5, 7}, rows[2] = {11, 1};
        for (int c = 0; c < 2; c++) {  /* a row's partials alike in a call of fewer rows */
            CHECK(gemm_lt_partials(&g, x + (size_t)from[c] * K, w, rows[c], N, K, GEMM_CLASS_DECODE, 0) == 0);
            CUDA_OK(cudaMemcpy(part, gemm_partials(&g), all * 4, cudaMemcpyDeviceToHost));
            for (int sl = 0; sl < ks; sl++)
                CHECK(!memcmp(part + sl * mn, full + sl * mn + (size_t)from[c] * N, (size_t)rows[c] * N * 4));
        }
        /* the adds: in order, in fp32, one rounding */
        CHECK(gemm_lt_partials(&g, x, w, M, N, K, GEMM_CLASS_DECODE, 0) == 0);
        cudaMemcpy(h, h0, mn * 2, cudaMemcpyDeviceToDevice);
        cudaMemcpy(h2, h0, mn * 2, cudaMemcpyDeviceToDevice);
        CHECK(k_add_partials(h, gemm_partials(&g), ks, M, M, N, 0) == 0);
        CHECK(k_add_rmsnorm(h2, gemm_partials(&g), ks, M, nw, y2, M, N, 1e-5f, 0) == 0);
        CHECK(k_rmsnorm(h, 1, 0, nw, y, M, N, 1e-5f, 0) == 0);
        uint16_t *got = (uint16_t *)malloc(mn * 2);
        CUDA_OK(cudaMemcpy(got, h, mn * 2, cudaMemcpyDeviceToHost));
        int exact = 1;
        for (size_t i = 0; i < mn; i++) {
            float acc = full[i];
            for (int sl = 1; sl < ks; sl++) acc += full[sl * mn + i];
            exact &= got[i] == ref_bf16_bits(acc + hh[i]);
        }
        CHECK(exact);
        CHECK(bits_equal(h, h2, mn) && bits_equal(y, y2, mn));
        free(full), free(part), free(sum), free(got);
    }
    CHECK(gemm_force_ksplit(&g, N, K, 0) == 0 && gemm_ksplit(&g, N, K, GEMM_CLASS_DECODE) == 0);
    CHECK(k_add_rmsnorm(h, gemm_partials(&g), 2, M, NULL, y, M, N, 1e-5f, 0) != 0);
    CHECK(k_add_partials(h, gemm_partials(&g), 2, 4, M, N, 0) != 0);  /* more rows than a slice holds */
    gemm_destroy(&g);
    cudaFree(ws), cudaFree(x), cudaFree(w), cudaFree(h0), cudaFree(nw), cudaFree(h), cudaFree(h2), cudaFree(y),
        cudaFree(y2);
    free(hx), free(hw), free(hh), free(hn), free(ref);
}

/* A residual product's short class takes K slices on gemm_tma alone, once
 * gemm_set_short_kslices lets it: 2 of them under GEMM_TMA_FORCE (untimed shapes)
 * where ks * tune_rows * N fp32 partials fit in GEMM_PARTIALS_BYTES: N = 8192 at 64
 * rows (4 MiB), not at 128, where gemm_tma takes K whole. A call of fewer rows than tune_rows leaves its slices at the tune_rows
 * stride, and they add up to the CPU's product; a call of more is refused. Shapes
 * prepared without residual and the long class keep K whole, and cuBLASLt's slices
 * are the decode class's alone: a timed short class with gemm_tma off keeps K
 * whole, and gemm_force_ksplit finds no decode class. */
TEST(test_short_class_k_slices_on_gemm_tma_only_where_partials_fit)
{
    const int N = 8192, K = 512, S = GEMM_CLASS_SHORT;
    CHECK(!gemm_short_is_timed(N, K, 128));
    void *ws;
    CUDA_OK(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    const int tma = gemm_tma_mode();
    gemm_set_tma(GEMM_TMA_FORCE);
    {  /* off by default (gemm_set_short_kslices): K whole where the slices would fit */
        struct gemm_ctx g;
        CHECK(gemm_init(&g, ws, 64) == 0 && gemm_prepare_residual(&g, N, K) == 0);
        CHECK(gemm_tma_serves(&g, N, K, S) && gemm_ksplit(&g, N, K, S) == 0);
        gemm_destroy(&g);
    }
    gemm_set_short_kslices(1);
    for (int rows = 64; rows <= 128; rows *= 2) {
        struct gemm_ctx g;
        CHECK(gemm_init(&g, ws, rows) == 0 && gemm_prepare_residual(&g, N, K) == 0 && gemm_prepare(&g, 1024, K) == 0);
        const int fits = rows == 64;
        CHECK(fits == ((size_t)2 * rows * N * sizeof(float) <= GEMM_PARTIALS_BYTES));
        CHECK(gemm_tma_serves(&g, N, K, S) && gemm_partials_rows(&g, S) == rows);
        CHECK(gemm_ksplit(&g, N, K, S) == (fits ? 2 : 0));
        CHECK(gemm_tma_serves(&g, 1024, K, S) && gemm_ksplit(&g, 1024, K, S) == 0);
        CHECK(gemm_ksplit(&g, N, K, GEMM_CLASS_LONG) == 0);
        CHECK(gemm_force_ksplit(&g, N, K, 2) != 0);
        if (fits) {
            const int m = 37;
            struct linear_case c;
            linear_case_setup(&c, m, N, K, 1, 61);  /* y: the residual the slices add to */
            int bad = gemm_lt_partials(&g, c.x, c.w, m, N, K, S, 0) != 0;
            bad |= k_add_partials(c.y, gemm_partials(&g), 2, gemm_partials_rows(&g, S), m, N, 0) != 0;
            CHECK(!linear_case_finish(&c, "gemm_tma short-class slices", bad));
            CHECK(gemm_lt_partials(&g, NULL, NULL, rows + 1, N, K, S, 0) != 0);
        }
        gemm_destroy(&g);
    }
    gemm_set_tma(GEMM_TMA_OFF);
    struct gemm_ctx lt;
    CHECK(gemm_init(&lt, ws, 128) == 0 && gemm_prepare_residual(&lt, 4096, 2048) == 0);
    CHECK(gemm_short_is_timed(4096, 2048, 128) && gemm_ksplit(&lt, 4096, 2048, S) == 0);
    gemm_destroy(&lt);
    gemm_set_short_kslices(0);
    gemm_set_tma(tma);
    cudaFree(ws);
}

/* Launch-bound short-prompt GEMMs (a tiny test model's) take the heuristic's first
 * choice untimed; Llama-2-7B's at 128 rows are timed. */
TEST(test_launch_bound_short_prompt_gemms_are_not_timed)
{
    CHECK(!gemm_short_is_timed(512, 256, 64));
    CHECK(!gemm_short_is_timed(1376, 256, 256));
    CHECK(gemm_short_is_timed(4096, 4096, 128));
    CHECK(gemm_short_is_timed(32000, 4096, 128));
}

/* Two contexts for the same rows (two parts of one run) keep one short-prompt
 * algorithm per shape, whatever the timing noise: their rows' bits agree. The
 * tuning rows follow max_rows up to the cap. */
TEST(test_short_prompt_algorithm_is_shared_by_parts_with_the_same_rows)
{
    const int N = 4096, K = 2048;  /* at 128 rows just big enough to be timed */
    CHECK(gemm_short_is_timed(N, K, 128) && !gemm_short_is_timed(N, K, 96));
    void *ws;
    cudaMalloc(&ws, GEMM_WORKSPACE_BYTES);
    struct gemm_ctx a, b, big;
    CHECK(gemm_init(&a, ws, 128) == 0 && gemm_prepare(&a, N, K) == 0);
    CHECK(gemm_init(&b, ws, 128) == 0 && gemm_prepare(&b, N, K) == 0);
    CHECK(gemm_init(&big, ws, 100000) == 0 && gemm_prepare(&big, N, K) == 0);
    CHECK(a.tune_rows == 128 && big.tune_rows == GEMM_TUNE_ROWS_MAX);
    for (int i = 0; i < a.n_shapes && i < b.n_shapes; i++)
        CHECK(a.shapes[i].cls == b.shapes[i].cls &&
              !memcmp(&a.shapes[i].algo, &b.shapes[i].algo, sizeof a.shapes[i].algo));
    CHECK(a.n_shapes == 2 && b.n_shapes == 2);
    gemm_destroy(&a), gemm_destroy(&b), gemm_destroy(&big);
    cudaFree(ws);
}

/* The fused gate-up GEMV with SwiGLU gives the bits of the GEMV then k_swiglu, at
 * every row-count variant, and under programmatic launch. */
TEST(test_gemm_rows_swiglu_equals_gemv_then_swiglu)
{
    const int I = 344, K = 264, M = 13;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 31, NULL), *w = dev_random((size_t)2 * I * K, 0.1f, 32, NULL);
    bf16 *gu, *want, *got;
    cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2);
    cudaMalloc((void **)&want, (size_t)M * I * 2);
    cudaMalloc((void **)&got, (size_t)M * I * 2);
    const int ms[5] = {1, 2, 3, 8, 13};
    for (int i = 0; i < 5; i++) {
        int m = ms[i];
        poison(got, (size_t)M * I);
        CHECK(gemm_rows(x, w, gu, m, 2 * I, K, 0, 0) == 0);
        CHECK(k_swiglu(gu, want, m, I, 0) == 0);
        CHECK(gemm_rows_swiglu(x, w, got, m, I, K, 0, i & 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(want, got, (size_t)m * I));
    }
    cudaFree(x), cudaFree(w), cudaFree(gu), cudaFree(want), cudaFree(got);
}

/* One or two output columns a warp: the same bits (plain and accumulating), with
 * K unsplit (a split changes the bits; test_gemv_split.cu). */
TEST(test_gemm_rows_two_columns_a_warp_equal_one)
{
    const int N = 77, K = 4104;
    const struct gemv_wave_cfg was = gemv_wave_get();
    gemv_wave_set({1, 1, 1, 1, 8});
    const int ms[4] = {1, 2, 4, 11};
    bf16 *x = dev_random((size_t)11 * K, 1.0f, 51, NULL), *w = dev_random((size_t)N * K, 0.1f, 52, NULL);
    bf16 *one = dev_random((size_t)11 * N, 1.0f, 53, NULL), *two;
    cudaMalloc((void **)&two, (size_t)11 * N * 2);
    for (int i = 0; i < 4; i++) {
        for (int acc = 0; acc < 2; acc++) {
            cudaMemcpy(two, one, (size_t)11 * N * 2, cudaMemcpyDeviceToDevice);
            CHECK(gemm_rows_cols(x, w, one, ms[i], N, K, acc, 1, 0) == 0);
            CHECK(gemm_rows_cols(x, w, two, ms[i], N, K, acc, 2, 0, acc) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(one, two, (size_t)ms[i] * N));
        }
    }
    gemv_wave_set(was);
    cudaFree(x), cudaFree(w), cudaFree(one), cudaFree(two);
}

/* The norm folded into the GEMV (plain and gate-up SwiGLU) gives the bits of
 * k_rmsnorm and then the GEMV, at every row count it takes, with and without
 * programmatic launch. */
TEST(test_gemm_rows_norm_equals_rmsnorm_then_gemv)
{
    const int H = 4096, N = 136, I = 72, M = 4;
    bf16 *x = dev_random((size_t)M * H, 3.0f, 61, NULL), *nw = dev_random(H, 1.0f, 62, NULL);
    bf16 *w = dev_random((size_t)2 * I * H > (size_t)N * H ? (size_t)2 * I * H : (size_t)N * H, 0.1f, 63, NULL);
    bf16 *normed, *want, *got;
    cudaMalloc((void **)&normed, (size_t)M * H * 2);
    cudaMalloc((void **)&want, (size_t)M * N * 2);
    cudaMalloc((void **)&got, (size_t)M * N * 2);
    CHECK(gemm_rows_norm_fits(M, H) && !gemm_rows_norm_fits(8, 4096));
    for (int m = 1; m <= M; m++) {
        CHECK(k_rmsnorm(x, 1, 0, nw, normed, m, H, 1e-5f, 0) == 0);
        CHECK(gemm_rows(normed, w, want, m, N, H, 0, 0) == 0);
        poison(got, (size_t)M * N);
        CHECK(gemm_rows_norm(x, nw, 1e-5f, w, got, m, N, H, 0, m & 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(want, got, (size_t)m * N));
        CHECK(gemm_rows_swiglu(normed, w, want, m, I, H, 0) == 0);
        poison(got, (size_t)M * N);
        CHECK(gemm_rows_swiglu_norm(x, nw, 1e-5f, w, got, m, I, H, 0, m & 1) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bits_equal(want, got, (size_t)m * I));
    }
    cudaFree(x), cudaFree(nw), cudaFree(w), cudaFree(normed), cudaFree(want), cudaFree(got);
}

TEST(test_rmsnorm_matches_cpu)
{
    const int shapes[][2] = {{1, 256}, {37, 2048}, {5, 4104}, {3, 4096}};  /* 2 chunks a thread held, then 4 */
    for (int c = 0; c < 4; c++) {
        int rows = shapes[c][0], H = shapes[c][1];
        float *hx, *hw;
        bf16 *x = dev_random((size_t)rows * H, 3.0f, 30 + c, &hx), *w = dev_random(H, 1.0f, 40 + c, &hw);
        bf16 *y;
        cudaMalloc((void **)&y, (size_t)rows * H * 2);
        poison(y, (size_t)rows * H);
        CHECK(k_rmsnorm(x, 1, 0, w, y, rows, H, 1e-5f, 0) == 0);
        float *ref = (float *)malloc((size_t)rows * H * 4), *got = download(y, (size_t)rows * H);
        ref_rmsnorm(hx, hw, ref, rows, H, 1e-5f);
        CHECK_REL(got, ref, (size_t)rows * H, REL_TOL_KERNEL);
        /* strided: the last row of each of rows/… "sequences" (the head's last_only) */
        if (rows == 37) {
            poison(y, (size_t)rows * H);
            CHECK(k_rmsnorm(x, 12, 11, w, y, 3, H, 1e-5f, 0) == 0);
            float *g2 = download(y, (size_t)3 * H);
            for (int b = 0; b < 3; b++)
                CHECK_REL(g2 + (size_t)b * H, ref + (size_t)(b * 12 + 11) * H, H, REL_TOL_KERNEL);
            free(g2);
        }
        cudaFree(x), cudaFree(w), cudaFree(y);
        free(hx), free(hw), free(ref), free(got);
    }
}

TEST(test_swiglu_and_embed_match_cpu)
{
    int rows = 19, I = 688;
    float *hg;
    bf16 *gu = dev_random((size_t)rows * 2 * I, 4.0f, 50, &hg), *act;
    cudaMalloc((void **)&act, (size_t)rows * I * 2);
    poison(act, (size_t)rows * I);
    CHECK(k_swiglu(gu, act, rows, I, 0) == 0);
    float *ref = (float *)malloc((size_t)rows * I * 4), *got = download(act, (size_t)rows * I);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < I; j++) {
            float g = hg[(size_t)r * 2 * I + j], u = hg[(size_t)r * 2 * I + I + j];
            ref[(size_t)r * I + j] = g / (1.0f + expf(-g)) * u;
        }
    CHECK_REL(got, ref, (size_t)rows * I, REL_TOL_KERNEL);
    free(ref), free(got), free(hg), cudaFree(gu), cudaFree(act);

    int V = 300, H = 264, n = 23, tok[23];
    for (int i = 0; i < n; i++) tok[i] = (i * 97 + 5) % V;
    float *ht;
    bf16 *table = dev_random((size_t)V * H, 1.0f, 51, &ht), *y;
    int *dt;
    cudaMalloc((void **)&y, (size_t)n * H * 2);
    cudaMalloc((void **)&dt, n * sizeof(int));
    cudaMemcpy(dt, tok, sizeof tok, cudaMemcpyHostToDevice);
    poison(y, (size_t)n * H);
    CHECK(k_embed(dt, table, y, n, H, V, 0) == 0);
    float *ge = download(y, (size_t)n * H);
    int same = 1;
    for (int i = 0; i < n; i++) same &= !memcmp(ge + (size_t)i * H, ht + (size_t)tok[i] * H, H * 4);
    CHECK(same);
    free(ge), free(ht), cudaFree(table), cudaFree(y), cudaFree(dt);
}

TEST(test_argmax_finds_first_maximum)
{
    int V = 1000, rows = 6;
    float *h;
    bf16 *l = dev_random((size_t)rows * V, 1.0f, 60, &h);
    int *next, got[6];
    cudaMalloc((void **)&next, sizeof got);
    cudaMemset(next, 0xff, sizeof got);
    /* rows 2 and 5 are the "last rows" of two sequences of 3 */
    CHECK(k_argmax(l, 1, 0, V, 2, 3, 2, next, 0) == 0);
    cudaMemcpy(got, next, 2 * sizeof(int), cudaMemcpyDeviceToHost);
    for (int b = 0; b < 2; b++) {
        const float *row = h + (size_t)(2 + 3 * b) * V;
        int best = 0;
        for (int i = 1; i < V; i++)
            if (row[i] > row[best]) best = i;
        CHECK_EQ_INT(got[b], best);
    }
    /* two slabs of 500 (tensor-parallel halves): ids continue into the second slab */
    CHECK(k_argmax(l, 2, (size_t)3 * V, V / 2, 0, 1, 1, next, 0) == 0);
    cudaMemcpy(got, next, sizeof(int), cudaMemcpyDeviceToHost);
    int best = 0;
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < V / 2; i++) {
            float v = h[(size_t)w * 3 * V + i];
            int bi = best < V / 2 ? best : best - V / 2, bw = best < V / 2 ? 0 : 1;
            if (v > h[(size_t)bw * 3 * V + bi]) best = w * (V / 2) + i;
        }
    CHECK_EQ_INT(got[0], best);
    free(h), cudaFree(l), cudaFree(next);
}

/* A Llama-2 vocabulary row with its maximum twice, far apart (different threads'
 * loads): the lower id wins, as torch.argmax. */
TEST(test_argmax_ties_go_to_the_lowest_id)
{
    int V = 32000;
    float *h;
    bf16 *l = dev_random(V, 1.0f, 61, &h);
    bf16 top = __float2bfloat16(8.0f);
    cudaMemcpy(l + 31990, &top, 2, cudaMemcpyHostToDevice);
    cudaMemcpy(l + 17, &top, 2, cudaMemcpyHostToDevice);
    int *next, got = -1;
    cudaMalloc((void **)&next, sizeof(int));
    CHECK(k_argmax(l, 1, 0, V, 0, 1, 1, next, 0) == 0);
    cudaMemcpy(&got, next, sizeof(int), cudaMemcpyDeviceToHost);
    CHECK_EQ_INT(got, 17);
    free(h), cudaFree(l), cudaFree(next);
}

/* Rope of q and k into the cache, at an offset position, default and llama3 scaling. */
static void rope_case(int *failures_, int llama3)
{
    struct model_spec m = tiny_spec();
    m.head_dim = 128;
    m.heads = 4;
    m.kv_heads = 2;
    m.rope_theta = 500000.0;
    if (llama3) {
        m.rope.kind = ROPE_LLAMA3;
        m.rope.factor = 8;
        m.rope.low_freq_factor = 1;
        m.rope.high_freq_factor = 4;
        m.rope.original_max_position = 8192;
    }
    int hd = 128, hq = 4, hkv = 2, batch = 2, seq = 5, pos = 700, max_ctx = 800, bo = 1, max_batch = 3;
    int rows = batch * seq, qkv_n = (hq + 2 * hkv) * hd;
    double inv_d[64];
    float inv_f[64];
    ref_inv_freq(&m, inv_d);
    for (int i = 0; i < 64; i++) inv_f[i] = (float)inv_d[i];
    float *h;
    bf16 *qkv = dev_random((size_t)rows * qkv_n, 1.0f, 70 + llama3, &h), *q, *kc, *vc;
    size_t cache = (size_t)max_batch * hkv * max_ctx * hd;
    cudaMalloc((void **)&q, (size_t)rows * hq * hd * 2);
    cudaMalloc((void **)&kc, cache * 2);
    cudaMalloc((void **)&vc, cache * 2);
    poison(q, (size_t)rows * hq * hd);
    poison(kc, cache);
    poison(vc, cache);
    float *dinv;
    cudaMalloc((void **)&dinv, sizeof inv_f);
    cudaMemcpy(dinv, inv_f, sizeof inv_f, cudaMemcpyHostToDevice);
    struct rope_args a = {qkv, q, kc, vc, dinv, rows, seq, bo, pos, NULL, hq, hkv, hd, max_ctx};
    CHECK(k_rope_qkv(&a, 0) == 0);
    float *gq = download(q, (size_t)rows * hq * hd), *gk = download(kc, cache), *gv = download(vc, cache);
    float *rq = (float *)malloc((size_t)rows * hq * hd * 4), *rk = (float *)malloc((size_t)rows * hkv * hd * 4);
    float *ck = (float *)malloc((size_t)rows * hkv * hd * 4), *cv = (float *)malloc((size_t)rows * hkv * hd * 4);
    float *rv = (float *)malloc((size_t)rows * hkv * hd * 4);
    for (int r = 0; r < rows; r++) {
        int b = r / seq, t = r % seq;
        for (int hh = 0; hh < hq; hh++) {
            float *v = rq + ((size_t)r * hq + hh) * hd;
            memcpy(v, h + (size_t)r * qkv_n + hh * hd, hd * 4);
            ref_rope(v, hd, pos + t, inv_d);
        }
        for (int kh = 0; kh < hkv; kh++) {
            float *v = rk + ((size_t)r * hkv + kh) * hd;
            memcpy(v, h + (size_t)r * qkv_n + (hq + kh) * hd, hd * 4);
            ref_rope(v, hd, pos + t, inv_d);
            memcpy(rv + ((size_t)r * hkv + kh) * hd, h + (size_t)r * qkv_n + (hq + hkv + kh) * hd, hd * 4);
            size_t at = (((size_t)(bo + b) * hkv + kh) * max_ctx + pos + t) * hd;
            memcpy(ck + ((size_t)r * hkv + kh) * hd, gk + at, hd * 4);
            memcpy(cv + ((size_t)r * hkv + kh) * hd, gv + at, hd * 4);
        }
    }
    CHECK_REL(gq, rq, (size_t)rows * hq * hd, REL_TOL_KERNEL);
    CHECK_REL(ck, rk, (size_t)rows * hkv * hd, REL_TOL_KERNEL);
    CHECK(ref_rel_error(cv, rv, (size_t)rows * hkv * hd) == 0.0);
    free(h), free(gq), free(gk), free(gv), free(rq), free(rk), free(ck), free(cv), free(rv);
    cudaFree(qkv), cudaFree(q), cudaFree(kc), cudaFree(vc), cudaFree(dinv);
}

TEST(test_rope_matches_cpu) { rope_case(failures_, 0); }
TEST(test_rope_llama3_scaling_matches_cpu) { rope_case(failures_, 1); }
