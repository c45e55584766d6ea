/* Every version of the decode linear layers side by side (llm.c's dev/cuda way):
 * each checked against a CPU fp64 reference on sampled columns, then timed over
 * the 32 layers' own weights (each launch reads weights no earlier launch of the
 * round read, so L2 holds none of them), median of rounds, CUDA events. Also the
 * prefill GEMMs' cuBLASLt candidates at 128 and 4096 rows, to see what the chosen
 * algorithms leave. Prints one line a (shape, rows, version): ms, % of the copy
 * rate over the weight bytes, max relative error, and whether a row's bits match
 * the same row computed in a 64-row call.
 * usage: bench_decode_gemm [config.json [decode|lt-decode|lt-splitk|lt-search|lt-kbatch|tma]]   (default
 * models/llama-2-7b.json; "decode": skip the prefill candidates; "lt-decode": only cuBLASLt's candidates at 16, 32
 * and 64 rows; "lt-splitk": those candidates with K split over blocks, at 16, 32, 64 and 128 rows; "lt-search": every
 * configuration cuBLASLt accepts at 16 and 64 rows, and for N = hidden at 32; "lt-kbatch": K in slices over a strided
 * batch at 16, 32 and 64 rows and at the short prompts' 128 and 256; the sweeps are decode_gemm_lt.cu; "tma":
 * gemm_tma's unit sizes and K slices at 8, 16, 32 and 64 rows against the decode class) */
#include <math.h>
#include "bench_decode_gemm.h"
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
extern "C" {
#include "../../models/model_spec.h"
}

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

static float bf(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

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

/* "tma": gemm_tma at every unit size, K-slice count and consumer setting against
 * the class the step uses (the decode class, at 128 rows the short class; timed at
 * the same rows, o and down in their K slices where it keeps them), each product
 * alone (gate-up without its SwiGLU, slices without their add) over the 32 layers'
 * weights. */
struct tma_setting {
    int warpgroups, inflight, pdl;
    const char *name;
};
static const tma_setting tma_settings[] = {
    {1, 0, 0, "wg1"}, {1, 0, 1, "wg1 pdl"}, {1, 1, 1, "wg1 inflight pdl"}, {2, 0, 1, "wg2 pdl"},
    {2, 1, 1, "wg2 inflight pdl"},
};

static int tma_sweep(const shape *shapes, const bf16 *x, bf16 *y, bf16 *y64, void *ws, double copy_gbs)
{
    int failures = 0, wg0, inf0;
    gemm_tma_consumers(&wg0, &inf0);
    float *part;
    CU(cudaMalloc((void **)&part, (size_t)4 * 64 * 32768 * sizeof(float)));
    const int rows_list[5] = {8, 16, 32, 64, 128};  /* 128: a short prompt, against the short class */
    for (int r = 0; r < 5; r++) {
        const int rows = rows_list[r], cls = rows > 64 ? GEMM_CLASS_SHORT : GEMM_CLASS_DECODE;
        struct gemm_ctx g;
        OK(gemm_init(&g, ws, rows));
        if (cls == GEMM_CLASS_DECODE) OK(gemm_set_decode_rows(&g, rows));
        for (int i = 0; i < 5; i++) {
            shape s = shapes[i];
            s.n = (int)s.wrows(), s.swiglu = 0;  /* gate-up as one product */
            const int residual = i == 1 || i == 3;
            OK(residual ? gemm_prepare_residual(&g, s.n, s.k) : gemm_prepare(&g, s.n, s.k));
            std::vector<double> ref = reference(s, x, rows);
            const double bytes = (double)s.elems() * 2 * s.layers;
            const int lks = gemm_ksplit(&g, s.n, s.k, cls);
            double lt_ms = median_ms([&] {
                for (int l = 0; l < s.layers; l++) {
                    const bf16 *w = s.w + (size_t)l * s.elems();
                    if (lks) OK(gemm_lt_partials(&g, x, w, rows, s.n, s.k, cls, 0));
                    else OK(gemm_lt(&g, x, w, y, rows, s.n, s.k, 0, cls, 0));
                }
            }, 2, 10);
            printf("%-7s N=%5d K=%5d rows %3d %-26s: %8.3f ms = %5.1f%% of copy (K slices %d)\n", s.name, s.n, s.k,
                   rows, cls == GEMM_CLASS_DECODE ? "cuBLASLt decode class" : "cuBLASLt short class", lt_ms, 100 * bytes / (lt_ms * 1e6) / copy_gbs, lks);
            double best = 1e30;
            char best_name[64] = "";
            for (int bn = 64; bn <= 128; bn += 64)
                for (int ks = 1; ks <= 4; ks *= 2) {
                    if (ks > 1 && s.n > 8192) continue;
                    for (const tma_setting &set : tma_settings) {
                        const int pdl = set.pdl;
                        OK(gemm_tma_set_consumers(set.warpgroups, set.inflight));
                        auto launch = [&](const bf16 *w, bf16 *out, int mr, int p) {
                            OK(gemm_tma_cfg(x, w, out, part, mr, mr, s.n, s.k, 0, ks, bn, 0, 0, p));
                        };
                        double err = 0;
                        const char *bits = "-";
                        if (ks == 1) {
                            CU(cudaMemset(y, 0xff, (size_t)rows * s.n * 2));
                            launch(s.w, y, rows, 0);
                            CU(cudaDeviceSynchronize());
                            err = check(s, ref, y, rows);
                            launch(s.w, y64, 64, 0);
                            CU(cudaDeviceSynchronize());
                            const size_t cmp = (size_t)std::min(rows, 64) * s.n;
                            bits = host_copy(y, cmp) == host_copy(y64, cmp) ? "same" : "DIFFER";
                        }
                        double ms = median_ms([&] {
                            for (int l = 0; l < s.layers; l++) launch(s.w + (size_t)l * s.elems(), y, rows, pdl);
                        }, 2, 10);
                        char name[64];
                        snprintf(name, sizeof name, "tma bn %d ks %d %s", bn, ks, set.name);
                        bool bad = !(err <= 1e-2) || !strcmp(bits, "DIFFER");
                        failures += bad;
                        printf("%-7s N=%5d K=%5d rows %3d %-26s: %8.3f ms = %5.1f%% of copy | rel err %.2e | bits vs 64 "
                               "rows: %s%s\n",
                               s.name, s.n, s.k, rows, name, ms, 100 * bytes / (ms * 1e6) / copy_gbs, err, bits,
                               bad ? "  <-- FAIL" : "");
                        if (!bad && ms < best) best = ms, snprintf(best_name, sizeof best_name, "%s", name);
                    }
                }
            if (shapes[i].swiglu) {  /* the fused kernel also does the SwiGLU the product needs after it */
                const int inter = shapes[i].n;
                double lsw = median_ms([&] {
                    for (int l = 0; l < s.layers; l++) {
                        OK(gemm_lt(&g, x, s.w + (size_t)l * s.elems(), y64, rows, s.n, s.k, 0, cls, 0));
                        OK(k_swiglu(y64, y, rows, inter, 0, 1));
                    }
                }, 2, 10);
                for (const tma_setting &set : tma_settings) {
                    if (!set.pdl) continue;
                    OK(gemm_tma_set_consumers(set.warpgroups, set.inflight));
                    double ms = median_ms([&] {
                        for (int l = 0; l < s.layers; l++)
                            OK(gemm_tma_swiglu(x, s.w + (size_t)l * s.elems(), y, rows, inter, s.k, 0, 0, 1));
                    }, 2, 10);
                    char name[64];
                    snprintf(name, sizeof name, "tma swiglu %s", set.name);
                    printf("%-7s N=%5d K=%5d rows %3d %-26s: %8.3f ms = %5.1f%% of copy, cuBLASLt + k_swiglu %.3f ms: "
                           "%.2fx\n",
                           s.name, s.n, s.k, rows, name, ms, 100 * bytes / (ms * 1e6) / copy_gbs, lsw, lsw / ms);
                }
            }
            printf("best %-7s rows %3d: %s %.3f ms = %.1f%% of copy, cuBLASLt %.3f: %.2fx\n", s.name, rows, best_name,
                   best, 100 * bytes / (best * 1e6) / copy_gbs, lt_ms, lt_ms / best);
        }
        gemm_destroy(&g);
    }
    OK(gemm_tma_set_consumers(wg0, inf0));
    CU(cudaFree(part));
    return failures;
}

int main(int argc, char **argv)
{
    const char *cfg = argc > 1 ? argv[1] : "models/llama-2-7b.json";
    const char *mode = argc > 2 ? argv[2] : "";
    const char *modes[] = {"", "decode", "lt-decode", "lt-splitk", "lt-search", "lt-kbatch", "tma"};
    bool known = false;
    for (const char *md : modes) known = known || !strcmp(mode, md);
    if (argc > 3 || !known) {
        fprintf(stderr, "usage: bench_decode_gemm [config.json [decode | lt-decode | lt-splitk | lt-search | lt-kbatch | tma]]\n");
        return 2;
    }
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
    fill_kernel<<<4096, 256>>>(y64, (size_t)128 * m.vocab, 7, 1.0f);  /* the residual the bits checks add to */
    CU(cudaDeviceSynchronize());
    cublasLtHandle_t lt;  /* every cuBLASLt sweep's */
    LT(cublasLtCreate(&lt));
    void *ws;
    const size_t wsb = GEMM_WORKSPACE_BYTES;
    CU(cudaMalloc(&ws, wsb));
    if (!strcmp(mode, "tma")) {
        int failures = tma_sweep(sh, x, y, y64, ws, copy_gbs);
        printf("%d version(s) failed a check\n", failures);
        return failures ? 1 : 0;
    }
    if (!strcmp(mode, "lt-kbatch")) {  /* K split over a strided batch, fp32 partials */
        float *part;
        CU(cudaMalloc((void **)&part, (size_t)8 * 256 * m.vocab * sizeof(float)));
        const int rows_list[5] = {16, 32, 64, 128, 256};  /* 128, 256: short prompts' rows */
        for (int r = 0; r < 5; r++)
            for (int i = 0; i < 5; i++) lt_kbatch(lt, ws, wsb, sh[i], x, part, rows_list[r], copy_gbs);
        return 0;
    }
    if (!strcmp(mode, "lt-decode") || !strcmp(mode, "lt-splitk") || !strcmp(mode, "lt-search")) {  /* cuBLASLt only */
        const int decode_rows[4] = {16, 32, 64, 128};
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < 5; i++) {
                const int rows = decode_rows[r];
                if (!strcmp(mode, "lt-decode") && rows <= 64) lt_decode(lt, ws, wsb, sh[i], x, y, y64, rows, copy_gbs);
                if (!strcmp(mode, "lt-splitk")) lt_splitk(lt, ws, wsb, sh[i], x, y, y64, rows, copy_gbs);
                if (!strcmp(mode, "lt-search") && (rows == 16 || rows == 64 || (rows == 32 && sh[i].n == m.hidden)))
                    lt_search(lt, ws, wsb, sh[i], x, y, y64, rows, copy_gbs);
            }
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
    if (!strcmp(mode, "decode")) {  /* the decode versions only */
        printf("%d version(s) failed a check\n", failures);
        return failures ? 1 : 0;
    }
    /* prefill GEMMs: what cuBLASLt's candidates give at 128 rows (1x128) and 4096 (8x512) */
    const int lt_rows[2] = {128, 4096};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 5; i++) lt_candidates(lt, ws, wsb, sh[i], x, y, lt_rows[r], copy_gbs);
    printf("%d version(s) failed a check\n", failures);
    return failures ? 1 : 0;
}
