/* Every version of the decode linear layers side by side (llm.c's dev/cuda way):
 * each checked against a CPU fp64 reference on sampled columns, then timed over
 * the 32 layers' own weights (each launch reads weights no earlier launch of the
 * round read, so L2 holds none of them), median of rounds, CUDA events. Also the
 * prefill GEMMs' cuBLASLt candidates at 128 and 4096 rows, to see what the chosen
 * algorithms leave. Prints one line a (shape, rows, version): ms, % of the copy
 * rate over the weight bytes, max relative error, and whether a row's bits match
 * the same row computed in a 64-row call.
 * usage: bench_decode_gemm [config.json [decode|lt-decode]]   (default models/llama-2-7b.json; "decode": skip the
 * prefill candidates; "lt-decode": only cuBLASLt's candidates at 16, 32 and 64 rows) */
#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include <cublasLt.h>
#include "../../kernels/gemm.h"
extern "C" {
#include "../../models/model_spec.h"
}

typedef __nv_bfloat16 bf16;
#define CU(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); exit(1); } } while (0)
#define LT(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "%s: status %d (line %d)\n", #x, (int)s_, __LINE__); exit(1); } } while (0)
#define OK(x) do { if ((x) != 0) { fprintf(stderr, "failed: %s (line %d)\n", #x, __LINE__); exit(1); } } while (0)

__global__ void fill_kernel(bf16 *p, size_t n, uint32_t seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed * 0x9e3779b9u ^ (uint32_t)(i >> 32) * 0x85ebca6bu;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        p[i] = __float2bfloat16(((float)(h & 0xffff) / 32768.0f - 1.0f) * scale);
    }
}

template <typename F> static double median_ms(F fn, int warm, int iters)
{
    for (int i = 0; i < warm; i++) fn();
    CU(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < iters; i++) {
        CU(cudaEventRecord(a, 0));
        fn();
        CU(cudaEventRecord(b, 0));
        CU(cudaEventSynchronize(b));
        float ms;
        CU(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    CU(cudaEventDestroy(a));
    CU(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static float bf(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static std::vector<uint16_t> host_copy(const void *d, size_t n)
{
    std::vector<uint16_t> h(n);
    CU(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    return h;
}

struct shape {
    const char *name;
    int n, k, layers, swiglu;  /* swiglu: n is the intermediate size, weights [2n, K] */
    bf16 *w;                   /* layers copies of [wrows, K] */
    size_t wrows() const { return swiglu ? 2 * (size_t)n : (size_t)n; }
    size_t elems() const { return wrows() * k; }
};

/* fp64 reference of y[m, n] on 61 sampled columns, [m][61] */
static std::vector<double> reference(const shape &sh, const bf16 *x, int m)
{
    std::vector<uint16_t> hx = host_copy(x, (size_t)m * sh.k);
    std::vector<double> ref((size_t)m * 61);
    for (int s = 0; s < 61; s++) {
        int col = (int)(((long long)s * 7919 + 3) % sh.n);
        std::vector<uint16_t> wg = host_copy(sh.w + (size_t)col * sh.k, sh.k), wu;
        if (sh.swiglu) wu = host_copy(sh.w + ((size_t)sh.n + col) * sh.k, sh.k);
        for (int r = 0; r < m; r++) {
            double g = 0, u = 0;
            for (int i = 0; i < sh.k; i++) {
                double xv = bf(hx[(size_t)r * sh.k + i]);
                g += xv * bf(wg[i]);
                if (sh.swiglu) u += xv * bf(wu[i]);
            }
            ref[(size_t)r * 61 + s] = sh.swiglu ? g / (1.0 + exp(-g)) * u : g;
        }
    }
    return ref;
}

/* ||y - ref|| / ||ref|| over the sampled columns; NaN anywhere (an unwritten,
 * poisoned output) gives +inf */
static double check(const shape &sh, const std::vector<double> &ref, const bf16 *y, int m)
{
    std::vector<uint16_t> hy = host_copy(y, (size_t)m * sh.n);
    double num = 0, den = 0;
    for (int s = 0; s < 61; s++) {
        int col = (int)(((long long)s * 7919 + 3) % sh.n);
        for (int r = 0; r < m; r++) {
            double got = bf(hy[(size_t)r * sh.n + col]), want = ref[(size_t)r * 61 + s];
            if (!std::isfinite(got)) return INFINITY;
            num += (got - want) * (got - want);
            den += want * want;
        }
    }
    for (size_t i = 0; i < hy.size(); i++)
        if ((hy[i] & 0x7fff) > 0x7f80) return INFINITY;
    return sqrt(num / (den > 0 ? den : 1));
}

/* Y = X W^T as gemm.cu sets it up: W^T of the column-major K x N weights. */
static cublasLtMatmulDesc_t lt_desc()
{
    cublasLtMatmulDesc_t desc;
    LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    return desc;
}

/* The heuristic's preferences as gemm.cu asks: the workspace, no split-K reduction. */
static cublasLtMatmulPreference_t lt_pref(size_t wsb)
{
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t wsz = wsb;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE;
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));
    return pref;
}

/* cuBLASLt candidates for one shape at m rows (split-K excluded, as gemm.cu does):
 * the heuristic's first and the fastest, timed over the layers' weights. */
static void lt_candidates(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, int m,
                          double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    int n = (int)sh.wrows();
    cublasLtMatrixLayout_t a, b, c;
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    LT(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, sh.k, m, sh.k));
    LT(cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t pref = lt_pref(wsb);
    cublasLtMatmulHeuristicResult_t res[16];
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, 16, res, &found));
    double first = -1, best = 1e30;
    int best_i = -1;
    float alpha = 1, beta = 0;
    int layers = m >= 1024 ? std::min(sh.layers, 8) : sh.layers;
    for (int i = 0; i < found; i++) {
        int32_t splitk = 1;
        size_t wr = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &wr);
        if (splitk > 1 || res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        double ms = median_ms([&] {
            for (int l = 0; l < layers; l++)
                LT(cublasLtMatmul(lt, desc, &alpha, sh.w + (size_t)l * sh.elems(), a, x, b, &beta, y, c, y, c,
                                  &res[i].algo, ws, wsb, 0));
        }, 1, 5) * sh.layers / layers;
        if (first < 0) first = ms;
        if (ms < best) best = ms, best_i = i;
    }
    double bytes = (double)sh.elems() * 2 * sh.layers;
    double flops = 2.0 * m * (double)sh.elems() * sh.layers;
    printf("lt %-7s %4d rows: heuristic first %.3f ms (%.1f%% of copy, %.0f TFLOP/s), best of %d candidate %d %.3f ms "
           "(%.1f%%, %.0f TFLOP/s)\n", sh.name, m, first, 100 * bytes / (first * 1e6) / copy_gbs, flops / (first * 1e9),
           found, best_i, best, 100 * bytes / (best * 1e6) / copy_gbs, flops / (best * 1e9));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a), cublasLtMatrixLayoutDestroy(b), cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(desc);
}

/* cuBLASLt at decode row counts: every split-K-free candidate the heuristic gives
 * for m rows, timed over the layers (tile and stages ids printed), then whether the
 * fastest gives a row the same bits in calls of 1, 16 and 64 rows. */
static void lt_decode(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, int m,
                      double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    int n = (int)sh.wrows();
    cublasLtMatrixLayout_t a, b[3], c[3];
    const int rows[3] = {m, 1, 16};
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    for (int i = 0; i < 3; i++) {
        LT(cublasLtMatrixLayoutCreate(&b[i], CUDA_R_16BF, sh.k, rows[i], sh.k));
        LT(cublasLtMatrixLayoutCreate(&c[i], CUDA_R_16BF, n, rows[i], n));
    }
    cublasLtMatmulPreference_t pref = lt_pref(wsb);
    cublasLtMatmulHeuristicResult_t res[32];
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b[0], c[0], c[0], pref, 32, res, &found));
    double best = 1e30;
    int best_i = -1;
    float alpha = 1, beta = 0;
    double bytes = (double)sh.elems() * 2 * sh.layers;
    for (int i = 0; i < found; i++) {
        int32_t splitk = 1, tile = -1, stages = -1;
        size_t wr = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &wr);
        if (splitk > 1 || res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        double ms = median_ms([&] {
            for (int l = 0; l < sh.layers; l++)
                LT(cublasLtMatmul(lt, desc, &alpha, sh.w + (size_t)l * sh.elems(), a, x, b[0], &beta, y, c[0], y, c[0],
                                  &res[i].algo, ws, wsb, 0));
        }, 1, 5);
        printf("lt-decode %-7s %3d rows cand %2d tile %3d stages %3d: %.3f ms = %.1f%% of copy\n", sh.name, m, i, tile,
               stages, ms, 100 * bytes / (ms * 1e6) / copy_gbs);
        if (ms < best) best = ms, best_i = i;
    }
    if (best_i >= 0) {
        /* a row's bits in calls of m, 1 and 16 rows (the same algorithm) */
        std::vector<std::vector<uint16_t>> out(3);
        const char *bits = "equal";
        for (int r = 0; r < 3; r++) {
            cublasLtMatmulHeuristicResult_t chk;
            if (cublasLtMatmulAlgoCheck(lt, desc, a, b[r], c[r], c[r], &res[best_i].algo, &chk) != CUBLAS_STATUS_SUCCESS) {
                bits = "algorithm not valid at every row count";
                break;
            }
            LT(cublasLtMatmul(lt, desc, &alpha, sh.w, a, x, b[r], &beta, y, c[r], y, c[r], &res[best_i].algo, ws, wsb, 0));
            CU(cudaDeviceSynchronize());
            out[r] = host_copy(y, (size_t)rows[r] * n);
        }
        if (!strcmp(bits, "equal"))
            for (int r = 1; r < 3; r++)
                if (memcmp(out[r].data(), out[0].data(), out[r].size() * 2)) bits = "DIFFER";
        printf("lt-decode best %-7s %3d rows: cand %d %.3f ms = %.1f%% of copy; a row's bits at %d, 1 and 16 rows: %s\n",
               sh.name, m, best_i, best, 100 * bytes / (best * 1e6) / copy_gbs, m, bits);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    for (int i = 0; i < 3; i++) cublasLtMatrixLayoutDestroy(b[i]), cublasLtMatrixLayoutDestroy(c[i]);
    cublasLtMatmulDescDestroy(desc);
}

int main(int argc, char **argv)
{
    const char *cfg = argc > 1 ? argv[1] : "models/llama-2-7b.json";
    struct model_spec m;
    OK(model_spec_load(cfg, &m));
    cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, L2 %d MB; model %s\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20,
           m.name);
    size_t cb = (size_t)1 << 30;
    void *c0, *c1;
    CU(cudaMalloc(&c0, cb));
    CU(cudaMalloc(&c1, cb));
    CU(cudaMemset(c0, 1, cb));
    double copy_gbs = 2.0 * cb / (median_ms([&] { CU(cudaMemcpyAsync(c1, c0, cb, cudaMemcpyDeviceToDevice, 0)); }, 3, 20) * 1e6);
    CU(cudaFree(c0));
    CU(cudaFree(c1));
    printf("copy %.0f GB/s (read + write)\n", copy_gbs);

    int hd = m.head_dim ? m.head_dim : m.hidden / m.heads;
    int qkv_n = (m.heads + 2 * m.kv_heads) * hd;
    shape sh[5] = {{"qkv", qkv_n, m.hidden, m.layers, 0, NULL},
                   {"o", m.hidden, m.heads * hd, m.layers, 0, NULL},
                   {"gate_up", m.intermediate, m.hidden, m.layers, 1, NULL},
                   {"down", m.hidden, m.intermediate, m.layers, 0, NULL},
                   {"lm_head", m.vocab, m.hidden, 1, 0, NULL}};
    int kmax = 0;
    for (int i = 0; i < 5; i++) {
        CU(cudaMalloc((void **)&sh[i].w, sh[i].elems() * sh[i].layers * 2));
        fill_kernel<<<4096, 256>>>(sh[i].w, sh[i].elems() * sh[i].layers, 11 + i, 0.02f);
        kmax = std::max(kmax, sh[i].k);
    }
    const int max_rows = 4096;
    bf16 *x, *y, *y64;
    CU(cudaMalloc((void **)&x, (size_t)max_rows * kmax * 2));
    CU(cudaMalloc((void **)&y, (size_t)max_rows * m.vocab * 2 + (size_t)max_rows * 2 * m.intermediate * 2));
    CU(cudaMalloc((void **)&y64, (size_t)128 * m.vocab * 2));
    fill_kernel<<<4096, 256>>>(x, (size_t)max_rows * kmax, 5, 1.0f);
    CU(cudaDeviceSynchronize());
    if (argc > 2 && !strcmp(argv[2], "lt-decode")) {  /* cuBLASLt at decode row counts only */
        cublasLtHandle_t lt;
        LT(cublasLtCreate(&lt));
        void *ws;
        size_t wsb = 32u << 20;
        CU(cudaMalloc(&ws, wsb));
        const int lt_rows[3] = {16, 32, 64};
        for (int r = 0; r < 3; r++)
            for (int i = 0; i < 5; i++) lt_decode(lt, ws, wsb, sh[i], x, y, lt_rows[r], copy_gbs);
        return 0;
    }

    /* version: 0 GEMV, 1 skinny, 2 stream; for stream: splits, row tile, prefetch;
     * for skinny its weight stream (registers, or cp.async rings: stages, chunks a
     * group) and column tiles */
    struct version {
        const char *name;
        int kind, splits, row_tile, prefetch, pdl;
        struct skinny_stream_cfg ss;
        int mt;  /* skinny: column tiles a block (0: gemm_skinny's choice) */
    };
    const struct skinny_stream_cfg sregs = {DECODE_STREAM_REGISTERS, 4, 2, 0};
    std::vector<version> vs = {{"gemv regs", 0, 0, 0, 0, 0, sregs, 0},
                               {"gemv regs pdl", 0, 0, 0, 0, 1, sregs, 0},
                               {"skinny", 1, 0, 0, 0, 0, sregs, 0},
                               {"skinny pdl", 1, 0, 0, 0, 1, sregs, 0}};
    const struct skinny_stream_cfg sasync[] = {{DECODE_STREAM_ASYNC, 3, 1, 0}, {DECODE_STREAM_ASYNC, 4, 1, 0},
                                               {DECODE_STREAM_ASYNC, 6, 1, 0}, {DECODE_STREAM_ASYNC, 3, 2, 0},
                                               {DECODE_STREAM_ASYNC, 4, 2, 0}, {DECODE_STREAM_ASYNC, 2, 4, 0}};
    for (const struct skinny_stream_cfg &b : sasync)
        for (int mt = 1; mt <= 2; mt++) {
            char *nm = (char *)malloc(48);
            snprintf(nm, 48, "skinny async s%d v%d mt%d pdl", b.stages, b.vecs, mt);
            vs.push_back({nm, 1, 0, 0, 0, 1, b, mt});
        }
    /* the GEMV's spreads of columns over warps; mt here: columns a warp (0: gemm_rows' choice) */
    vs.push_back({"gemv regs 1col pdl", 0, 0, 0, 0, 1, sregs, 1});
    vs.push_back({"gemv regs 2col pdl", 0, 0, 0, 0, 1, sregs, 2});
    const int splits[5] = {1, 2, 3, 4, 8};
    for (int s = 0; s < 5; s++) {
        char *nm = (char *)malloc(48);
        snprintf(nm, 48, "stream S%d pdl", splits[s]);
        vs.push_back({nm, 2, splits[s], 0, 0, 1, sregs, 0});
    }
    vs.push_back({"stream auto pdl", 2, -1, 0, 0, 1, sregs, 0});
    vs.push_back({"stream auto pf4 pdl", 2, -1, 0, 4, 1, sregs, 0});
    const int rows_list[3] = {1, 16, 64};
    int failures = 0;
    for (int r = 0; r < 3; r++) {
        int rows = rows_list[r];
        for (int i = 0; i < 5; i++) {
            const shape &s = sh[i];
            int auto_s = gemm_stream_splits(s.n, s.k, s.swiglu);
            double best = 1e30;
            const char *best_name = "";
            std::vector<double> ref = reference(s, x, rows);
            for (const version &v : vs) {
                if (v.kind == 0 && rows > 8) continue;   /* the GEMV is for one-row parts */
                if (v.kind == 1 && rows > 64) continue;
                if (v.kind == 1 && v.mt == 1 && s.swiglu) continue;  /* SwiGLU takes two tiles */
                if (v.kind == 2 && v.row_tile == 128 && rows < 128) continue;
                int sp = v.splits < 0 ? auto_s : v.splits;
                if (v.kind == 1) gemm_skinny_set_stream(v.ss);
                if (v.kind == 0 && v.mt && s.swiglu) continue;  /* SwiGLU: a gate and an up row a warp */
                auto launch = [&](const bf16 *w, bf16 *out, int mr, int pdl) {
                    if (v.kind == 0)
                        OK(s.swiglu ? gemm_rows_swiglu(x, w, out, mr, s.n, s.k, 0, pdl)
                           : v.mt   ? gemm_rows_cols(x, w, out, mr, s.n, s.k, 0, v.mt, 0, pdl)
                                    : gemm_rows(x, w, out, mr, s.n, s.k, 0, 0, pdl));
                    else if (v.kind == 1)
                        OK(s.swiglu ? gemm_skinny_swiglu(x, w, out, mr, s.n, s.k, 0, pdl)
                           : v.mt   ? gemm_skinny_mt(x, w, out, mr, s.n, s.k, 0, v.mt, 0, pdl)
                                    : gemm_skinny(x, w, out, mr, s.n, s.k, 0, 0, pdl));
                    else
                        OK(gemm_stream_cfg(x, w, out, mr, s.n, s.k, 0, s.swiglu, sp, v.row_tile, v.prefetch, 0, pdl));
                };
                CU(cudaMemset(y, 0xff, (size_t)rows * s.n * 2));
                launch(s.w, y, rows, 0);
                CU(cudaGetLastError());
                CU(cudaDeviceSynchronize());
                double err = check(s, ref, y, rows);
                /* the same rows inside a 64-row call (128 for a 128-row tile): the same bits? */
                int big = rows > 64 ? 128 : 64;
                const char *bits = "-";
                if (v.kind != 0 && !(v.kind == 1 && big > 64)) {
                    launch(s.w, y64, big, 0);
                    CU(cudaDeviceSynchronize());
                    bits = host_copy(y, (size_t)rows * s.n) == host_copy(y64, (size_t)rows * s.n) ? "same" : "DIFFER";
                }
                double ms = median_ms([&] {
                    for (int l = 0; l < s.layers; l++) launch(s.w + (size_t)l * s.elems(), y, rows, v.pdl);
                }, 2, 10);
                double bytes = (double)s.elems() * 2 * s.layers;
                bool bad = !(err <= 1e-2) || !strcmp(bits, "DIFFER");
                failures += bad;
                printf("%-7s N=%5d K=%5d rows %3d %-22s S=%d: %8.3f ms = %5.1f%% of copy | rel err %.2e | bits vs %d rows: %s%s\n",
                       s.name, (int)s.wrows(), s.k, rows, v.name, v.kind == 2 ? sp : 0, ms,
                       100 * bytes / (ms * 1e6) / copy_gbs, err, big, bits, bad ? "  <-- FAIL" : "");
                if (!bad && ms < best) best = ms, best_name = v.name;
            }
            printf("best %-7s rows %3d: %s %.3f ms = %.1f%% of copy\n", s.name, rows, best_name, best,
                   100 * (double)s.elems() * 2 * s.layers / (best * 1e6) / copy_gbs);
        }
    }
    if (argc > 2 && !strcmp(argv[2], "decode")) {  /* the decode versions only */
        printf("%d version(s) failed a check\n", failures);
        return failures ? 1 : 0;
    }
    /* prefill GEMMs: what cuBLASLt's candidates give at 128 rows (1x128) and 4096 (8x512) */
    cublasLtHandle_t lt;
    LT(cublasLtCreate(&lt));
    void *ws;
    size_t wsb = 32u << 20;
    CU(cudaMalloc(&ws, wsb));
    const int lt_rows[2] = {128, 4096};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 5; i++) lt_candidates(lt, ws, wsb, sh[i], x, y, lt_rows[r], copy_gbs);
    printf("%d version(s) failed a check\n", failures);
    return failures ? 1 : 0;
}
