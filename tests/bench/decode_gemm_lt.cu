/* bench_decode_gemm's cuBLASLt sweeps (bench_decode_gemm.h): the heuristic's
 * candidates at decode and prefill rows, cuBLASLt's own split-K, every
 * configuration it accepts, and K in slices over a strided batch. */
#include "bench_decode_gemm.h"

/* Y = X W^T as gemm_lt.cu sets it up: W^T of the column-major K x N weights. */
static cublasLtMatmulDesc_t lt_desc()
{
    cublasLtMatmulDesc_t desc;
    LT(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    return desc;
}

/* The heuristic's preferences as gemm_lt.cu asks: the workspace, no split-K reduction. */
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

/* cuBLASLt candidates for one shape at m rows (split-K excluded, as gemm_lt.cu does):
 * the heuristic's first and the fastest, timed over the layers' weights. */
void lt_candidates(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, int m,
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

/* A row's bits with algorithm al: the same twice, and alike in calls of m, 1 and 16
 * rows, beta 0 and 1 (y2 holds the residual beta 1 adds to). */
static const char *lt_bits(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, void *ws, size_t wsb, const shape &sh,
                           const bf16 *x, bf16 *y, const bf16 *y2, int m, const cublasLtMatmulAlgo_t &al)
{
    const int n = (int)sh.wrows(), rows[3] = {m, 1, 16};
    cublasLtMatrixLayout_t a, b[3], c[3];
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    for (int i = 0; i < 3; i++) {
        LT(cublasLtMatrixLayoutCreate(&b[i], CUDA_R_16BF, sh.k, rows[i], sh.k));
        LT(cublasLtMatrixLayoutCreate(&c[i], CUDA_R_16BF, n, rows[i], n));
    }
    const char *verdict = "equal";
    float alpha = 1;
    for (int bi = 0; bi < 2 && !strcmp(verdict, "equal"); bi++) {
        const float bt = (float)bi;
        std::vector<std::vector<uint16_t>> out(3);
        for (int r = 0; r < 3 && !strcmp(verdict, "equal"); r++) {
            cublasLtMatmulHeuristicResult_t chk;
            if (cublasLtMatmulAlgoCheck(lt, desc, a, b[r], c[r], c[r], &al, &chk) != CUBLAS_STATUS_SUCCESS ||
                chk.workspaceSize > wsb) {
                verdict = "algorithm not valid at every row count";
                break;
            }
            for (int rep = 0; rep < 2; rep++) {
                CU(cudaMemcpy(y, y2, (size_t)rows[r] * n * 2, cudaMemcpyDeviceToDevice));
                LT(cublasLtMatmul(lt, desc, &alpha, sh.w, a, x, b[r], &bt, y, c[r], y, c[r], &al, ws, wsb, 0));
                CU(cudaDeviceSynchronize());
                std::vector<uint16_t> h = host_copy(y, (size_t)rows[r] * n);
                if (rep && h != out[r]) verdict = "NOT DETERMINISTIC";
                out[r] = h;
            }
        }
        for (int r = 1; r < 3 && !strcmp(verdict, "equal"); r++)
            if (memcmp(out[r].data(), out[0].data(), (size_t)std::min(rows[r], m) * n * 2))
                verdict = bi ? "DIFFER (beta 1)" : "DIFFER";
    }
    cublasLtMatrixLayoutDestroy(a);
    for (int i = 0; i < 3; i++) cublasLtMatrixLayoutDestroy(b[i]), cublasLtMatrixLayoutDestroy(c[i]);
    return verdict;
}

/* cuBLASLt at decode row counts: every split-K-free candidate the heuristic gives
 * for m rows, timed over the layers (tile and stages ids printed), then whether the
 * fastest gives a row the same bits in calls of 1, 16 and 64 rows. */
void lt_decode(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y,
                      const bf16 *y2, int m, double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    int n = (int)sh.wrows();
    cublasLtMatrixLayout_t a, b[1], c[1];
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    LT(cublasLtMatrixLayoutCreate(&b[0], CUDA_R_16BF, sh.k, m, sh.k));
    LT(cublasLtMatrixLayoutCreate(&c[0], CUDA_R_16BF, n, m, n));
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
    if (best_i >= 0)
        printf("lt-decode best %-7s %3d rows: cand %d %.3f ms = %.1f%% of copy; a row's bits at %d, 1 and 16 rows: %s\n",
               sh.name, m, best_i, best, 100 * bytes / (best * 1e6) / copy_gbs, m,
               lt_bits(lt, desc, ws, wsb, sh, x, y, y2, m, res[best_i].algo));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b[0]), cublasLtMatrixLayoutDestroy(c[0]);
    cublasLtMatmulDescDestroy(desc);
}

/* The heuristic's split-K-free candidates for the shape (weights layout a) at m, 64
 * and 128 rows, without repeats: what the decode class times (gemm_lt.cu). */
static std::vector<cublasLtMatmulAlgo_t> lt_offered(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc,
                                                    cublasLtMatrixLayout_t a, cublasLtMatmulPreference_t pref,
                                                    const shape &sh, int m)
{
    const int n = (int)sh.wrows(), hrows[3] = {m, 64, 128};
    std::vector<cublasLtMatmulAlgo_t> out;
    for (int h = 0; h < 3; h++) {
        cublasLtMatrixLayout_t hb, hc;
        LT(cublasLtMatrixLayoutCreate(&hb, CUDA_R_16BF, sh.k, hrows[h], sh.k));
        LT(cublasLtMatrixLayoutCreate(&hc, CUDA_R_16BF, n, hrows[h], n));
        cublasLtMatmulHeuristicResult_t res[16];
        int found = 0;
        LT(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, hb, hc, hc, pref, 16, res, &found));
        for (int i = 0; i < found; i++) {
            int32_t splitk = 1;
            size_t wr = 0;
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &wr);
            if (splitk > 1 || res[i].state != CUBLAS_STATUS_SUCCESS) continue;
            bool dup = false;
            for (const cublasLtMatmulAlgo_t &o : out) dup = dup || !memcmp(&o, &res[i].algo, sizeof o);
            if (!dup) out.push_back(res[i].algo);
        }
        cublasLtMatrixLayoutDestroy(hb), cublasLtMatrixLayoutDestroy(hc);
    }
    return out;
}

/* cuBLASLt's candidates at decode and short-prompt row counts with their K split
 * over blocks: the split-K-free candidates the heuristic gives for m, 64 and 128
 * rows (what the decode class times), each also at 2, 3, 4, 6 and 8 splits under
 * the two reduction schemes that add the splits in a separate, fixed-order step
 * (COMPUTE_TYPE: fp32 partials in the workspace; OUTPUT_TYPE: bf16 ones) and
 * INPLACE (the output itself, in order through counters), timed with the beta the
 * forward uses (o and down add into the residual). The fastest split one's bits
 * are then checked (lt_bits). Tile 13 (64 x 32), which o and down keep at 16-64 rows, gives N =
 * 4096 only 64 blocks on 132 SMs: the question is whether splitting K fills them. */
void lt_splitk(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y, bf16 *y2,
                      int m, double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    const int n = (int)sh.wrows();
    const int accumulate = !strcmp(sh.name, "o") || !strcmp(sh.name, "down");
    cublasLtMatrixLayout_t a, b[1], c[1];
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    LT(cublasLtMatrixLayoutCreate(&b[0], CUDA_R_16BF, sh.k, m, sh.k));
    LT(cublasLtMatrixLayoutCreate(&c[0], CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t pref = lt_pref(wsb);
    const std::vector<cublasLtMatmulAlgo_t> base = lt_offered(lt, desc, a, pref, sh, m);
    const int splits[6] = {1, 2, 3, 4, 6, 8};
    const uint32_t schemes[3] = {CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE, CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE,
                                 CUBLASLT_REDUCTION_SCHEME_INPLACE};
    const char *scheme_name[3] = {"compute", "output", "inplace"};
    float alpha = 1, beta = accumulate ? 1.0f : 0.0f;
    const double bytes = (double)sh.elems() * 2 * sh.layers;
    double best_plain = 1e30, best_split = 1e30;
    cublasLtMatmulAlgo_t split_algo;
    int n_timed = 0, n_invalid = 0;
    for (const cublasLtMatmulAlgo_t &b0 : base) {
        int32_t tile = -1, stages = -1;
        size_t wr = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&b0, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&b0, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &wr);
        for (int si = 0; si < 6; si++)
            for (int ri = 0; ri < (splits[si] > 1 ? 3 : 1); ri++) {
                cublasLtMatmulAlgo_t al = b0;
                int32_t sk = splits[si];
                uint32_t red = splits[si] > 1 ? schemes[ri] : CUBLASLT_REDUCTION_SCHEME_NONE;
                cublasLtMatmulHeuristicResult_t chk;
                if (cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk, sizeof sk) ||
                    cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red) ||
                    cublasLtMatmulAlgoCheck(lt, desc, a, b[0], c[0], c[0], &al, &chk) != CUBLAS_STATUS_SUCCESS ||
                    chk.workspaceSize > wsb) {
                    n_invalid++;
                    continue;
                }
                double ms = median_ms([&] {
                    for (int l = 0; l < sh.layers; l++)
                        LT(cublasLtMatmul(lt, desc, &alpha, sh.w + (size_t)l * sh.elems(), a, x, b[0], &beta, y, c[0],
                                          y, c[0], &al, ws, wsb, 0));
                }, 1, 5);
                n_timed++;
                printf("lt-splitk %-7s %3d rows tile %3d stages %3d split %d %-7s: %.3f ms = %.1f%% of copy\n", sh.name,
                       m, tile, stages, sk, splits[si] > 1 ? scheme_name[ri] : "none", ms,
                       100 * bytes / (ms * 1e6) / copy_gbs);
                if (sk == 1 && ms < best_plain) best_plain = ms;
                if (sk > 1 && ms < best_split) best_split = ms, split_algo = al;
            }
    }
    printf("lt-splitk best %-7s %3d rows: without split %.3f ms = %.1f%% of copy, with split %.3f ms = %.1f%% "
           "(%d timed, %d not valid)\n", sh.name, m, best_plain, 100 * bytes / (best_plain * 1e6) / copy_gbs,
           best_split, 100 * bytes / (best_split * 1e6) / copy_gbs, n_timed, n_invalid);
    if (best_split < 1e30) {
        int32_t tile = -1, sk = 0;
        uint32_t red = 0;
        size_t wr = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&split_algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&split_algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk, sizeof sk, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&split_algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red, &wr);
        printf("lt-splitk check %-7s %3d rows: tile %d split %d scheme %u: bits twice and at %d, 1, 16 rows: %s\n",
               sh.name, m, tile, sk, red, m, lt_bits(lt, desc, ws, wsb, sh, x, y, y2, m, split_algo));
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b[0]), cublasLtMatrixLayoutDestroy(c[0]);
    cublasLtMatmulDescDestroy(desc);
}

/* Every configuration cuBLASLt accepts for a shape at m rows, not only those its
 * heuristic offers: each algorithm id the heuristic returns (for m, 64 and 128
 * rows, split-K free) at each tile and stages id the id supports, cluster shapes
 * auto, 1x1x1, 2x1x1 and 1x2x1, CTA swizzling off and on, K unsplit. Screened
 * over 8 layers' weights (more than L2 holds), the ten fastest timed again over
 * all the layers, with the forward's beta (o and down add into the residual); the
 * fastest's bits checked. The question: is there a tile that gives N = 4096 more
 * than the 64 blocks tile 64x32 gives, at the copy rate? */
void lt_search(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, bf16 *y,
                      const bf16 *y2, int m, double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    const int n = (int)sh.wrows();
    const int accumulate = !strcmp(sh.name, "o") || !strcmp(sh.name, "down");
    cublasLtMatrixLayout_t a, b, c;
    LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, sh.k, n, sh.k));
    LT(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, sh.k, m, sh.k));
    LT(cublasLtMatrixLayoutCreate(&c, CUDA_R_16BF, n, m, n));
    cublasLtMatmulPreference_t pref = lt_pref(wsb);
    const std::vector<cublasLtMatmulAlgo_t> offered = lt_offered(lt, desc, a, pref, sh, m);
    std::vector<int32_t> ids;
    for (const cublasLtMatmulAlgo_t &o : offered) {
        int32_t id = -1;
        size_t wr = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&o, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &wr);
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    struct cfg {
        cublasLtMatmulAlgo_t al;
        int32_t id;
        uint32_t tile, stages, swizzle;
        uint16_t cluster;
        double ms;
        bool offered;
    };
    std::vector<cfg> all;
    float alpha = 1, beta = accumulate ? 1.0f : 0.0f;
    const int screen_layers = std::min(sh.layers, 8);
    auto time_layers = [&](const cublasLtMatmulAlgo_t &al, int layers, int iters) {
        return median_ms([&] {
            for (int l = 0; l < layers; l++)
                LT(cublasLtMatmul(lt, desc, &alpha, sh.w + (size_t)l * sh.elems(), a, x, b, &beta, y, c, y, c, &al, ws,
                                  wsb, 0));
        }, 1, iters) * sh.layers / layers;
    };
    int checked = 0;
    for (int32_t id : ids) {
        cublasLtMatmulAlgo_t base;
        if (cublasLtMatmulAlgoInit(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF,
                                   CUDA_R_16BF, id, &base) != CUBLAS_STATUS_SUCCESS)
            continue;
        size_t sz = 0;
        std::vector<uint32_t> tiles, stages;
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, NULL, 0, &sz);
        tiles.resize(sz / sizeof(uint32_t));
        if (sz) cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, tiles.data(), sz, &sz);
        sz = 0;
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, NULL, 0, &sz);
        stages.resize(sz / sizeof(uint32_t));
        if (sz) cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, stages.data(), sz, &sz);
        if (tiles.empty()) tiles.push_back(0);
        if (stages.empty()) stages.push_back(0);
        int32_t swz_ok = 0;
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT, &swz_ok, sizeof swz_ok, &sz);
        printf("lt-search %-7s %3d rows: algorithm id %d, %zu tiles, %zu stages ids, swizzling %d\n", sh.name, m, id,
               tiles.size(), stages.size(), swz_ok);
        const uint16_t clusters[4] = {CUBLASLT_CLUSTER_SHAPE_AUTO, CUBLASLT_CLUSTER_SHAPE_1x1x1,
                                      CUBLASLT_CLUSTER_SHAPE_2x1x1, CUBLASLT_CLUSTER_SHAPE_1x2x1};
        for (uint32_t tile : tiles)
            for (uint32_t st : stages)
                for (uint16_t cl : clusters)
                    for (uint32_t swz = 0; swz <= (uint32_t)(swz_ok ? 1 : 0); swz++) {
                        cublasLtMatmulAlgo_t al = base;
                        int32_t sk = 1;
                        uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE, custom = 0;
                        cublasLtMatmulHeuristicResult_t chk;
                        checked++;
                        if (cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_STAGES_ID, &st, sizeof st) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk, sizeof sk) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swz, sizeof swz) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &custom, sizeof custom) ||
                            cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cl, sizeof cl) ||
                            cublasLtMatmulAlgoCheck(lt, desc, a, b, c, c, &al, &chk) != CUBLAS_STATUS_SUCCESS ||
                            chk.workspaceSize > wsb)
                            continue;
                        bool dup = false;
                        for (const cfg &o : all) dup = dup || !memcmp(&o.al, &al, sizeof al);
                        if (dup) continue;
                        bool off = false;
                        for (const cublasLtMatmulAlgo_t &o : offered) off = off || !memcmp(&o, &al, sizeof al);
                        all.push_back({al, id, tile, st, swz, cl, time_layers(al, screen_layers, 3), off});
                    }
    }
    /* the heuristic's own configurations too (they may set options the loops leave at 0) */
    for (const cublasLtMatmulAlgo_t &o : offered) {
        bool dup = false;
        for (const cfg &q : all) dup = dup || !memcmp(&q.al, &o, sizeof o);
        if (dup) continue;
        cfg q = {o, -1, 0, 0, 0, 0, time_layers(o, screen_layers, 3), true};
        size_t wr;
        cublasLtMatmulAlgoConfigGetAttribute(&o, CUBLASLT_ALGO_CONFIG_ID, &q.id, sizeof q.id, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&o, CUBLASLT_ALGO_CONFIG_TILE_ID, &q.tile, sizeof q.tile, &wr);
        cublasLtMatmulAlgoConfigGetAttribute(&o, CUBLASLT_ALGO_CONFIG_STAGES_ID, &q.stages, sizeof q.stages, &wr);
        all.push_back(q);
    }
    std::sort(all.begin(), all.end(), [](const cfg &p, const cfg &q) { return p.ms < q.ms; });
    const double bytes = (double)sh.elems() * 2 * sh.layers;
    double best_offered = 1e30;
    for (size_t i = 0; i < all.size(); i++) {
        if (i < 10) all[i].ms = time_layers(all[i].al, sh.layers, 7);
        if (all[i].offered && i < 10) best_offered = std::min(best_offered, all[i].ms);
    }
    std::sort(all.begin(), all.begin() + std::min<size_t>(10, all.size()),
              [](const cfg &p, const cfg &q) { return p.ms < q.ms; });
    for (size_t i = 0; i < all.size() && i < 10; i++)
        printf("lt-search %-7s %3d rows #%zu: id %d tile %u stages %u cluster %u swizzle %u%s: %.3f ms = %.1f%% of copy\n",
               sh.name, m, i, all[i].id, all[i].tile, all[i].stages, all[i].cluster, all[i].swizzle,
               all[i].offered ? " (offered)" : "", all[i].ms, 100 * bytes / (all[i].ms * 1e6) / copy_gbs);
    if (best_offered >= 1e30)
        for (const cfg &q : all)
            if (q.offered) {
                best_offered = time_layers(q.al, sh.layers, 7);
                break;
            }
    if (!all.empty())
        printf("lt-search best %-7s %3d rows: %.3f ms = %.1f%% of copy (offered by the heuristic: %.3f ms = %.1f%%); "
               "%d configurations checked, %zu valid; bits: %s\n", sh.name, m, all[0].ms,
               100 * bytes / (all[0].ms * 1e6) / copy_gbs, best_offered, 100 * bytes / (best_offered * 1e6) / copy_gbs,
               checked, all.size(), lt_bits(lt, desc, ws, wsb, sh, x, y, y2, m, all[0].al));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a), cublasLtMatrixLayoutDestroy(b), cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(desc);
}

/* K split over a strided batch instead of a reduction inside cuBLASLt: batch i
 * multiplies X's and W's K slice i (a sub-matrix: same leading dimension, batch
 * stride K / ks) into its own fp32 partial [m, n], so a tile that gives N = 4096
 * only 64 blocks gives 64 ks. The partials would then be added (in split order, with
 * the residual) by the kernel that follows, the norm. Times the heuristic's
 * candidates for each ks at m rows, the weights' own bytes over 32 layers. */
void lt_kbatch(cublasLtHandle_t lt, void *ws, size_t wsb, const shape &sh, const bf16 *x, float *part, int m,
                      double copy_gbs)
{
    cublasLtMatmulDesc_t desc = lt_desc();
    cublasLtMatmulPreference_t pref = lt_pref(wsb);
    const int n = (int)sh.wrows();
    const double bytes = (double)sh.elems() * 2 * sh.layers;
    const int kss[6] = {1, 2, 3, 4, 6, 8};
    for (int ks : kss) {
        if (sh.k % ks || (sh.k / ks) % 8) continue;
        const int kk = sh.k / ks;
        const int32_t batch = ks;
        const int64_t sa = kk, sb = kk, sc = (int64_t)n * m;
        cublasLtMatrixLayout_t a, b, c;
        LT(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, kk, n, sh.k));
        LT(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, kk, m, sh.k));
        LT(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, n, m, n));
        for (cublasLtMatrixLayout_t l : {a, b, c})
            LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
        LT(cublasLtMatrixLayoutSetAttribute(a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa));
        LT(cublasLtMatrixLayoutSetAttribute(b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb));
        LT(cublasLtMatrixLayoutSetAttribute(c, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc));
        cublasLtMatmulHeuristicResult_t res[16];
        int found = 0;
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, 16, res, &found);
        double best = 1e30;
        int32_t best_tile = -1;
        float alpha = 1, beta = 0;
        for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found; i++) {
            int32_t splitk = 1, tile = -1;
            size_t wr = 0;
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &wr);
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
            if (splitk > 1 || res[i].state != CUBLAS_STATUS_SUCCESS) continue;
            double ms = median_ms([&] {
                for (int l = 0; l < sh.layers; l++)
                    LT(cublasLtMatmul(lt, desc, &alpha, sh.w + (size_t)l * sh.elems(), a, x, b, &beta, part, c, part, c,
                                      &res[i].algo, ws, wsb, 0));
            }, 1, 5);
            if (ms < best) best = ms, best_tile = tile;
        }
        if (best < 1e30)
            printf("lt-kbatch %-7s %3d rows, K in %d slices of %d (fp32 partials): tile %d %.3f ms = %.1f%% of copy "
                   "(%d candidates)\n", sh.name, m, ks, kk, best_tile, best, 100 * bytes / (best * 1e6) / copy_gbs,
                   found);
        else
            printf("lt-kbatch %-7s %3d rows, K in %d slices: no algorithm (status %d)\n", sh.name, m, ks, (int)st);
        cublasLtMatrixLayoutDestroy(a), cublasLtMatrixLayoutDestroy(b), cublasLtMatrixLayoutDestroy(c);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(desc);
}
