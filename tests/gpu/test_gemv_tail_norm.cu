/* The GEMV that leaves the next norm to its last block (gemm_rows_then_norm): the
 * product's and the norm's bits are gemm_rows' then k_rmsnorm's at every split, row
 * count and shape (o's, down's and a narrow one), onto a residual or not;
 * the ticket is back at zero after each call, so replays of a captured graph agree
 * too; bad shapes are refused. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

static const struct gemv_wave_cfg wave_default = gemv_wave_get();

struct tail_bufs {
    bf16 *x, *w, *nw, *y0, *y_want, *y_got, *n_want, *n_got;
    int *ticket;
};

static void tail_case(int *failures_, struct tail_bufs *b, int m, int n, int k, int accumulate)
{
    const size_t yn = (size_t)m * n;
    cudaMemcpy(b->y_want, b->y0, yn * 2, cudaMemcpyDeviceToDevice);
    CHECK(gemm_rows(b->x, b->w, b->y_want, m, n, k, accumulate, 0) == 0);
    CHECK(k_rmsnorm(b->y_want, 1, 0, b->nw, b->n_want, m, n, 1e-5f, 0) == 0);
    for (int rep = 0; rep < 2; rep++) {  /* the second call finds the ticket the first left */
        cudaMemcpy(b->y_got, b->y0, yn * 2, cudaMemcpyDeviceToDevice);
        poison(b->n_got, yn);
        CHECK(gemm_rows_then_norm(b->x, b->w, b->y_got, m, n, k, accumulate, b->nw, 1e-5f, b->n_got, b->ticket, 0,
                                  rep) == 0);
        CHECK(bits_equal(b->y_want, b->y_got, yn));
        CHECK(bits_equal(b->n_want, b->n_got, yn));
        int t = -1;
        CUDA_OK(cudaMemcpy(&t, b->ticket, sizeof t, cudaMemcpyDeviceToHost));
        CHECK(t == 0);
    }
}

TEST(test_gemv_then_norm_gives_gemv_then_rmsnorm_bits)
{
    const int M = 4, NMAX = 4096, KMAX = 11008;
    struct tail_bufs b;
    b.x = dev_random((size_t)M * KMAX, 1.0f, 601, NULL);
    b.w = dev_random((size_t)NMAX * KMAX, 0.05f, 602, NULL);
    b.nw = dev_random(NMAX, 1.0f, 603, NULL);
    b.y0 = dev_random((size_t)M * NMAX, 2.0f, 604, NULL);
    bf16 **outs[4] = {&b.y_want, &b.y_got, &b.n_want, &b.n_got};
    for (bf16 **o : outs) cudaMalloc((void **)o, (size_t)M * NMAX * 2);
    CUDA_OK(cudaMalloc((void **)&b.ticket, sizeof(int)));
    CUDA_OK(cudaMemset(b.ticket, 0, sizeof(int)));
    const int shapes[3][2] = {{4096, 4096}, {4096, 11008}, {1000, 4096}};
    const int splits[3] = {1, 2, 4};
    for (int ks : splits) {
        gemv_wave_set({1, ks, ks, ks, 2});
        for (const int *sh : shapes)
            for (int m = 1; m <= M; m++)
                for (int acc = 0; acc < 2; acc++) tail_case(failures_, &b, m, sh[0], sh[1], acc);
    }
    gemv_wave_set(wave_default);
    tail_case(failures_, &b, 1, 4096, 11008, 1);
    for (bf16 **o : outs) cudaFree(*o);
    cudaFree(b.x), cudaFree(b.w), cudaFree(b.nw), cudaFree(b.y0), cudaFree(b.ticket);
}

TEST(test_gemv_then_norm_replays_from_a_graph)
{
    const int n = 4096, k = 4096;
    bf16 *x = dev_random(k, 1.0f, 611, NULL), *w = dev_random((size_t)n * k, 0.05f, 612, NULL);
    bf16 *nw = dev_random(n, 1.0f, 613, NULL), *y0 = dev_random(n, 2.0f, 614, NULL);
    bf16 *y, *want_y, *want_n, *got_n;
    int *ticket;
    cudaMalloc((void **)&y, n * 2), cudaMalloc((void **)&want_y, n * 2);
    cudaMalloc((void **)&want_n, n * 2), cudaMalloc((void **)&got_n, n * 2);
    CUDA_OK(cudaMalloc((void **)&ticket, sizeof(int)));
    CUDA_OK(cudaMemset(ticket, 0, sizeof(int)));
    cudaMemcpy(want_y, y0, n * 2, cudaMemcpyDeviceToDevice);
    CHECK(gemm_rows(x, w, want_y, 1, n, k, 1, 0) == 0);
    CHECK(k_rmsnorm(want_y, 1, 0, nw, want_n, 1, n, 1e-5f, 0) == 0);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t e;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    CHECK(cudaMemcpyAsync(y, y0, n * 2, cudaMemcpyDeviceToDevice, s) == cudaSuccess);
    CHECK(gemm_rows_then_norm(x, w, y, 1, n, k, 1, nw, 1e-5f, got_n, ticket, s, 1) == 0);
    CHECK(gemm_rows_then_norm(x, w, y, 1, n, k, 0, nw, 1e-5f, got_n, ticket, s, 1) == 0);  /* y = x W^T */
    CHECK(gemm_rows_then_norm(x, w, y, 1, n, k, 0, nw, 1e-5f, got_n, ticket, s, 1) == 0);
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CUDA_OK(cudaGraphInstantiate(&e, g, 0));
    /* the plain product's bits and norm, for the last two captured calls */
    bf16 *plain_y, *plain_n;
    cudaMalloc((void **)&plain_y, n * 2), cudaMalloc((void **)&plain_n, n * 2);
    CHECK(gemm_rows(x, w, plain_y, 1, n, k, 0, 0) == 0);
    CHECK(k_rmsnorm(plain_y, 1, 0, nw, plain_n, 1, n, 1e-5f, 0) == 0);
    for (int rep = 0; rep < 3; rep++) {
        poison(got_n, n);
        CUDA_OK(cudaGraphLaunch(e, s));
        CUDA_OK(cudaStreamSynchronize(s));
        CHECK(bits_equal(plain_y, y, n));
        CHECK(bits_equal(plain_n, got_n, n));
        int t = -1;
        CUDA_OK(cudaMemcpy(&t, ticket, sizeof t, cudaMemcpyDeviceToHost));
        CHECK(t == 0);
    }
    /* and the first call alone onto the residual */
    cudaMemcpy(y, y0, n * 2, cudaMemcpyDeviceToDevice);
    CHECK(gemm_rows_then_norm(x, w, y, 1, n, k, 1, nw, 1e-5f, got_n, ticket, 0, 0) == 0);
    CHECK(bits_equal(want_y, y, n));
    CHECK(bits_equal(want_n, got_n, n));
    CUDA_OK(cudaDeviceSynchronize());
    cudaGraphExecDestroy(e);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    cudaFree(x), cudaFree(w), cudaFree(nw), cudaFree(y0), cudaFree(y), cudaFree(want_y), cudaFree(want_n);
    cudaFree(got_n), cudaFree(plain_y), cudaFree(plain_n), cudaFree(ticket);
}

TEST(test_gemv_then_norm_refuses_what_one_block_cannot_norm)
{
    bf16 *x = dev_random(8 * 64, 1.0f, 621, NULL), *w = dev_random((size_t)8200 * 64, 0.1f, 622, NULL);
    bf16 *nw = dev_random(8200, 1.0f, 623, NULL), *y, *o;
    int *ticket;
    cudaMalloc((void **)&y, 8 * 8200 * 2), cudaMalloc((void **)&o, 8 * 8200 * 2);
    cudaMalloc((void **)&ticket, sizeof(int));
    cudaMemset(ticket, 0, sizeof(int));
    CHECK(!gemm_rows_then_norm_fits(5, 4096) && !gemm_rows_then_norm_fits(1, 8200) && !gemm_rows_then_norm_fits(1, 100));
    CHECK(gemm_rows_then_norm_fits(4, 4096) && gemm_rows_then_norm_fits(1, 8192));
    CHECK(gemm_rows_then_norm(x, w, y, 5, 64, 64, 0, nw, 1e-5f, o, ticket, 0) != 0);
    CHECK(gemm_rows_then_norm(x, w, y, 1, 8200, 64, 0, nw, 1e-5f, o, ticket, 0) != 0);
    CHECK(gemm_rows_then_norm(x, w, y, 1, 64, 64, 0, nw, 1e-5f, o, NULL, 0) != 0);
    CHECK(gemm_rows_then_norm(x, w, y, 1, 64, 64, 0, nw, 1e-5f, o, ticket, 0) == 0);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    cudaFree(x), cudaFree(w), cudaFree(nw), cudaFree(y), cudaFree(o), cudaFree(ticket);
}
