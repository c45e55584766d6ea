/* Our kernels after cuBLASLt's under capture with early edges (pdl_set_early,
 * kernels/pdl.h): the edge out of the cuBLASLt node fires on its launch
 * completion, the dependent starts while the product runs (its pdl_wait is seen to
 * wait) and still reads the finished product: the bits of an eager run, for a
 * copy, SwiGLU on the decode class and the K slices' add and norm. A kernel of ours
 * after the early one keeps the trigger edge; so does one after the long class
 * (pdl_capture_keep). With the switch off no edge is early. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "../../kernels/pdl.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

/* Block 0 stamps the global timer before and after its pdl_wait, then the grid
 * copies src to dst. */
__global__ void stamp_copy_kernel(const uint4 *src, uint4 *dst, size_t n16, unsigned long long *stamps)
{
    unsigned long long t0, t1;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    pdl_wait();
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t1));
    pdl_trigger();
    if (blockIdx.x == 0 && threadIdx.x == 0) stamps[0] = t0, stamps[1] = t1;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

/* Capture body(s), check the early edges it holds (want), run it once; 0 on success. */
template <class Body>
static int run_graph(int *failures_, Body body, int early, int want_edges, cudaStream_t s)
{
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    const int before = pdl_early();
    pdl_set_early(early);
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return -1;
    int rc = body();
    cudaError_t e = cudaStreamEndCapture(s, &graph);
    pdl_set_early(before);
    if (rc || e != cudaSuccess) return -1;
    int edges = graph_launch_completion_edges(graph);
    CHECK(edges == want_edges);
    if (edges != want_edges) fprintf(stderr, "  early %d: %d launch-completion edges, %d wanted\n", early, edges, want_edges);
    rc = cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess;
    if (!rc) rc = cudaGraphLaunch(exec, s) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess;
    if (!rc) cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    return rc;
}

/* A long product (4096 x 4096 x 8192 on the short class's algorithm), then the copy,
 * twice after it in a chain: the first copy's pdl_wait waits tens of microseconds
 * when early. The same product on the long class leaves no early edge. */
TEST(test_kernel_after_cublaslt_starts_early_and_reads_the_finished_product)
{
    const int M = 4096, N = 4096, K = 8192;
    void *ws;
    CUDA_OK(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    struct gemm_ctx g;
    CHECK(gemm_init(&g, ws, M) == 0 && gemm_prepare(&g, N, K) == 0);
    bf16 *x = dev_random((size_t)M * K, 1.0f, 401, NULL), *w = dev_random((size_t)N * K, 0.05f, 402, NULL);
    bf16 *y, *want, *got, *got2;
    unsigned long long *stamps;
    const size_t yn = (size_t)M * N;
    CUDA_OK(cudaMalloc((void **)&y, yn * 2));
    CUDA_OK(cudaMalloc((void **)&want, yn * 2));
    CUDA_OK(cudaMalloc((void **)&got, yn * 2));
    CUDA_OK(cudaMalloc((void **)&got2, yn * 2));
    CUDA_OK(cudaMalloc((void **)&stamps, 2 * sizeof *stamps));
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CHECK(gemm_lt(&g, x, w, want, M, N, K, 0, GEMM_CLASS_SHORT, s) == 0);
    CUDA_OK(cudaStreamSynchronize(s));
    /* the product on class cls, then the copy into got and, chained, a second into got2 */
    auto product_then_copies = [&](int cls, int chained) {
        return [&, cls, chained]() -> int {
            if (gemm_lt(&g, x, w, y, M, N, K, 0, cls, s)) return 1;
            if (pdl_launch(stamp_copy_kernel, dim3(264), dim3(256), 0, s, 1, (const uint4 *)y, (uint4 *)got, yn / 8,
                           stamps) != cudaSuccess)
                return 1;
            return chained && pdl_launch(stamp_copy_kernel, dim3(264), dim3(256), 0, s, 1, (const uint4 *)got,
                                         (uint4 *)got2, yn / 8, stamps) != cudaSuccess;
        };
    };
    for (int early = 1; early >= 0; early--) {
        poison(y, yn), poison(got, yn), poison(got2, yn);
        CUDA_OK(cudaDeviceSynchronize());
        CHECK(run_graph(failures_, product_then_copies(GEMM_CLASS_SHORT, 1), early, early, s) == 0);
        CHECK(bits_equal(want, got, yn));
        CHECK(bits_equal(want, got2, yn));
    }
    /* the first copy alone after the product: how long its pdl_wait held it */
    for (int early = 1; early >= 0; early--) {
        poison(got, yn);
        CHECK(run_graph(failures_, product_then_copies(GEMM_CLASS_SHORT, 0), early, early, s) == 0);
        CHECK(bits_equal(want, got, yn));
        unsigned long long t[2];
        CUDA_OK(cudaMemcpy(t, stamps, sizeof t, cudaMemcpyDeviceToHost));
        const double waited_us = (double)(t[1] - t[0]) / 1e3;
        printf("  early %d: the copy's pdl_wait held it %.1f us\n", early, waited_us);
        if (early) CHECK(waited_us > 20.0);  /* the product takes a few hundred microseconds */
        else CHECK(waited_us < 20.0);
    }
    /* the long class keeps its edge: the copy after it is not early, and still exact */
    CHECK(gemm_lt(&g, x, w, want, M, N, K, 0, GEMM_CLASS_LONG, s) == 0);
    CUDA_OK(cudaStreamSynchronize(s));
    poison(got, yn);
    CHECK(run_graph(failures_, product_then_copies(GEMM_CLASS_LONG, 0), PDL_EARLY_ON, 0, s) == 0);
    CHECK(bits_equal(want, got, yn));
    cudaStreamDestroy(s);
    cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(want), cudaFree(got), cudaFree(got2), cudaFree(stamps);
    gemm_destroy(&g);
    cudaFree(ws);
}

/* The forward's own pairs at decode rows: gate-up on the decode class then
 * k_swiglu, and o's K slices then k_add_rmsnorm, early and not, against eager. */
TEST(test_decode_kernels_after_cublaslt_early_give_eager_bits)
{
    const int M = 16, H = 4096, I = 11008;
    void *ws;
    CUDA_OK(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    struct gemm_ctx g;
    const int tma = gemm_tma_mode();
    gemm_set_tma(GEMM_TMA_OFF);  /* cuBLASLt's kernels are what this tests */
    CHECK(gemm_init(&g, ws, 512) == 0 && gemm_set_decode_rows(&g, M) == 0);
    CHECK(gemm_prepare(&g, 2 * I, H) == 0 && gemm_prepare_residual(&g, H, H) == 0);
    gemm_set_tma(tma);
    CHECK(gemm_force_ksplit(&g, H, H, 2) == 0);
    bf16 *x = dev_random((size_t)M * H, 1.0f, 411, NULL), *wgu = dev_random((size_t)2 * I * H, 0.05f, 412, NULL);
    bf16 *wo = dev_random((size_t)H * H, 0.05f, 413, NULL), *nw = dev_random(H, 1.0f, 414, NULL);
    bf16 *h0 = dev_random((size_t)M * H, 1.0f, 415, NULL);
    bf16 *gu, *act_want, *act, *h_want, *h, *n_want, *nrm;
    CUDA_OK(cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2));
    CUDA_OK(cudaMalloc((void **)&act_want, (size_t)M * I * 2));
    CUDA_OK(cudaMalloc((void **)&act, (size_t)M * I * 2));
    CUDA_OK(cudaMalloc((void **)&h_want, (size_t)M * H * 2));
    CUDA_OK(cudaMalloc((void **)&h, (size_t)M * H * 2));
    CUDA_OK(cudaMalloc((void **)&n_want, (size_t)M * H * 2));
    CUDA_OK(cudaMalloc((void **)&nrm, (size_t)M * H * 2));
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto swiglu = [&](bf16 *out) {
        return gemm_lt(&g, x, wgu, gu, M, 2 * I, H, 0, GEMM_CLASS_DECODE, s) || k_swiglu(gu, out, M, I, s, 1);
    };
    auto add_norm = [&](bf16 *hr, bf16 *out) {
        return gemm_lt_partials(&g, x, wo, M, H, H, GEMM_CLASS_DECODE, s) ||
               k_add_rmsnorm(hr, gemm_partials(&g), 2, gemm_partials_rows(&g, GEMM_CLASS_DECODE), nw, out, M, H,
                             1e-5f, s, 1);
    };
    CUDA_OK(cudaMemcpy(h_want, h0, (size_t)M * H * 2, cudaMemcpyDeviceToDevice));
    CHECK(swiglu(act_want) == 0 && add_norm(h_want, n_want) == 0);
    CUDA_OK(cudaStreamSynchronize(s));
    for (int early = 1; early >= 0; early--) {
        poison(gu, (size_t)M * 2 * I), poison(act, (size_t)M * I), poison(nrm, (size_t)M * H);
        CUDA_OK(cudaMemset(gemm_partials(&g), 0xff, (size_t)2 * gemm_partials_rows(&g, GEMM_CLASS_DECODE) * H * 4));
        CUDA_OK(cudaMemcpy(h, h0, (size_t)M * H * 2, cudaMemcpyDeviceToDevice));
        CUDA_OK(cudaDeviceSynchronize());
        CHECK(run_graph(failures_, [&]() { return swiglu(act) || add_norm(h, nrm); }, early, 2 * early, s) == 0);
        CHECK(bits_equal(act_want, act, (size_t)M * I));
        CHECK(bits_equal(h_want, h, (size_t)M * H));
        CHECK(bits_equal(n_want, nrm, (size_t)M * H));
    }
    cudaStreamDestroy(s);
    cudaFree(x), cudaFree(wgu), cudaFree(wo), cudaFree(nw), cudaFree(h0), cudaFree(gu), cudaFree(act);
    cudaFree(act_want), cudaFree(h_want), cudaFree(h), cudaFree(n_want), cudaFree(nrm);
    gemm_destroy(&g);
    cudaFree(ws);
}
