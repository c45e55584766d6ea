/* The linear layers through cuBLASLt: every class's algorithms, their timing and
 * the process-wide table of choices, and residual products' K slices; see gemm.h.
 * Our GEMV is gemm_rows.cu. */
#include "gemm.h"
#include "cuda_check.h"
#include "pdl.h"
#include <math.h>
#include <string.h>

typedef __nv_bfloat16 bf16;

int gemm_init(struct gemm_ctx *g, void *workspace, int max_rows)
{
    if (max_rows < 1) return pb_fail("gemm_init: max_rows %d must be positive", max_rows);
    g->n_shapes = 0;
    g->workspace = workspace;
    g->tune_rows = gemm_tune_rows(max_rows);
    g->long_prompts = max_rows > GEMM_SHORT_SEQ;
    g->decode_rows = 0;
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

/* The row count M of a call into the layouts of X (b) and of Y (c). */
static cublasStatus_t layout_rows(cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, int rows)
{
    uint64_t cols = (uint64_t)rows;
    cublasStatus_t st = cublasLtMatrixLayoutSetAttribute(b, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
    return st == CUBLAS_STATUS_SUCCESS ? cublasLtMatrixLayoutSetAttribute(c, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols)
                                       : st;
}

/* The heuristic's split-K-free algorithms for layouts a, b, c (up to max): the
 * heuristic's split-K algorithms may add the parts in place in bf16 (a residual
 * product's K slices, below, are the one split taken, and add in fp32 in order).
 * Returns cuBLASLt's status (nothing found is not an error: *count 0). */
static cublasStatus_t heuristic(struct gemm_ctx *g, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                cublasLtMatrixLayout_t c, cublasLtMatmulAlgo_t *out, int max, int *count)
{
    *count = 0;
    cublasLtMatmulPreference_t pref;
    cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    uint64_t ws = GEMM_LT_WORKSPACE_BYTES;
    uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction,
                                                  sizeof reduction);
    cublasLtMatmulHeuristicResult_t res[GEMM_CANDIDATES];
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, a, b, c, c, pref, GEMM_CANDIDATES, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found && *count < max; i++) {
        int32_t splitk = 1;
        size_t written = 0;
        st = cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk,
                                                  &written);
        if (st == CUBLAS_STATUS_SUCCESS && splitk <= 1 && res[i].state == CUBLAS_STATUS_SUCCESS)
            out[(*count)++] = res[i].algo;
    }
    return st;
}

/* Heuristic candidates for one (N, K, class) at the rows its layouts hold now. */
static int candidates(struct gemm_ctx *g, struct gemm_shape *sh, cublasLtMatmulAlgo_t *out, int max, int *count)
{
    cublasCheck(heuristic(g, sh->a, sh->b, sh->c, out, max, count));
    return PB_OK;
}

__global__ void fill_pattern_kernel(bf16 *p, size_t n, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u;
        h ^= h >> 15;
        p[i] = __float2bfloat16(((float)(h & 0xffff) / 32768.0f - 1.0f) * scale);
    }
}

/* The fastest of three rounds (after a warm-up one) of `reps` launches back to
 * back; launch(r) starts the r-th and returns 0, or non-zero when it failed. */
template <typename F> static float best_round_ms(int reps, cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1, F launch)
{
    float best = INFINITY;
    for (int trial = 0; trial < 4; trial++) {  /* trial 0 warms up */
        if (cudaEventRecord(e0, s) != cudaSuccess) return INFINITY;
        for (int r = 0; r < reps; r++)
            if (launch(r)) return INFINITY;
        float ms = INFINITY;
        if (cudaEventRecord(e1, s) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            return INFINITY;
        if (trial && ms < best) best = ms;
    }
    return best;
}

/* Milliseconds of `reps` GEMMs back to back (algo NULL: gemm_skinny at the decode
 * rows), the best round. They walk over `copies` weight copies, more bytes than L2
 * holds, as the forward's layers do: short prompts are bound by weight bytes, and a
 * timing out of L2 would rank the tiles wrongly. a, b, c: the layouts (the shape's,
 * or its K slices'); y: bf16, or the slices' fp32 partials. */
static float time_algo(struct gemm_ctx *g, struct gemm_shape *sh, const cublasLtMatmulAlgo_t *algo,
                       cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc, const bf16 *x,
                       const bf16 *w, int copies, void *y, cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1)
{
    const int reps = sh->cls == GEMM_CLASS_LONG ? 2 : 8;  /* a long product runs for a millisecond or more */
    const float alpha = 1.0f, beta = 0.0f;
    const size_t nk = (size_t)sh->n * sh->k;
    return best_round_ms(reps, s, e0, e1, [&](int r) {
        const bf16 *wr = w + (size_t)(r % copies) * nk;
        if (!algo) return gemm_skinny(x, wr, (bf16 *)y, g->decode_rows, sh->n, sh->k, 0, s) != PB_OK;
        return cublasLtMatmul(g->lt, g->desc, &alpha, wr, la, x, lb, &beta, y, lc, y, lc, algo, g->workspace,
                              GEMM_LT_WORKSPACE_BYTES, s) != CUBLAS_STATUS_SUCCESS;
    });
}

/* Short prompts are bound by weight bytes, and the heuristic's first choice for
 * them is often a tile that leaves most SMs idle (N / tile_n blocks when M fits one
 * tile). So the candidates are timed once on patterned data (not zeros, which run
 * faster than real values) at the part's own row count: one prompt of 128 tokens
 * and four (512 rows) want different tiles (one algorithm for both, chosen on the
 * sum of the two slowdowns, cost 1x128 0.7 ms on an H100: docs/PERF.md), and a
 * microbatch keeps its part's algorithm whatever its rows, so a row's bits never
 * depend on the split. Candidates go in heuristic order, and a later one replaces
 * the one kept only if it is more than TUNE_MARGIN faster: a near tie always goes
 * to the same candidate, so processes that time separately (MPI ranks) agree
 * unless two candidates differ by about the margin. Nothing is timed if the
 * temporary buffers do not fit, or for products under GEMM_TUNE_MIN_MACS, which
 * run for a few microseconds, bound by their launch: the heuristic's order decides
 * there. (Timing them measured launch noise, and under compute-sanitizer's
 * racecheck the thousands of timed cuBLAS launches of one tiny test model took
 * minutes: issue 14.) */
#define TUNE_MARGIN 0.05f
/* The long class (4096 rows) is bound by its FLOPs and its products run for
 * 0.2-1.5 ms, steady enough that Llama-2-7B's 8x512 products alone read 79.6-80.3 ms
 * over five runs on different machines (docs/PERF.md), while the candidates differ
 * by a few percent: at 5% the heuristic's first choice stayed where a timed one
 * saves 5.0% (down) and 5.1% (o). */
#define LONG_TUNE_MARGIN 0.02f
#define GEMM_TUNE_MIN_MACS (1ull << 30)
int gemm_short_is_timed(int n, int k, int tune_rows)
{
    return (unsigned long long)n * (unsigned long long)k * (unsigned long long)tune_rows >= GEMM_TUNE_MIN_MACS;
}

#define GEMM_DECODE_MIN_ELEMS (1ull << 22)
int gemm_decode_is_timed(int n, int k) { return (unsigned long long)n * (unsigned long long)k >= GEMM_DECODE_MIN_ELEMS; }

static int class_rows(const struct gemm_ctx *g, int cls)
{
    return cls == GEMM_CLASS_SHORT ? g->tune_rows : cls == GEMM_CLASS_DECODE ? g->decode_rows : 4096;
}

/* ---- cuBLASLt's K slices of a residual product's decode class (gemm.h: gemm_prepare_residual) ---- */

static const int kslice_counts[] = {2, 4};
static int kslices_on = 1;
void gemm_set_kslices(int on) { kslices_on = on != 0; }
/* off by default: its GPU tests have not run yet (docs/PERF.md, 2026-12-08) */
static int short_kslices_on = 0;
void gemm_set_short_kslices(int on) { short_kslices_on = on != 0; }
/* What a tuned choice of slices depends on: both switches. */
static int kslices_key(void) { return kslices_on | short_kslices_on << 1; }

static int kslices_fit(const struct gemm_ctx *g, const struct gemm_shape *sh, int ks)
{
    return ks > 1 && sh->k % (8 * ks) == 0 && (size_t)ks * g->decode_rows * sh->n * sizeof(float) <= GEMM_PARTIALS_BYTES;
}

static void kslice_layouts_free(struct gemm_shape *sh)
{
    if (sh->ka) cublasLtMatrixLayoutDestroy(sh->ka);
    if (sh->kb) cublasLtMatrixLayoutDestroy(sh->kb);
    if (sh->kc) cublasLtMatrixLayoutDestroy(sh->kc);
    sh->ka = sh->kb = sh->kc = NULL;
}

/* Slice i of W and of X is the sub-matrix from K offset i * K / ks (the same leading
 * dimension K); its partial is [decode_rows][N] fp32 at slice stride decode_rows * N. */
static int kslice_layouts(const struct gemm_ctx *g, struct gemm_shape *sh, int ks)
{
    kslice_layouts_free(sh);
    const int kk = sh->k / ks;
    const int32_t batch = ks;
    const int64_t step_in = kk, step_out = (int64_t)sh->n * g->decode_rows;
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->ka, CUDA_R_16BF, kk, sh->n, sh->k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->kb, CUDA_R_16BF, kk, g->decode_rows, sh->k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->kc, CUDA_R_32F, sh->n, g->decode_rows, sh->n));
    const cublasLtMatrixLayout_t all[3] = {sh->ka, sh->kb, sh->kc};
    const int64_t steps[3] = {step_in, step_in, step_out};
    for (int i = 0; i < 3; i++) {
        cublasCheck(cublasLtMatrixLayoutSetAttribute(all[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
        cublasCheck(cublasLtMatrixLayoutSetAttribute(all[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &steps[i],
                                                     sizeof steps[i]));
    }
    return PB_OK;
}

/* The heuristic's algorithms for the slices' layouts (set up for ks); none where
 * cuBLASLt takes no batch of this form. */
static int kslice_candidates(struct gemm_ctx *g, struct gemm_shape *sh, cublasLtMatmulAlgo_t *out, int *count)
{
    if (heuristic(g, sh->ka, sh->kb, sh->kc, out, GEMM_CANDIDATES, count) != CUBLAS_STATUS_SUCCESS) *count = 0;
    return PB_OK;
}

/* Times the slices (each count that fits, each candidate) against `kept` ms, the
 * shape's kept algorithm at decode_rows; takes the fastest if faster by the margin. */
static int tune_kslices(struct gemm_ctx *g, struct gemm_shape *sh, const bf16 *x, const bf16 *w, int copies, void *y,
                        cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1, float *kept_ms)
{
    const float kept = *kept_ms;
    sh->ksplit = 0;
    float best = (1.0f - TUNE_MARGIN) * kept;
    int best_ks = 0;
    cublasLtMatmulAlgo_t best_algo;
    for (int ks : kslice_counts) {
        if (!kslices_fit(g, sh, ks)) continue;
        PB_TRY(kslice_layouts(g, sh, ks));
        cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES];
        int count = 0;
        PB_TRY(kslice_candidates(g, sh, cand, &count));
        for (int i = 0; i < count; i++) {
            float t = time_algo(g, sh, &cand[i], sh->ka, sh->kb, sh->kc, x, w, copies, y, s, e0, e1);
            if (t < best) best = t, best_ks = ks, best_algo = cand[i];
        }
    }
    kslice_layouts_free(sh);
    if (!best_ks) return PB_OK;
    *kept_ms = best;
    sh->ksplit = best_ks;
    sh->kalgo = best_algo;
    return kslice_layouts(g, sh, best_ks);
}

/* ---- gemm_tma for the decode and short classes (gemm.h: gemm_set_tma) ---- */

/* timed by default: on two H100s the batched steps ran 1.7-3.4% faster with the
 * products it won (o and down in its K slices at every batch) than on cuBLASLt
 * alone, and up to 1.8% slower at 32-64 rows with every product on it (docs/PERF.md) */
static int tma_mode = GEMM_TMA_TIMED;
void gemm_set_tma(int mode) { tma_mode = mode; }
int gemm_tma_mode(void) { return tma_mode; }

/* gemm_tma runs on sm_90 alone and takes up to 128 rows: the decode class of parts
 * of up to 128 sequences, and the short class of parts whose calls hold at most 128
 * rows (tune_rows is then max_rows); its slices go to the partials, a slice of
 * either class's rows (gemm_partials_rows) where they fit. */
static int tma_fits(const struct gemm_ctx *g, const struct gemm_shape *sh, const cudaDeviceProp *prop)
{
    const int rows_fit = sh->cls == GEMM_CLASS_DECODE ? g->decode_rows <= 128
                         : sh->cls == GEMM_CLASS_SHORT ? g->tune_rows <= 128 && !g->long_prompts
                                                       : 0;
    return rows_fit && prop->major == 9 && prop->minor == 0 && sh->k % 8 == 0;
}

static int tma_slices_fit(const struct gemm_ctx *g, const struct gemm_shape *sh, int ks)
{
    if (ks == 1) return 1;
    if (sh->cls == GEMM_CLASS_SHORT && !short_kslices_on) return 0;
    const size_t partials = (size_t)ks * gemm_partials_rows(g, sh->cls) * sh->n * sizeof(float);
    return sh->residual && kslices_on && partials <= GEMM_PARTIALS_BYTES && ks <= (sh->k + GEMM_TMA_BK - 1) / GEMM_TMA_BK;
}

static float time_tma(struct gemm_ctx *g, struct gemm_shape *sh, const bf16 *x, const bf16 *w, int copies, void *y,
                      int ks, int bn, cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1)
{
    const int m = class_rows(g, sh->cls);
    const size_t nk = (size_t)sh->n * sh->k;
    return best_round_ms(8, s, e0, e1, [&](int r) {
        return gemm_tma_cfg(x, w + (size_t)(r % copies) * nk, ks > 1 ? NULL : (bf16 *)y, ks > 1 ? (float *)y : NULL, m,
                            m, sh->n, sh->k, 0, ks, bn, 0, s, 1) != PB_OK;
    });
}

/* gemm_tma at each unit size and slice count that fits, against `kept` ms (the
 * class's choice so far, the decode class's cuBLASLt slices included);
 * GEMM_TMA_FORCE takes the fastest whatever kept is. A SwiGLU shape's fused kernel
 * takes 128-row units (gate and up), so gemm_tma_swiglu's shape is timed at those. */
static int tune_tma(struct gemm_ctx *g, struct gemm_shape *sh, const bf16 *x, const bf16 *w, int copies, void *y,
                    cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1, float kept)
{
    float best = tma_mode == GEMM_TMA_FORCE ? INFINITY : (1.0f - TUNE_MARGIN) * kept;
    int best_ks = 0, best_bn = 0;
    const int ks_list[3] = {1, 2, 4};
    for (int bn = 64; bn <= 128; bn += 64)
        for (int i = 0; i < 3; i++) {
            if (!tma_slices_fit(g, sh, ks_list[i])) continue;
            float t = time_tma(g, sh, x, w, copies, y, ks_list[i], bn, s, e0, e1);
            if (t < best) best = t, best_ks = ks_list[i], best_bn = bn;
        }
    if (!best_ks) return PB_OK;
    kslice_layouts_free(sh);  /* cuBLASLt's slices, if they were kept, give way */
    sh->tma = 1;
    sh->tma_bn = best_bn;
    sh->ksplit = best_ks > 1 ? best_ks : 0;
    sh->skinny = 0;
    return PB_OK;
}

/* What a tuned choice of gemm_tma depends on: the mode, and the consumers whose
 * speed it was timed at. */
static int tma_key(void)
{
    int warpgroups, inflight;
    gemm_tma_consumers(&warpgroups, &inflight);
    return (tma_mode * 3 + warpgroups) * 2 + inflight;
}

int gemm_tma_serves(struct gemm_ctx *g, int n, int k, int cls)
{
    const struct gemm_shape *sh = find_shape(g, n, k, cls);
    return sh && sh->tma;
}

static int tune_timed(struct gemm_ctx *g, struct gemm_shape *sh, const cublasLtMatmulAlgo_t *cand, int count)
{
    sh->algo = cand[0];
    const int m = class_rows(g, sh->cls);
    const float margin = sh->cls == GEMM_CLASS_LONG ? LONG_TUNE_MARGIN : TUNE_MARGIN;
    int timed = sh->cls == GEMM_CLASS_DECODE ? gemm_decode_is_timed(sh->n, sh->k)
                                             : gemm_short_is_timed(sh->n, sh->k, m);
    int dev;
    cudaDeviceProp prop;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    if (count < 2 || !timed) {  /* untimed: forced gemm_tma takes small units, slices where they fit (tests) */
        if (tma_mode == GEMM_TMA_FORCE && tma_fits(g, sh, &prop)) {
            sh->tma = 1;
            sh->tma_bn = 64;
            sh->ksplit = tma_slices_fit(g, sh, 2) ? 2 : 0;
        }
        return PB_OK;
    }
    size_t nk = (size_t)sh->n * sh->k;
    int copies = (int)((3ull * prop.l2CacheSize) / (nk * 2) + 1);
    if (copies > 64) copies = 64;
    bf16 *x = NULL, *w = NULL, *y = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = PB_OK;
    size_t ybytes = (size_t)m * sh->n * 2;
    if (sh->residual && ybytes < GEMM_PARTIALS_BYTES) ybytes = GEMM_PARTIALS_BYTES;  /* the K slices' partials */
    int ok = cudaMalloc((void **)&x, (size_t)m * sh->k * 2) == cudaSuccess &&
             cudaMalloc((void **)&w, nk * copies * 2) == cudaSuccess &&
             cudaMalloc((void **)&y, ybytes) == cudaSuccess &&
             cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess &&
             cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess;
    if (ok) {
        fill_pattern_kernel<<<1024, 256, 0, s>>>(x, (size_t)m * sh->k, 1.0f);
        fill_pattern_kernel<<<1024, 256, 0, s>>>(w, nk * copies, 0.02f);
        ok = cudaGetLastError() == cudaSuccess && layout_rows(sh->b, sh->c, m) == CUBLAS_STATUS_SUCCESS;
    }
    if (ok) {
        float kept = time_algo(g, sh, &cand[0], sh->a, sh->b, sh->c, x, w, copies, y, s, e0, e1);
        for (int i = 1; i < count; i++) {
            float t = time_algo(g, sh, &cand[i], sh->a, sh->b, sh->c, x, w, copies, y, s, e0, e1);
            if (t < (1.0f - margin) * kept) {
                kept = t;
                sh->algo = cand[i];
            }
        }
        if (sh->cls == GEMM_CLASS_DECODE && sh->k % 8 == 0) {
            const float t = time_algo(g, sh, NULL, NULL, NULL, NULL, x, w, copies, y, s, e0, e1);
            sh->skinny = t < (1.0f - TUNE_MARGIN) * kept;
            if (sh->skinny) kept = t;
        }
        if (sh->cls == GEMM_CLASS_DECODE && sh->residual && kslices_on)  /* the short class: gemm_tma's alone */
            rc = tune_kslices(g, sh, x, w, copies, y, s, e0, e1, &kept);
        if (rc == PB_OK && tma_mode != GEMM_TMA_OFF && tma_fits(g, sh, &prop))
            rc = tune_tma(g, sh, x, w, copies, y, s, e0, e1, kept);
    }
    (void)cudaGetLastError();  /* a failed temporary allocation only means: no tuning */
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (s) cudaStreamDestroy(s);
    cudaFree(x);
    cudaFree(w);
    cudaFree(y);
    return rc;
}

/* The chosen algorithm of each timed (N, K, rows, class), shared by every
 * context of the process: timing is noisy, and two parts of one run (same
 * max_rows) that chose differently would not agree bit for bit (pipeline stages,
 * cpu offload against the same model on the device). Parts are created one after
 * another on one thread, as the executors do. All devices of a run are taken to be
 * the same model. Entries are never dropped; once the table is full a new key is
 * not timed but takes the heuristic's first choice, as every later part with that
 * key will too. */
#define GEMM_TUNED_MAX 128
static struct {
    int n, k, rows, cls, residual, kslices_key, skinny, ksplit, tma_key, tma, tma_bn;
    cublasLtMatmulAlgo_t algo, kalgo;
} tuned[GEMM_TUNED_MAX];
static int n_tuned;

/* Adds the heuristic's candidates for `rows` rows that cand lacks. */
static int more_candidates(struct gemm_ctx *g, struct gemm_shape *sh, int rows, cublasLtMatmulAlgo_t *cand, int *count)
{
    cublasLtMatmulAlgo_t more[GEMM_CANDIDATES];
    int extra = 0;
    cublasCheck(layout_rows(sh->b, sh->c, rows));
    PB_TRY(candidates(g, sh, more, GEMM_CANDIDATES, &extra));
    for (int j = 0; j < extra; j++) {
        int dup = 0;
        for (int i = 0; i < *count && !dup; i++) dup = !memcmp(&cand[i], &more[j], sizeof more[j]);
        if (!dup) cand[(*count)++] = more[j];
    }
    return PB_OK;
}

/* Candidates of the short class: the heuristic's for tune_rows, then those for 128
 * rows that it lacks; the decode class adds those for 64 rows before 128; the long
 * class takes the heuristic's for its 4096 rows alone. The order is the preference
 * tune_timed keeps on a near tie. */
static int timed_candidates(struct gemm_ctx *g, struct gemm_shape *sh, cublasLtMatmulAlgo_t *cand, int *count)
{
    const int rows = class_rows(g, sh->cls);
    PB_TRY(candidates(g, sh, cand, GEMM_CANDIDATES, count));
    if (sh->cls == GEMM_CLASS_LONG) return PB_OK;
    if (sh->cls == GEMM_CLASS_DECODE && rows != 64) PB_TRY(more_candidates(g, sh, 64, cand, count));
    if (rows != 128) PB_TRY(more_candidates(g, sh, 128, cand, count));
    return PB_OK;
}

static int prepare_class(struct gemm_ctx *g, int n, int k, int cls, int residual)
{
    if (find_shape(g, n, k, cls)) return PB_OK;  /* the first preparation decides residual */
    if (g->n_shapes == GEMM_MAX_SHAPES) return pb_fail("gemm_prepare: more than %d GEMM shapes", GEMM_MAX_SHAPES);
    struct gemm_shape *sh = &g->shapes[g->n_shapes];
    sh->n = n;
    sh->k = k;
    sh->cls = cls;
    sh->skinny = 0;
    sh->tma = sh->tma_bn = 0;
    sh->residual = residual && cls != GEMM_CLASS_LONG;  /* 4096 rows of partials would not fit */
    sh->ksplit = 0;
    sh->ka = sh->kb = sh->kc = NULL;
    const int rows = class_rows(g, cls);
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->a, CUDA_R_16BF, k, n, k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->b, CUDA_R_16BF, k, rows, k));
    cublasCheck(cublasLtMatrixLayoutCreate(&sh->c, CUDA_R_16BF, n, rows, n));
    g->n_shapes++;  /* counted now, so gemm_destroy frees the layouts if a step below fails */
    cublasLtMatmulAlgo_t cand[3 * GEMM_CANDIDATES];
    int count = 0;
    PB_TRY(timed_candidates(g, sh, cand, &count));
    if (!count) return pb_fail("cuBLASLt offers no algorithm without split-K for a bf16 GEMM N=%d K=%d", n, k);
    sh->algo = cand[0];
    if (cls == GEMM_CLASS_LONG && !g->long_prompts) return PB_OK;  /* no call of this context is long */
    const int kkey = kslices_key(), tkey = tma_key();
    int i = 0;
    while (i < n_tuned && !(tuned[i].n == n && tuned[i].k == k && tuned[i].rows == rows && tuned[i].cls == cls &&
                            tuned[i].residual == sh->residual && tuned[i].kslices_key == kkey &&
                            tuned[i].tma_key == tkey))
        i++;
    if (i < n_tuned) {
        sh->algo = tuned[i].algo;
        sh->skinny = tuned[i].skinny;
        sh->ksplit = tuned[i].ksplit;
        sh->kalgo = tuned[i].kalgo;
        sh->tma = tuned[i].tma;
        sh->tma_bn = tuned[i].tma_bn;
        if (sh->ksplit && !sh->tma) PB_TRY(kslice_layouts(g, sh, sh->ksplit));
    } else if (n_tuned < GEMM_TUNED_MAX) {
        PB_TRY(tune_timed(g, sh, cand, count));
        tuned[n_tuned].n = n;
        tuned[n_tuned].k = k;
        tuned[n_tuned].rows = rows;
        tuned[n_tuned].cls = cls;
        tuned[n_tuned].residual = sh->residual;
        tuned[n_tuned].kslices_key = kkey;
        tuned[n_tuned].skinny = sh->skinny;
        tuned[n_tuned].ksplit = sh->ksplit;
        tuned[n_tuned].kalgo = sh->kalgo;
        tuned[n_tuned].tma_key = tkey;
        tuned[n_tuned].tma = sh->tma;
        tuned[n_tuned].tma_bn = sh->tma_bn;
        tuned[n_tuned++].algo = sh->algo;
    }
    return PB_OK;
}

int gemm_set_decode_rows(struct gemm_ctx *g, int rows)
{
    if (rows < 1) return pb_fail("gemm_set_decode_rows: rows %d must be positive", rows);
    if (g->n_shapes) return pb_fail("gemm_set_decode_rows: set before the first gemm_prepare");
    g->decode_rows = rows;
    return PB_OK;
}

static int prepare(struct gemm_ctx *g, int n, int k, int residual)
{
    PB_TRY(prepare_class(g, n, k, GEMM_CLASS_LONG, 0));
    PB_TRY(prepare_class(g, n, k, GEMM_CLASS_SHORT, 0));
    return g->decode_rows ? prepare_class(g, n, k, GEMM_CLASS_DECODE, residual) : PB_OK;
}

int gemm_prepare(struct gemm_ctx *g, int n, int k) { return prepare(g, n, k, 0); }
int gemm_prepare_residual(struct gemm_ctx *g, int n, int k) { return prepare(g, n, k, 1); }

int gemm_ksplit(struct gemm_ctx *g, int n, int k, int cls)
{
    const struct gemm_shape *sh = find_shape(g, n, k, cls);
    return sh ? sh->ksplit : 0;
}

int gemm_partials_rows(const struct gemm_ctx *g, int cls)
{
    return cls == GEMM_CLASS_LONG ? 0 : class_rows(g, cls);
}

int gemm_force_ksplit(struct gemm_ctx *g, int n, int k, int ks)
{
    struct gemm_shape *sh = find_shape(g, n, k, GEMM_CLASS_DECODE);
    if (!sh || !sh->residual) return pb_fail("gemm_force_ksplit: N=%d K=%d has no residual decode class", n, k);
    kslice_layouts_free(sh);
    sh->ksplit = 0;
    sh->tma = 0;
    if (!ks) return PB_OK;
    if (!kslices_fit(g, sh, ks)) return pb_fail("gemm_force_ksplit: %d slices do not fit N=%d K=%d", ks, n, k);
    PB_TRY(kslice_layouts(g, sh, ks));
    cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES];
    int count = 0;
    PB_TRY(kslice_candidates(g, sh, cand, &count));
    if (!count) return pb_fail("gemm_force_ksplit: cuBLASLt offers no algorithm for %d slices of N=%d K=%d", ks, n, k);
    sh->ksplit = ks;
    sh->kalgo = cand[0];
    return PB_OK;
}

float *gemm_partials(const struct gemm_ctx *g) { return (float *)((char *)g->workspace + GEMM_LT_WORKSPACE_BYTES); }

int gemm_lt_partials(struct gemm_ctx *g, const bf16 *x, const bf16 *w, int m, int n, int k, int cls, cudaStream_t s,
                     int pdl)
{
    struct gemm_shape *sh = find_shape(g, n, k, cls);
    if (!sh || !sh->ksplit) return pb_fail("gemm_lt_partials: N=%d K=%d has no K slices in class %d", n, k, cls);
    const int prow = gemm_partials_rows(g, cls);
    if (m > prow) return pb_fail("gemm_lt_partials: %d rows, class %d's slices hold %d", m, cls, prow);
    if (m <= 0) return PB_OK;
    if (sh->tma) return gemm_tma_cfg(x, w, NULL, gemm_partials(g), prow, m, n, k, 0, sh->ksplit, sh->tma_bn, 0, s, pdl);
    cublasCheck(layout_rows(sh->kb, sh->kc, m));  /* cuBLASLt's slices: the decode class's alone (kslice_layouts) */
    float alpha = 1.0f, beta = 0.0f, *part = gemm_partials(g);
    cublasCheck(cublasLtMatmul(g->lt, g->desc, &alpha, w, sh->ka, x, sh->kb, &beta, part, sh->kc, part, sh->kc,
                               &sh->kalgo, g->workspace, GEMM_LT_WORKSPACE_BYTES, s));
    return PB_OK;
}

void gemm_destroy(struct gemm_ctx *g)
{
    for (int i = 0; i < g->n_shapes; i++) {
        cublasLtMatrixLayoutDestroy(g->shapes[i].a);
        cublasLtMatrixLayoutDestroy(g->shapes[i].b);
        cublasLtMatrixLayoutDestroy(g->shapes[i].c);
        kslice_layouts_free(&g->shapes[i]);
    }
    g->n_shapes = 0;
    if (g->desc) cublasLtMatmulDescDestroy(g->desc);
    if (g->lt) cublasLtDestroy(g->lt);
    g->desc = NULL;
    g->lt = NULL;
}

int gemm_lt(struct gemm_ctx *g, const bf16 *x, const bf16 *w, bf16 *y, int m, int n, int k, int accumulate, int cls,
            cudaStream_t s, int pdl)
{
    struct gemm_shape *sh = find_shape(g, n, k, cls);
    if (!sh) return pb_fail("gemm_lt: shape N=%d K=%d was not prepared", n, k);
    if (m <= 0) return PB_OK;
    if (sh->skinny) return gemm_skinny(x, w, y, m, n, k, accumulate, s, pdl);
    if (sh->tma) return gemm_tma_cfg(x, w, y, NULL, 0, m, n, k, accumulate, 1, sh->tma_bn, 0, s, pdl);
    cublasCheck(layout_rows(sh->b, sh->c, m));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasCheck(cublasLtMatmul(g->lt, g->desc, &alpha, w, sh->a, x, sh->b, &beta, y, sh->c, y, sh->c, &sh->algo,
                               g->workspace, GEMM_LT_WORKSPACE_BYTES, s));
    if (cls == GEMM_CLASS_LONG) cudaCheck(pdl_capture_keep(s));  /* no early edge after it (pdl.h) */
    return PB_OK;
}
