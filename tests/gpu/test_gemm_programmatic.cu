/* cuBLASLt's kernels on programmatic edges (gemm_lt and gemm_lt_partials with
 * pdl): captured after a kernel of ours that triggers at once and writes X only
 * after a long spin, each class's product gives the bits of an eager call on the
 * final X (a kernel that read X before its griddepcontrol.wait would see the
 * poison), and the captured edge into it is programmatic; with
 * gemm_lt_set_programmatic(0) it is a full edge and the bits are the same. */
#include "../../kernels/gemm.h"
#include "../../kernels/pdl.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

/* Triggers its dependents, then spins ~spin_ns before copying src to dst: a
 * dependent that does not wait reads dst before the copy. */
__global__ void late_copy_kernel(const uint4 *src, uint4 *dst, size_t n16, long long spin_ns)
{
    pdl_wait();
    pdl_trigger();
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while ((long long)(t - t0) < spin_ns);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n16; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

/* The one edge of a two-node graph: 1 when programmatic, 0 when full, -1 else. */
static int edge_kind(cudaGraph_t g)
{
    cudaGraphNode_t from[4], to[4];
    cudaGraphEdgeData ed[4];
    size_t n = 4;
    if (cudaGraphGetEdges(g, from, to, ed, &n) != cudaSuccess || n != 1) return -1;
    if (ed[0].type == cudaGraphDependencyTypeProgrammatic && ed[0].from_port == cudaGraphKernelNodePortProgrammatic)
        return 1;
    return ed[0].type == cudaGraphDependencyTypeDefault ? 0 : -1;
}

/* Capture late_copy(x_final -> x) then the product on x (partials when slices);
 * run it once on a poisoned x; return the edge kind (or -2 on a failed call). */
static int run_captured(struct gemm_ctx *g, const bf16 *x_final, bf16 *x, const bf16 *w, bf16 *y, int m, int n,
                        int k, int cls, int slices, cudaStream_t s)
{
    poison(x, (size_t)m * k);
    poison(y, (size_t)m * n);
    if (cudaDeviceSynchronize() != cudaSuccess) return -2;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return -2;
    int rc = pdl_launch(late_copy_kernel, dim3(32), dim3(256), 0, s, 1, (const uint4 *)x_final, (uint4 *)x,
                        (size_t)m * k / 8, 200000LL) != cudaSuccess;
    if (!rc) rc = slices ? gemm_lt_partials(g, x, w, m, n, k, s, 1) : gemm_lt(g, x, w, y, m, n, k, 0, cls, s, 1);
    if (cudaStreamEndCapture(s, &graph) != cudaSuccess || rc) return -2;
    int kind = edge_kind(graph);
    if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) return -2;
    if (cudaGraphLaunch(exec, s) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess) kind = -2;
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    return kind;
}

static void programmatic_case(int *failures_, struct gemm_ctx *g, int m, int n, int k, int cls, int slices,
                              uint64_t seed)
{
    const int ks = slices ? gemm_ksplit(g, n, k) : 0;
    CHECK(!slices || ks > 0);
    const size_t out = slices ? (size_t)ks * g->decode_rows * n * 2 : (size_t)m * n;  /* in bf16 units */
    bf16 *xf = dev_random((size_t)m * k, 1.0f, seed, NULL), *w = dev_random((size_t)n * k, 0.05f, seed + 1, NULL);
    bf16 *x, *y, *want;
    cudaMalloc((void **)&x, (size_t)m * k * 2);
    cudaMalloc((void **)&y, (size_t)m * n * 2);
    cudaMalloc((void **)&want, out * 2);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    /* eager, on the final X */
    CHECK((slices ? gemm_lt_partials(g, xf, w, m, n, k, s) : gemm_lt(g, xf, w, y, m, n, k, 0, cls, s)) == 0);
    CUDA_OK(cudaStreamSynchronize(s));
    CUDA_OK(cudaMemcpy(want, slices ? (void *)gemm_partials(g) : (void *)y, out * 2, cudaMemcpyDeviceToDevice));
    for (int on = 1; on >= 0; on--) {  /* leaves it off, the default */
        gemm_lt_set_programmatic(on);
        if (slices) CUDA_OK(cudaMemset(gemm_partials(g), 0xff, out * 2));
        int kind = run_captured(g, xf, x, w, y, m, n, k, cls, slices, s);
        CHECK(kind == on);
        if (kind != on) fprintf(stderr, "  class %d, %d rows, N=%d K=%d, slices %d, programmatic %d: edge %d\n", cls, m,
                                n, k, ks, on, kind);
        CHECK(bits_equal(want, slices ? (void *)gemm_partials(g) : (void *)y, out));
    }
    cudaStreamDestroy(s);
    cudaFree(xf), cudaFree(w), cudaFree(x), cudaFree(y), cudaFree(want);
}

TEST(test_gemm_lt_on_a_programmatic_edge_waits_for_its_input)
{
    const int N = 4096, K = 4096, M = 16;
    void *ws;
    CUDA_OK(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    struct gemm_ctx g;
    CHECK(gemm_init(&g, ws, 512) == 0 && gemm_set_decode_rows(&g, M) == 0);
    CHECK(gemm_prepare_residual(&g, N, K) == 0 && gemm_prepare(&g, 3 * N, K) == 0);
    programmatic_case(failures_, &g, M, 3 * N, K, GEMM_CLASS_DECODE, 0, 301);
    programmatic_case(failures_, &g, 9, N, K, GEMM_CLASS_DECODE, 0, 303);
    CHECK(gemm_force_ksplit(&g, N, K, 2) == 0);
    programmatic_case(failures_, &g, M, N, K, GEMM_CLASS_DECODE, 1, 305);
    programmatic_case(failures_, &g, 128, N, K, GEMM_CLASS_SHORT, 0, 307);
    programmatic_case(failures_, &g, 512, 3 * N, K, GEMM_CLASS_LONG, 0, 309);
    gemm_destroy(&g);
    cudaFree(ws);
}
