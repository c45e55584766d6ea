/* Linear layers through cuBLASLt (prefill) and our GEMV (one-token steps); see gemm.h. */
#include "gemm.h"
#include "cuda_check.h"

typedef __nv_bfloat16 bf16;

int gemm_init(struct gemm_ctx *g, void *workspace)
{
    g->n_shapes = 0;
    g->workspace = workspace;
    cublasCheck(cublasLtCreate(&g->lt));
    cublasCheck(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    /* Weights are [N, K] row-major (as Hugging Face stores them), i.e. column-major
     * K x N: transposed they give the N x M column-major result, Y[M, N] row-major. */
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    cublasCheck(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    return PB_OK;
}

static struct gemm_shape *find_shape(struct gemm_ctx *g, int n, int k, int cls)
{
    for (int i = 0; i < g->n_shapes; i++)
        if (g->shapes[i].n == n && g->shapes[i].k == k && g->shapes[i].cls == cls) return &g->shapes[i];
    return NULL;
}

static int prepare_class(struct gemm_ctx *g, int n, int k, int cls)
{
    if (find_shape(g, n, k, cls)) return PB_OK;
    if (g->n_shapes == GEMM_MAX_SHAPES) return pb_fail("gemm_prepare: more than %d GEMM shapes", GEMM_MAX_SHAPES);
    struct gemm_shape *sh = &g->shapes[g->n_shapes];
    sh->n = n;
    sh->k = k;
    sh->cls = cls;
    int hm = cls == GEMM_CLASS_SHORT ? 128 : 4096;
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->a, CUDA_R_16BF, k, n, k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->b, CUDA_R_16BF, k, hm, k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->c, CUDA_R_16BF, n, hm, n));

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = GEMM_WORKSPACE_BYTES;
    /* No split-K: a reduction over K split among blocks would make a row's sum
     * depend on the blocking, which depends on M. */
    uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction,
                                                  sizeof reduction);
    cublasLtMatmulHeuristicResult_t res[8];
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, sh->a, sh->b, sh->c, sh->c, pref, 8, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasCheck(st);
    for (int i = 0; i < found; i++) {
        int32_t splitk = 1;
        size_t written = 0;
        cublasCheck(cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk,
                                                         sizeof splitk, &written));
        if (splitk <= 1 && res[i].state == CUBLAS_STATUS_SUCCESS) {
            sh->algo = res[i].algo;
            g->n_shapes++;
            return PB_OK;
        }
    }
    return pb_fail("cuBLASLt offers no algorithm without split-K for a bf16 GEMM N=%d K=%d", n, k);
}

int gemm_prepare(struct gemm_ctx *g, int n, int k)
{
    PB_TRY(prepare_class(g, n, k, GEMM_CLASS_LONG));
    return prepare_class(g, n, k, GEMM_CLASS_SHORT);
}

void gemm_destroy(struct gemm_ctx *g)
{
    for (int i = 0; i < g->n_shapes; i++) {
        cublasLtMatrixLayoutDestroy(g->shapes[i].a);
        cublasLtMatrixLayoutDestroy(g->shapes[i].b);
        cublasLtMatrixLayoutDestroy(g->shapes[i].c);
    }
    g->n_shapes = 0;
    if (g->desc) cublasLtMatmulDescDestroy(g->desc);
    if (g->lt) cublasLtDestroy(g->lt);
    g->desc = NULL;
    g->lt = NULL;
}

int gemm_lt(struct gemm_ctx *g, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int cls,
            cudaStream_t s)
{
    struct gemm_shape *sh = find_shape(g, n, k, cls);
    if (!sh) return pb_fail("gemm_lt: shape N=%d K=%d was not prepared", n, k);
    if (m <= 0) return PB_OK;
    uint64_t cols = (uint64_t)m;
    cublasCheck(cublasLtMatrixLayoutSetAttribute(sh->b, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols));
    cublasCheck(cublasLtMatrixLayoutSetAttribute(sh->c, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasCheck(cublasLtMatmul(g->lt, g->desc, &alpha, w, sh->a, x, sh->b, &beta, y, sh->c, y, sh->c, &sh->algo,
                               g->workspace, GEMM_WORKSPACE_BYTES, s));
    return PB_OK;
}

/* ---- GEMV: one warp per output column, up to GEMV_ROWS rows per block ---- */
#define GEMV_ROWS 8
#define GEMV_WARPS 8

__device__ __forceinline__ uint4 load_stream(const uint4 *p)
{
    /* Weights are read once per step: keep them out of L1 so x stays there. */
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ void unpack8(uint4 v, float f[8])
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

/* ROWS rows per block, U weight vectors in flight per lane. A row's sum runs over
 * k in the same order whatever ROWS and U are (lane-strided vectors in ascending
 * order, then a fixed shuffle tree), so the bits do not depend on the row count. */
template <int ROWS, int U>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y, int m, int n, int k,
            int accumulate)
{
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int col = blockIdx.x * GEMV_WARPS + warp;
    int m0 = blockIdx.y * ROWS;
    if (col >= n) return;
    const uint4 *wr = (const uint4 *)(w + (size_t)col * k);
    const uint4 *xr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) xr[r] = (const uint4 *)(x + (size_t)min(m0 + r, m - 1) * k);
    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) acc[r] = 0.0f;
    int kv = k / 8;
    for (int base = lane; base < kv; base += 32 * U) {
        uint4 wv[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (base + u * 32 < kv) wv[u] = load_stream(wr + base + u * 32);
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (base + u * 32 >= kv) break;
            float wf[8];
            unpack8(wv[u], wf);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                float xf[8];
                unpack8(__ldg(xr[r] + base + u * 32), xf);
#pragma unroll
                for (int j = 0; j < 8; j++) acc[r] = fmaf(wf[j], xf[j], acc[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            if (m0 + r >= m) break;
            bf16 *out = y + (size_t)(m0 + r) * n + col;
            float v = acc[r];
            if (accumulate) v += __bfloat162float(*out);
            *out = __float2bfloat16(v);
        }
    }
}

int gemm_rows(const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, cudaStream_t s)
{
    if (k % 8) return pb_fail("gemm_rows: K=%d is not a multiple of 8", k);
    if (m <= 0) return PB_OK;
    int gx = (n + GEMV_WARPS - 1) / GEMV_WARPS;
    /* fewer rows: less arithmetic per weight byte, so more loads in flight instead */
    if (m == 1) gemv_kernel<1, 8><<<gx, GEMV_WARPS * 32, 0, s>>>(x, w, y, m, n, k, accumulate);
    else if (m == 2) gemv_kernel<2, 8><<<gx, GEMV_WARPS * 32, 0, s>>>(x, w, y, m, n, k, accumulate);
    else if (m <= 4) gemv_kernel<4, 4><<<gx, GEMV_WARPS * 32, 0, s>>>(x, w, y, m, n, k, accumulate);
    else gemv_kernel<GEMV_ROWS, 4><<<dim3(gx, (m + GEMV_ROWS - 1) / GEMV_ROWS), GEMV_WARPS * 32, 0, s>>>(x, w, y, m, n, k, accumulate);
    cudaCheckLaunch();
    return PB_OK;
}
