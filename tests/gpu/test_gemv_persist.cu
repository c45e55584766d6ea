/* The GEMV with resident blocks looping over columns (gemv_persist.cu) gives the
 * wave-of-blocks GEMV's bits at every setting: one or several columns a warp,
 * partial weight groups, rings that wrap within and across columns, L2 prefetch,
 * SwiGLU, accumulation, programmatic launch; and what it refuses. */
#include "../../kernels/gemm.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static const struct gemv_persist_cfg persist_off = {0, 3, 0};

/* gemm_rows (or gemm_rows_swiglu) of m rows with the knob off, then on at c:
 * the same bits. Outputs start poisoned, or equal (accumulate) in both. */
static int persist_case(struct gemv_persist_cfg c, int m, int n, int k, int accumulate, int swiglu, int pdl,
                        uint64_t seed)
{
    const int wrows = swiglu ? 2 * n : n;
    bf16 *x = dev_random((size_t)m * k, 1.0f, seed, NULL), *w = dev_random((size_t)wrows * k, 0.1f, seed + 1, NULL);
    bf16 *want = dev_random((size_t)m * n, 1.0f, seed + 2, NULL), *got;
    cudaMalloc((void **)&got, (size_t)m * n * 2);
    if (accumulate) cudaMemcpy(got, want, (size_t)m * n * 2, cudaMemcpyDeviceToDevice);
    else poison(want, (size_t)m * n), poison(got, (size_t)m * n);
    gemv_persist_set(persist_off);
    int bad = swiglu ? gemm_rows_swiglu(x, w, want, m, n, k, 0) : gemm_rows(x, w, want, m, n, k, accumulate, 0);
    gemv_persist_set(c);
    bad |= !gemv_persist_takes(m, k);
    bad |= swiglu ? gemm_rows_swiglu(x, w, got, m, n, k, 0, pdl) : gemm_rows(x, w, got, m, n, k, accumulate, 0, pdl);
    gemv_persist_set(persist_off);
    bad |= cudaDeviceSynchronize() != cudaSuccess;
    bad |= !bits_equal(want, got, (size_t)m * n);
    float *h = download(got, (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * n && !bad; i++) bad |= !isfinite(h[i]);
    if (bad)
        fprintf(stderr, "gemv_persist %d/%d/%d: m %d n %d k %d acc %d swiglu %d pdl %d differs from the wave GEMV\n",
                c.blocks_per_sm, c.stages, c.l2_items, m, n, k, accumulate, swiglu, pdl);
    free(h);
    cudaFree(x), cudaFree(w), cudaFree(want), cudaFree(got);
    return bad;
}

TEST(test_gemv_persist_equals_wave_gemv)
{
    const struct gemv_persist_cfg cfgs[5] = {{1, 2, 0}, {1, 3, 0}, {2, 3, 2}, {4, 2, 1}, {3, 3, 7}};
    /* {n, k}: fewer columns than warps; one partial group; a ring that wraps within a
     * column (k 4104: two whole groups and one vector); several columns a warp
     * (n over 132 SMs x 8 warps at one block an SM) with groups crossing columns */
    const int shapes[5][2] = {{77, 4104}, {1000, 264}, {3000, 688}, {2500, 4104}, {1100, 8}};
    int i = 0;
    for (int c = 0; c < 5; c++)
        for (int s = 0; s < 5; s++, i++) {
            int m = 1 + i % 4, acc = i % 3 == 1, pdl = i % 2;
            CHECK(!persist_case(cfgs[c], m, shapes[s][0], shapes[s][1], acc, 0, pdl, 300 + 3 * i));
        }
    for (int c = 0; c < 5; c++) {
        CHECK(!persist_case(cfgs[c], 1 + c % 4, 344, 264, 0, 1, c & 1, 400 + c));
        CHECK(!persist_case(cfgs[c], 1 + (c + 2) % 4, 1500, 4104, 0, 1, 0, 410 + c));
    }
}

/* Off: nothing takes it and a direct call is refused; on: only 1 to 4 rows and K a
 * multiple of 8, a bad ring size is refused, more rows keep the wave GEMV. */
TEST(test_gemv_persist_refuses_what_it_cannot_take)
{
    bf16 *x = dev_random(8 * 64, 1.0f, 91, NULL), *w = dev_random(64 * 64, 0.1f, 92, NULL), *y;
    cudaMalloc((void **)&y, 8 * 64 * 2);
    gemv_persist_set(persist_off);
    CHECK(!gemv_persist_takes(1, 64));
    CHECK(gemv_persist_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_persist_set({1, 3, 0});
    CHECK(gemv_persist_takes(1, 64) && gemv_persist_takes(4, 64));
    CHECK(!gemv_persist_takes(5, 64) && !gemv_persist_takes(0, 64) && !gemv_persist_takes(1, 60));
    CHECK(gemm_rows(x, w, y, 8, 64, 64, 0, 0) == 0);  /* the wave GEMV */
    gemv_persist_set({1, 4, 0});
    CHECK(gemv_persist_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_persist_set({1, 2, -1});
    CHECK(gemv_persist_rows(x, w, y, 1, 64, 64, 0, 0) != 0);
    gemv_persist_set(persist_off);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(y);
}
