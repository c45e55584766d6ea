/* gemm_skinny with cp.async weight rings (DECODE_STREAM_ASYNC) against the CPU
 * fp32 reference, and bit for bit against the register kernel, in every mode
 * (plain, accumulating, SwiGLU), at every row tile and column-tile variant, over
 * rings that wrap many times and partial last groups; bad settings refused. */
#include "../../kernels/gemm.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

/* Settings it cannot take fail with a message, not a bad launch. */
TEST(test_skinny_async_rejects_bad_settings)
{
    struct skinny_stream_cfg keep = gemm_skinny_stream();
    bf16 *x = dev_random(4096, 1.0f, 111, NULL), *w = dev_random((size_t)64 * 4096, 0.1f, 112, NULL), *y;
    cudaMalloc((void **)&y, 64 * 2);
    gemm_skinny_set_stream((struct skinny_stream_cfg){DECODE_STREAM_ASYNC, 9, 2, 0});
    CHECK(gemm_skinny(x, w, y, 1, 64, 4096, 0, 0) != 0);
    gemm_skinny_set_stream((struct skinny_stream_cfg){DECODE_STREAM_ASYNC, 1, 2, 0});
    CHECK(gemm_skinny(x, w, y, 1, 64, 4096, 0, 0) != 0);
    gemm_skinny_set_stream((struct skinny_stream_cfg){DECODE_STREAM_ASYNC, 4, 3, 0});
    CHECK(gemm_skinny(x, w, y, 1, 64, 4096, 0, 0) != 0);
    gemm_skinny_set_stream(keep);
    CHECK(gemm_skinny(x, w, y, 1, 64, 4096, 0, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(y);
}

/* ---- gemm_skinny with cp.async rings ---- */

static int skinny_async_case(int m, int n, int k, int accumulate, int mt, uint64_t seed)
{
    struct linear_case c;
    linear_case_setup(&c, m, n, k, accumulate, seed);
    int bad = gemm_skinny_mt(c.x, c.w, c.y, m, n, k, accumulate, mt, 0, seed & 1) != 0;
    bad |= cudaDeviceSynchronize() != cudaSuccess;
    return linear_case_finish(&c, "gemm_skinny cp.async", bad);
}

/* gemm_skinny's odd shapes: K not a multiple of 32, N not of 16, rows in each
 * row-tile variant and past 64 */
TEST(test_gemm_skinny_async_matches_cpu)
{
    struct skinny_stream_cfg keep = gemm_skinny_stream();
    gemm_skinny_set_stream((struct skinny_stream_cfg){DECODE_STREAM_ASYNC, 4, 2, 0});
    CHECK(!skinny_async_case(1, 100, 64, 0, 1, 121));
    CHECK(!skinny_async_case(3, 777, 264, 0, 2, 122));
    CHECK(!skinny_async_case(8, 256, 688, 1, 1, 123));
    CHECK(!skinny_async_case(16, 1000, 4096, 0, 2, 124));
    CHECK(!skinny_async_case(17, 300, 520, 1, 1, 125));
    CHECK(!skinny_async_case(64, 200, 11008, 0, 2, 126));
    CHECK(!skinny_async_case(70, 130, 136, 1, 1, 127));
    gemm_skinny_set_stream(keep);
}

/* The bits of gemm_skinny (registers) for every row tile, one and two column tiles,
 * SwiGLU and accumulate, over rings of 2 to 8 groups of 1, 2 or 4 chunks. */
TEST(test_gemm_skinny_async_equals_skinny)
{
    struct skinny_stream_cfg keep = gemm_skinny_stream();
    const struct skinny_stream_cfg regs = {DECODE_STREAM_REGISTERS, 4, 2, 0};
    const struct skinny_stream_cfg cfgs[4] = {{DECODE_STREAM_ASYNC, 4, 2, 0}, {DECODE_STREAM_ASYNC, 2, 1, 0},
                                              {DECODE_STREAM_ASYNC, 3, 4, 0}, {DECODE_STREAM_ASYNC, 8, 1, 0}};
    const int shapes[3][2] = {{4200, 4104}, {136, 11008}, {90, 264}};
    const int ms[6] = {1, 5, 16, 31, 64, 80};
    const int KMAX = 11008, NMAX = 4200, M = 80;
    bf16 *x = dev_random((size_t)M * KMAX, 1.0f, 131, NULL);
    bf16 *w = dev_random((size_t)NMAX * KMAX, 0.1f, 132, NULL);
    bf16 *base = dev_random((size_t)M * NMAX, 1.0f, 133, NULL), *want, *got;
    cudaMalloc((void **)&want, (size_t)M * NMAX * 2);
    cudaMalloc((void **)&got, (size_t)M * NMAX * 2);
    for (int ci = 0; ci < 4; ci++)
        for (int si = 0; si < 3; si++)
            for (int mi = 0; mi < 6; mi++) {
                const int n = shapes[si][0], k = shapes[si][1], m = ms[mi], pdl = (ci + mi) & 1;
                for (int variant = 0; variant < 4; variant++) {  /* mt 1, mt 2, mt 2 accumulating, SwiGLU */
                    const int acc = variant == 2, half = n / 2;
                    const size_t out = variant == 3 ? (size_t)m * half : (size_t)m * n;
                    for (int which = 0; which < 2; which++) {
                        bf16 *dst = which ? got : want;
                        gemm_skinny_set_stream(which ? cfgs[ci] : regs);
                        if (acc) cudaMemcpy(dst, base, out * 2, cudaMemcpyDeviceToDevice);
                        else poison(dst, out);
                        if (variant == 3) CHECK(gemm_skinny_swiglu(x, w, dst, m, half, k, 0, pdl) == 0);
                        else CHECK(gemm_skinny_mt(x, w, dst, m, n, k, acc, variant ? 2 : 1, 0, pdl) == 0);
                    }
                    CHECK(cudaDeviceSynchronize() == cudaSuccess);
                    if (!bits_equal(want, got, out)) {
                        fprintf(stderr, "  skinny cp.async s%d v%d: N=%d K=%d rows %d variant %d differ\n",
                                cfgs[ci].stages, cfgs[ci].vecs, n, k, m, variant);
                        CHECK(0);
                    }
                }
            }
    gemm_skinny_set_stream(keep);
    cudaFree(x), cudaFree(w), cudaFree(base), cudaFree(want), cudaFree(got);
}
