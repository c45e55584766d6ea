/* Kernel-core benchmark on one GPU, random weights, bf16 (docs/PERF.md):
 * copy bandwidth and GEMM rate (the ceilings), prefill latency of a whole forward
 * (logits of every position) against the same GEMMs timed alone, and greedy
 * decode tokens/s with the step captured in a CUDA graph.
 * usage: bench_kernels [config.json [MODE]]   (default models/llama-2-7b.json;
 * MODE gemv-profile, stream-profile, attn-profile, prefill-profile: only a few
 * launches, for ncu; lt-steps, gemv-steps: only the batched or the one-sequence
 * decode steps; early: the batched steps and two prefill graphs with our kernels
 * after cuBLASLt's on launch-completion edges and not; tma: the batched steps and
 * prefill 1x128 with gemm_tma off, timed against cuBLASLt, and forced) */
#include "bench_kernels.h"

static void fill_tokens(struct llama_part *p, int n, int vocab)
{
    std::vector<int> t(n);
    for (int i = 0; i < n; i++) t[i] = (int)((i * 7919u + 13u) % (unsigned)vocab);
    CU(cudaMemcpy(llama_part_tokens(p), t.data(), n * sizeof(int), cudaMemcpyHostToDevice));
}

static const char *path_name(int path)
{
    return path == DECODE_GEMV     ? "GEMV"
           : path == DECODE_SKINNY ? "skinny tensor-core"
           : path == DECODE_STREAM ? "stream tensor-core"
           : path == DECODE_LT     ? "cuBLASLt decode class"
                                   : "tensor-core (stream N>=8192, skinny N=4096)";
}

/* One decode configuration of a part: its linears' path and knobs. */
struct decode_setup {
    int batch, path, fold, prefetch, attn_keys;  /* fold: norms launched (0), folded into the GEMV after them
                                                  * (1), or run by the GEMV before them (2: tail_norm) */
    int skinny;      /* gemm_skinny's weight stream: an index into skinny_streams */
    int attn_warps;  /* the decode attention's warps a block (0: the key-a-lane kernel; attention.h) */
    int wave;        /* the GEMV's spread of work: an index into wave_cfgs (0: the default) */
    int stream_warps; /* gemm_stream's warps a block (0: its default, by rows) */
    int no_kslices;   /* DECODE_LT: o and down never in K slices (gemm_set_kslices(0)) */
    int attn_stages, attn_per_block;  /* the attention's copy stages and splits a block (attention.h) */
};

/* The GEMV settings compared ({columns a warp, K split at N <= 8192, wider and at
 * K > 8192, vectors a lane}; gemm.h): the default first, then the unsplit GEMV of
 * the tree before, then the two runners-up (docs/PERF.md) */
static const struct gemv_wave_cfg wave_cfgs[] = {{1, 2, 4, 4, 2}, {1, 1, 1, 1, 8}, {1, 4, 4, 4, 4}, {1, 4, 4, 4, 2}};
static const int n_wave = sizeof wave_cfgs / sizeof wave_cfgs[0];
static const char *wave_name(int i)
{
    static char buf[16][80];
    const struct gemv_wave_cfg c = wave_cfgs[i];
    if (c.cols > 1) snprintf(buf[i], sizeof buf[i], "GEMV %d columns a warp", c.cols);
    else snprintf(buf[i], sizeof buf[i], "GEMV K over %d warps (N<=8192), %d (wider), %d (K>8192), u%d", c.ks_narrow,
                  c.ks_wide, c.ks_long, c.u);
    return buf[i];
}

/* The GEMVs of a batch-1 step alone, in step order (qkv, o onto the residual,
 * gate-up with SwiGLU, down onto the residual, 32 layers, then lm_head), captured
 * with programmatic launch and replayed: how the linears stream back to back,
 * without the norms and attention between them. */
static void gemv_chain_figure(struct llama_part *p, int setting, double copy_gbs, cudaStream_t s)
{
    const struct model_spec *m = &p->m;
    const struct part_dims *x = &p->dims;
    gemv_wave_set(wave_cfgs[setting]);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int l = 0; l < m->layers; l++) {
        const bf16 *b = p->layers + (size_t)l * p->ll.elems;
        TRY(gemm_rows(p->normed, b + p->ll.wqkv, p->qkv, 1, x->qkv_n, x->hidden, 0, s, 1));
        TRY(gemm_rows(p->attn, b + p->ll.wo, p->hidden, 1, x->hidden, x->q_dim, 1, s, 1));
        TRY(gemm_rows_swiglu(p->normed, b + p->ll.wgu, p->act, 1, x->inter_l, x->hidden, s, 1));
        TRY(gemm_rows(p->act, b + p->ll.wdown, p->hidden, 1, x->hidden, x->inter_l, 1, s, 1));
    }
    TRY(gemm_rows(p->normed, p->head + p->hl.lm_head, p->logits, 1, x->vocab_l, x->hidden, 0, s, 1));
    CU(cudaStreamEndCapture(s, &graph));
    CU(cudaGraphInstantiate(&exec, graph, 0));
    double ms = time_ms([&] { CU(cudaGraphLaunch(exec, s)); }, 3, 20, s);
    CU(cudaGraphExecDestroy(exec));
    CU(cudaGraphDestroy(graph));
    gemv_wave_set(wave_cfgs[0]);
    double bytes = (double)m->layers * (p->ll.elems - 2.0 * x->hidden) * 2 + (double)x->vocab_l * x->hidden * 2;
    printf("gemv chain, batch 1, %s: %.3f ms for %.2f GB = %.1f%% of copy\n", wave_name(setting), ms, bytes / 1e9,
           100.0 * bytes / (ms * 1e6) / copy_gbs);
}

/* gemm_skinny's weight streams compared: registers (the default), then the
 * cp.async ring that was fastest alone for gate-up at 16 rows (stages, chunks a
 * group, column tiles a block; gemm.h) */
static const struct skinny_stream_cfg skinny_streams[] = {{DECODE_STREAM_REGISTERS, 4, 2, 0},
                                                          {DECODE_STREAM_ASYNC, 4, 1, 2}};
static const char *skinny_stream_name(int i)
{
    static char buf[8][48];
    const struct skinny_stream_cfg c = skinny_streams[i];
    if (c.mode == DECODE_STREAM_REGISTERS) return "registers";
    snprintf(buf[i], sizeof buf[i], "async s%d v%d mt%s", c.stages, c.vecs, c.mt == 1 ? "1" : c.mt == 2 ? "2" : " by rows");
    return buf[i];
}

/* Greedy decode of `batch` sequences after a `prompt`-token prefill: `steps` steps
 * replayed from one captured graph, timed together. The floor reads every weight
 * and, per sequence, the keys and values of the mean context once a step, at the
 * copy rate. */
static void decode_figure(struct llama_part *p, struct decode_setup ds, int prompt, int steps, double copy_gbs,
                          cudaStream_t s)
{
    const struct model_spec *m = &p->m;
    const int batch = ds.batch, path = ds.path, fold = ds.fold, prefetch = ds.prefetch;
    p->d.programmatic_launch = 1;
    p->decode_path = path;
    p->fold_norm = fold == 1;
    p->tail_norm = fold == 2;
    p->decode_prefetch = prefetch;
    p->decode_attn_keys = ds.attn_keys;
    p->decode_attn_warps = ds.attn_warps;
    p->decode_attn_stages = ds.attn_stages;
    p->decode_attn_per_block = ds.attn_per_block;
    gemm_skinny_set_stream(skinny_streams[ds.skinny]);
    gemv_wave_set(wave_cfgs[ds.wave]);
    if (path == DECODE_LT) {  /* the decode class timed at this batch, as a part of max_batch = batch has it */
        gemm_set_kslices(!ds.no_kslices);
        TRY(part_gemm_setup(p, p->d.max_rows, batch));
        gemm_set_kslices(1);
        for (int i = 0; i < p->gemm.n_shapes; i++) {
            const struct gemm_shape *g = &p->gemm.shapes[i];
            if (g->cls != GEMM_CLASS_DECODE) continue;
            int32_t tile = -1, stages = -1;
            size_t wr;
            cublasLtMatmulAlgoConfigGetAttribute(&g->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &wr);
            cublasLtMatmulAlgoConfigGetAttribute(&g->algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &wr);
            if (g->tma) printf("    decode class at %d rows, N=%5d K=%5d: gemm_tma, units of %d rows, %d K slices\n", batch,
                               g->n, g->k, g->tma_bn, g->ksplit ? g->ksplit : 1);
            else if (g->skinny) printf("    decode class at %d rows, N=%5d K=%5d: gemm_skinny\n", batch, g->n, g->k);
            else if (g->ksplit) printf("    decode class at %d rows, N=%5d K=%5d: K in %d slices\n", batch, g->n, g->k,
                                       g->ksplit);
            else printf("    decode class at %d rows, N=%5d K=%5d: cuBLASLt tile %d stages %d\n", batch, g->n, g->k,
                        tile, stages);
        }
    }
    const int stream_default = gemm_stream_warps();
    if (ds.stream_warps) gemm_stream_set_warps(ds.stream_warps);
    fill_tokens(p, batch * prompt, m->vocab);
    struct llama_call pre = {0, batch, prompt, 0, NULL, 1};
    TRY(llama_embed(p, &pre, s));
    TRY(llama_layers(p, 0, m->layers, &pre, s));
    TRY(llama_head(p, &pre, s));
    TRY(llama_argmax(p, &pre, llama_part_tokens(p), s));
    int *dpos;
    CU(cudaMalloc((void **)&dpos, sizeof(int)));
    CU(cudaMemcpy(dpos, &prompt, sizeof(int), cudaMemcpyHostToDevice));
    struct llama_call dc = {0, batch, 1, 0, dpos, 0};
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    TRY(llama_embed(p, &dc, s));
    TRY(llama_layers(p, 0, m->layers, &dc, s));
    TRY(llama_head(p, &dc, s));
    TRY(llama_argmax(p, &dc, llama_part_tokens(p), s));
    TRY(llama_advance_pos(dpos, 1, s));
    CU(cudaStreamEndCapture(s, &graph));
    CU(cudaGraphInstantiate(&exec, graph, 0));
    CU(cudaGraphLaunch(exec, s));  /* warm-up step */
    CU(cudaStreamSynchronize(s));
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    CU(cudaEventRecord(a, s));
    for (int i = 1; i < steps; i++) CU(cudaGraphLaunch(exec, s));
    CU(cudaEventRecord(b, s));
    CU(cudaEventSynchronize(b));
    float ms;
    CU(cudaEventElapsedTime(&ms, a, b));
    double step_ms = ms / (steps - 1), tps = batch * 1000.0 / step_ms;
    const struct part_dims *x = &p->dims;
    double weight_bytes = (double)m->layers * p->ll.elems * 2 + (double)p->hl.elems * 2;
    double mean_ctx = prompt + 1 + steps / 2.0;
    double kv_bytes = (double)batch * m->layers * 2 * mean_ctx * x->hkv * x->hd * 2;
    double floor_ms = (weight_bytes + kv_bytes) / (copy_gbs * 1e6);
    printf("decode batch %2d %s%s%s%s%s%s%s%s%s, attention %s (context %d..%d): %.3f ms/step, %.0f tokens/s | floor "
           "%.3f ms/step (%.2f GB of weights + %.2f GB of KV cache at the copy rate) = %.0f tokens/s | ratio %.2f\n",
           batch, path_name(path), path == DECODE_LT && ds.no_kslices ? " (no K slices)" : "",
           ds.stream_warps == 4 ? " (4 warps a block)" : ds.stream_warps == 8 ? " (8 warps a block)" : "",
           ds.wave ? ", " : "", ds.wave ? wave_name(ds.wave) : "",
           fold == 1 ? " (norms folded)" : fold == 2 ? " (norms in the GEMV's last block)" : "",
           prefetch ? " (L2 prefetch)" : "", path == DECODE_SKINNY || path == DECODE_TENSOR ? ", skinny " : "",
           path == DECODE_SKINNY || path == DECODE_TENSOR ? skinny_stream_name(ds.skinny) : "",
           attn_setting_name(ds.attn_keys, ds.attn_warps, ds.attn_stages, ds.attn_per_block), prompt + 2,
           prompt + steps, step_ms, tps, floor_ms, weight_bytes / 1e9, kv_bytes / 1e9, batch * 1000.0 / floor_ms,
           step_ms / floor_ms);
    /* the decode attention alone, every layer, at the last step's context */
    if (!fold && !prefetch && !ds.wave)
        attn_figure(p, batch, prompt + steps - 1, ds.attn_keys, ds.attn_warps, copy_gbs, s, ds.attn_stages,
                    ds.attn_per_block);
    gemm_skinny_set_stream(skinny_streams[0]);
    gemv_wave_set(wave_cfgs[0]);
    gemm_stream_set_warps(stream_default);
    CU(cudaEventDestroy(a));
    CU(cudaEventDestroy(b));
    CU(cudaGraphExecDestroy(exec));
    CU(cudaGraphDestroy(graph));
    CU(cudaFree(dpos));
}

/* For a profiler (ncu -k regex:gemv): five launches each of the down GEMV at
 * each GEMV setting, one layer's weights each, plain stream launches. */
static void gemv_profile_launches(struct llama_part *p, cudaStream_t s)
{
    const struct part_dims *x = &p->dims;
    for (int v = 0; v < n_wave; v++) {
        gemv_wave_set(wave_cfgs[v]);
        for (int l = 0; l < 5; l++) {
            const bf16 *b = p->layers + (size_t)l * p->ll.elems;
            TRY(gemm_rows(p->act, b + p->ll.wdown, p->hidden, 1, x->hidden, x->inter_l, 1, s));
        }
    }
    gemv_wave_set(wave_cfgs[0]);
    CU(cudaStreamSynchronize(s));
}

/* For a profiler (ncu -k regex:stream_kernel): the batched steps' linears on the
 * stream kernel, qkv, o, gate-up with SwiGLU and down at 16 rows, then at 64, two
 * layers' weights each, plain stream launches. */
static void stream_profile_launches(struct llama_part *p, cudaStream_t s)
{
    const struct part_dims *x = &p->dims;
    for (int rows = 16; rows <= 64; rows *= 4)
        for (int l = 0; l < 2; l++) {
            const bf16 *b = p->layers + (size_t)l * p->ll.elems;
            TRY(gemm_stream(p->normed, b + p->ll.wqkv, p->qkv, rows, x->qkv_n, x->hidden, 0, s));
            TRY(gemm_stream(p->attn, b + p->ll.wo, p->hidden, rows, x->hidden, x->q_dim, 1, s));
            TRY(gemm_stream_swiglu(p->normed, b + p->ll.wgu, p->act, rows, x->inter_l, x->hidden, s));
            TRY(gemm_stream(p->act, b + p->ll.wdown, p->hidden, rows, x->hidden, x->inter_l, 1, s));
        }
    CU(cudaStreamSynchronize(s));
}

/* For a profiler (ncu -k regex:flash_prefill --launch-skip 32 --launch-count 1):
 * an 8x512 forward fills q and the cache, then one layer's prefill attention. */
static void prefill_attn_profile_launches(struct llama_part *p, const struct model_spec *m, cudaStream_t s)
{
    const int batch = 8, seq = 512;
    TRY(part_gemm_setup(p, batch * seq, p->d.max_batch));
    fill_tokens(p, batch * seq, m->vocab);
    struct llama_call call = {0, batch, seq, 0, NULL, 0};
    TRY(llama_embed(p, &call, s));
    TRY(llama_layers(p, 0, m->layers, &call, s));
    const struct part_dims *x = &p->dims;
    struct attn_args aa = {p->q, p->k_cache, p->v_cache, p->attn, batch, seq, 0, 0, NULL,
                           x->hq, x->hkv, x->hd, p->d.max_context, p->partials};
    TRY(attn_prefill(&aa, s));
    CU(cudaStreamSynchronize(s));
}

/* One sequence at a 4096-token context, where the KV cache is read every step
 * too: the part of those figures. */
#define LONG_PROMPT 4096
static struct llama_part *long_context_part(const struct model_spec *m, struct llama_part_desc *d)
{
    d->max_batch = 1;
    d->max_context = LONG_PROMPT + 128 + 8;
    d->max_rows = LONG_PROMPT;
    struct llama_part *p;
    TRY(llama_part_create(m, d, &p));
    TRY(llama_part_init_random(p, 1));
    return p;
}

/* A prefill of batch x seq captured once in a CUDA graph (launch gaps removed),
 * ms a replay; the part's GEMM algorithms and tokens as the caller set them. */
static double prefill_graph_ms(struct llama_part *p, int batch, int seq, cudaStream_t s)
{
    struct llama_call call = {0, batch, seq, 0, NULL, 0};
    cudaGraph_t pg;
    cudaGraphExec_t pe;
    CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    TRY(llama_embed(p, &call, s));
    TRY(llama_layers(p, 0, p->m.layers, &call, s));
    TRY(llama_head(p, &call, s));
    CU(cudaStreamEndCapture(s, &pg));
    CU(cudaGraphInstantiate(&pe, pg, 0));
    double ms = time_ms([&] { CU(cudaGraphLaunch(pe, s)); }, 2, 10, s);
    CU(cudaGraphExecDestroy(pe));
    CU(cudaGraphDestroy(pg));
    return ms;
}

int main(int argc, char **argv)
{
    const char *cfg = argc > 1 ? argv[1] : "models/llama-2-7b.json";
    const char *mode = argc > 2 ? argv[2] : "";
    const int gemv_profile_only = !strcmp(mode, "gemv-profile");
    const int stream_profile_only = !strcmp(mode, "stream-profile");
    const int attn_profile_only = !strcmp(mode, "attn-profile");
    const int prefill_profile_only = !strcmp(mode, "prefill-profile");
    const int lt_steps_only = !strcmp(mode, "lt-steps");
    const int gemv_steps_only = !strcmp(mode, "gemv-steps");
    const int early_only = !strcmp(mode, "early");
    const int tma_only = !strcmp(mode, "tma");
    if (argc > 3 || (argc > 2 && !gemv_profile_only && !stream_profile_only && !attn_profile_only && !lt_steps_only &&
                     !gemv_steps_only && !prefill_profile_only && !early_only && !tma_only)) {
        fprintf(stderr, "usage: bench_kernels [config.json [gemv-profile | stream-profile | attn-profile | "
                        "prefill-profile | lt-steps | gemv-steps | early | tma]]\n"
                        "  (no mode: every figure; lt-steps: only the batched steps on the cuBLASLt decode class;\n"
                        "   gemv-steps: only the one-sequence steps, norms launched, folded and in the GEMV's last block,\n"
                        "   at contexts 128 and 4096;\n"
                        "   early: the batched steps and the prefill graphs with our kernels after cuBLASLt's on\n"
                        "   launch-completion edges and not, alternated;\n"
                        "   tma: the batched steps and prefill 1x128 with cuBLASLt, timed against gemm_tma, and on\n"
                        "   gemm_tma for every linear, alternated)\n");
        return 2;
    }
    struct model_spec m;
    TRY(model_spec_load(cfg, &m));
    cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, %.0f GiB; model %s (%d layers, hidden %d)\n", prop.name, prop.multiProcessorCount,
           prop.totalGlobalMem / 1073741824.0, m.name, m.layers, m.hidden);
    cudaStream_t s;
    CU(cudaStreamCreate(&s));

    /* ceilings: device-to-device copy (bytes read + written) and a large bf16 GEMM */
    size_t cb = (size_t)1 << 30;
    void *c0, *c1;
    CU(cudaMalloc(&c0, cb));
    CU(cudaMalloc(&c1, cb));
    CU(cudaMemset(c0, 1, cb));
    double copy_ms = time_ms([&] { CU(cudaMemcpyAsync(c1, c0, cb, cudaMemcpyDeviceToDevice, s)); }, 3, 20, s);
    double copy_gbs = 2.0 * cb / (copy_ms * 1e6);
    CU(cudaFree(c0));
    CU(cudaFree(c1));

    struct llama_part_desc d = {};
    d.world = 1;
    d.n_layers = m.layers;
    d.has_embed = d.has_head = 1;
    d.max_batch = 64;
    d.max_context = 640;
    d.max_rows = 8192;  /* 64 prompts of 128 tokens before the batch-64 decode */
    d.programmatic_launch = 1;  /* the decode loop below also runs with it off */
    struct llama_part *p;
    printf("part bytes %.2f GiB\n", llama_part_bytes(&m, &d) / 1073741824.0);
    TRY(llama_part_create(&m, &d, &p));
    TRY(llama_part_init_random(p, 1));
    if (gemv_profile_only || stream_profile_only || attn_profile_only || prefill_profile_only) {
        if (gemv_profile_only) gemv_profile_launches(p, s);
        else if (stream_profile_only) stream_profile_launches(p, s);
        else if (prefill_profile_only) prefill_attn_profile_launches(p, &m, s);
        else for (int batch = 16; batch <= 64; batch *= 4) attn_profile_launches(p, batch, 255, s);
        llama_part_destroy(p);
        if (attn_profile_only) {  /* then one sequence at 4224 keys, where the default takes the bulk kernel */
            p = long_context_part(&m, &d);
            attn_profile_launches(p, 1, LONG_PROMPT + 127, s);
            llama_part_destroy(p);
        }
        return 0;
    }

    {
        const int n = 8192;
        struct gemm_ctx g;
        TRY(gemm_init(&g, p->gemm.workspace, n));
        TRY(gemm_prepare(&g, n, n));
        bf16 *x, *w, *y;
        CU(cudaMalloc((void **)&x, (size_t)n * n * 2));
        CU(cudaMalloc((void **)&w, (size_t)n * n * 2));
        CU(cudaMalloc((void **)&y, (size_t)n * n * 2));
        /* random data, never zeros (METHOD.md): reuse the weights' generator */
        CU(cudaMemcpy(x, p->layers, (size_t)n * n * 2, cudaMemcpyDeviceToDevice));
        CU(cudaMemcpy(w, p->layers + (size_t)n * n, (size_t)n * n * 2, cudaMemcpyDeviceToDevice));
        double ms = time_ms([&] { TRY(gemm_lt(&g, x, w, y, n, n, n, 0, GEMM_CLASS_LONG, s)); }, 3, 20, s);
        printf("ceilings: copy %.0f GB/s (read+write, 1 GiB), bf16 GEMM 8192^3 %.0f TFLOP/s\n", copy_gbs,
               2.0 * n * n * (double)n / (ms * 1e9));
        gemm_destroy(&g);
        CU(cudaFree(x));
        CU(cudaFree(w));
        CU(cudaFree(y));
    }
    if (gemv_steps_only) {  /* one sequence, each place of the norms, alternated three times against drift */
        for (int round = 0; round < 3; round++)
            for (int fold = 0; fold < 3; fold++) decode_figure(p, {1, DECODE_GEMV, fold}, 128, 128, copy_gbs, s);
        llama_part_destroy(p);
        p = long_context_part(&m, &d);
        for (int round = 0; round < 3; round++)
            for (int fold = 0; fold < 3; fold++) decode_figure(p, {1, DECODE_GEMV, fold}, LONG_PROMPT, 128, copy_gbs, s);
        llama_part_destroy(p);
        return 0;
    }
    if (lt_steps_only) {  /* the batched steps on the decode class, with and without K slices */
        for (int b = 16; b <= 64; b *= 2)
            for (int ns = 0; ns < 2; ns++) {
                struct decode_setup c = {b, DECODE_LT};
                c.no_kslices = ns;
                decode_figure(p, c, 128, 128, copy_gbs, s);
            }
        llama_part_destroy(p);
        return 0;
    }
    if (tma_only) {  /* the decode class without gemm_tma, timed against it, and on it throughout */
        const int tma_default = gemm_tma_mode();
        const char *names[3] = {"off", "timed", "forced"};
        int wg0, inf0;
        gemm_tma_consumers(&wg0, &inf0);
        /* off; timed with one consumer warpgroup waiting on each stage (the default),
         * with a wgmma group in flight, with two warpgroups and a group in flight,
         * the same with the short class's K slices; forced with the default */
        struct {
            int mode, warpgroups, inflight, short_kslices;
        } v[6] = {{GEMM_TMA_OFF, wg0, inf0, 0},  {GEMM_TMA_TIMED, 1, 0, 0}, {GEMM_TMA_TIMED, 1, 1, 0},
                  {GEMM_TMA_TIMED, 2, 1, 0},     {GEMM_TMA_TIMED, 2, 1, 1}, {GEMM_TMA_FORCE, wg0, inf0, 0}};
        for (int round = 0; round < 2; round++)
            for (int i = 0; i < 6; i++) {
                gemm_set_tma(v[i].mode);
                TRY(gemm_tma_set_consumers(v[i].warpgroups, v[i].inflight));
                gemm_set_short_kslices(v[i].short_kslices);
                printf("round %d, gemm_tma %s, consumer warpgroups %d, %d in flight, short-class K slices %s\n",
                       round, names[v[i].mode], v[i].warpgroups, v[i].inflight, v[i].short_kslices ? "on" : "off");
                for (int b = 16; b <= 64; b *= 2) decode_figure(p, {b, DECODE_LT}, 128, 128, copy_gbs, s);
                TRY(part_gemm_setup(p, 128, d.max_batch));  /* a 1x128 part's short class */
                int served = 0, sliced = 0;
                for (int j = 0; j < p->gemm.n_shapes; j++) {
                    const struct gemm_shape *sh = &p->gemm.shapes[j];
                    served += sh->cls == GEMM_CLASS_SHORT && sh->tma;
                    sliced += sh->cls == GEMM_CLASS_SHORT && sh->ksplit;
                }
                fill_tokens(p, 128, m.vocab);
                printf("prefill 1x128: graph %.3f ms (%d products on gemm_tma, %d in K slices)\n",
                       prefill_graph_ms(p, 1, 128, s), served, sliced);
            }
        gemm_set_tma(tma_default);
        TRY(gemm_tma_set_consumers(wg0, inf0));
        gemm_set_short_kslices(0);
        llama_part_destroy(p);
        return 0;
    }
    if (early_only) {  /* kernels after cuBLASLt's launched on its launch completion (pdl_set_early) or not */
        const int early_default = pdl_early();
        for (int round = 0; round < 2; round++)
            for (int early = 1; early >= 0; early--) {
                pdl_set_early(early);
                printf("round %d, early edges after cuBLASLt: %s\n", round, early ? "on" : "off");
                for (int b = 16; b <= 64; b *= 2) decode_figure(p, {b, DECODE_LT}, 128, 128, copy_gbs, s);
                const int shapes[2][2] = {{1, 128}, {8, 512}};
                for (int c = 0; c < 2; c++) {
                    const int rows = shapes[c][0] * shapes[c][1];
                    TRY(part_gemm_setup(p, rows, d.max_batch));  /* as the prefill figures below tune them */
                    fill_tokens(p, rows, m.vocab);
                    printf("prefill %dx%d: graph %.3f ms\n", shapes[c][0], shapes[c][1],
                           prefill_graph_ms(p, shapes[c][0], shapes[c][1], s));
                }
            }
        pdl_set_early(early_default);
        llama_part_destroy(p);
        return 0;
    }
    const struct part_dims *x = &p->dims;
    const int prefills[3][2] = {{8, 512}, {1, 128}, {4, 128}};
    for (int c = 0; c < 3; c++) {
        int batch = prefills[c][0], seq = prefills[c][1], rows = batch * seq;
        /* the algorithms a part sized for this prefill (max_rows = rows) would use */
        TRY(part_gemm_setup(p, rows, d.max_batch));
        fill_tokens(p, rows, m.vocab);
        struct llama_call call = {0, batch, seq, 0, NULL, 0};
        int cls = gemm_class_for_seq(seq);
        auto forward = [&](const struct llama_call *c) {
            TRY(llama_embed(p, c, s));
            TRY(llama_layers(p, 0, m.layers, c, s));
            TRY(llama_head(p, c, s));
        };
        double fwd = time_ms([&] { forward(&call); }, 2, 10, s);
        double fwd_graph = prefill_graph_ms(p, batch, seq, s);
        /* the floor: exactly the forward's GEMMs, same shapes, buffers and algorithms */
        double gemms = time_ms([&] {
            for (int l = 0; l < m.layers; l++) {
                bf16 *b = p->layers + (size_t)l * p->ll.elems;
                TRY(gemm_lt(&p->gemm, p->normed, b + p->ll.wqkv, p->qkv, rows, x->qkv_n, x->hidden, 0, cls, s));
                TRY(gemm_lt(&p->gemm, p->attn, b + p->ll.wo, p->hidden, rows, x->hidden, x->q_dim, 1, cls, s));
                TRY(gemm_lt(&p->gemm, p->normed, b + p->ll.wgu, p->gu, rows, 2 * x->inter_l, x->hidden, 0, cls, s));
                TRY(gemm_lt(&p->gemm, p->act, b + p->ll.wdown, p->hidden, rows, x->hidden, x->inter_l, 1, cls, s));
            }
            TRY(gemm_lt(&p->gemm, p->normed, p->head + p->hl.lm_head, p->logits, rows, x->vocab_l, x->hidden, 0, cls, s));
        }, 2, 10, s);
        struct attn_args aa = {p->q, p->k_cache, p->v_cache, p->attn, batch, seq, 0, 0, NULL,
                               x->hq, x->hkv, x->hd, d.max_context, p->partials};
        double attn = time_ms([&] {
            for (int l = 0; l < m.layers; l++) TRY(attn_prefill(&aa, s));
        }, 2, 10, s);
        /* what a generation's prefill runs (and transformers with logits_to_keep=1):
         * the head over each sequence's last row only */
        struct llama_call last = call;
        last.last_only = 1;
        double fwd_last = time_ms([&] { forward(&last); }, 2, 10, s);
        double flops = (double)m.layers * model_layer_flops(&m, batch, seq, seq) + model_head_flops(&m, rows);
        double attn_flops = (double)m.layers * model_attention_flops(&m, batch, seq, seq);
        double bytes_floor = (double)(m.layers * p->ll.elems + p->hl.elems) * 2 / (copy_gbs * 1e6);
        printf("prefill %dx%d (short GEMMs tuned at %d rows): forward %.2f ms (graph %.2f ms) | GEMMs alone %.2f ms | ratio %.3f (graph %.3f) | "
               "attention alone %.2f ms | %.0f TFLOP/s overall | weight-bytes floor %.2f ms\n", batch, seq, p->gemm.tune_rows, fwd,
               fwd_graph, gemms, fwd / gemms, fwd_graph / gemms, attn, flops / (fwd * 1e9), bytes_floor);
        printf("    last rows' logits only (a generation's prefill): forward %.2f ms | the attention alone runs "
               "%.0f TFLOP/s of causal attention\n", fwd_last, attn_flops / (attn * 1e9));
    }
    /* The decode GEMV alone, one token: each shape over the 32 layers' own weights
     * (as a step reads them, never from L2), weight bytes over time against the
     * copy rate. */
    {
        struct { const char *name; size_t off; int n, k, layers; } sh[5] = {
            {"qkv", p->ll.wqkv, x->qkv_n, x->hidden, m.layers}, {"o", p->ll.wo, x->hidden, x->q_dim, m.layers},
            {"gate_up", p->ll.wgu, 2 * x->inter_l, x->hidden, m.layers},
            {"down", p->ll.wdown, x->hidden, x->inter_l, m.layers}, {"lm_head", 0, x->vocab_l, x->hidden, 1}};
        double all_ms = 0, all_bytes = 0;
        for (int i = 0; i < 5; i++) {
            double ms = time_ms([&] {
                for (int l = 0; l < sh[i].layers; l++) {
                    const bf16 *w = i < 4 ? p->layers + (size_t)l * p->ll.elems + sh[i].off : p->head + p->hl.lm_head;
                    TRY(gemm_rows(p->normed, w, p->gu, 1, sh[i].n, sh[i].k, 0, s));
                }
            }, 2, 10, s);
            double bytes = (double)sh[i].n * sh[i].k * 2 * sh[i].layers;
            all_ms += ms;
            all_bytes += bytes;
            printf("gemv 1 row %-7s N=%5d K=%5d x%2d: %.3f ms, %.0f GB/s = %.1f%% of copy\n", sh[i].name, sh[i].n,
                   sh[i].k, sh[i].layers, ms, bytes / (ms * 1e6), 100.0 * bytes / (ms * 1e6) / copy_gbs);
            /* the other spread of columns over warps (the same bits) */
            int cols = 3 - gemm_rows_cols_per_warp(sh[i].n);
            double other = time_ms([&] {
                for (int l = 0; l < sh[i].layers; l++) {
                    const bf16 *w = i < 4 ? p->layers + (size_t)l * p->ll.elems + sh[i].off : p->head + p->hl.lm_head;
                    TRY(gemm_rows_cols(p->normed, w, p->gu, 1, sh[i].n, sh[i].k, 0, cols, s));
                }
            }, 2, 10, s);
            printf("    same with %d column%s a warp: %.3f ms = %.1f%% of copy\n", cols, cols > 1 ? "s" : "", other,
                   100.0 * bytes / (other * 1e6) / copy_gbs);
        }
        printf("gemv 1 row, all weights: %.3f ms, %.0f GB/s = %.1f%% of copy\n", all_ms, all_bytes / (all_ms * 1e6),
               100.0 * all_bytes / (all_ms * 1e6) / copy_gbs);
        for (int i = 0; i < n_wave; i++) gemv_chain_figure(p, i, copy_gbs, s);
        /* the tensor-core decode kernels at 1, 16 and 64 rows: registers (skinny)
         * against the shared-memory stream with its K-split clusters */
        const int rows_list[3] = {1, 16, 64};
        for (int r = 0; r < 3; r++) {
            double tot[3] = {0, 0, 0};
            const char *vname[3] = {"skinny", "stream", "skinny-async"};
            for (int i = 0; i < 5; i++) {
                double bytes = (double)sh[i].n * sh[i].k * 2 * sh[i].layers;
                for (int v = 0; v < 3; v++) {
                    gemm_skinny_set_stream(skinny_streams[v == 2 ? 1 : 0]);
                    double ms = time_ms([&] {
                        for (int l = 0; l < sh[i].layers; l++) {
                            const bf16 *w = i < 4 ? p->layers + (size_t)l * p->ll.elems + sh[i].off : p->head + p->hl.lm_head;
                            if (v == 1) TRY(gemm_stream(p->normed, w, p->gu, rows_list[r], sh[i].n, sh[i].k, 0, s));
                            else TRY(gemm_skinny(p->normed, w, p->gu, rows_list[r], sh[i].n, sh[i].k, 0, s));
                        }
                    }, 2, 10, s);
                    tot[v] += ms;
                    printf("%s %2d rows %-7s: %.3f ms = %.1f%% of copy\n", vname[v], rows_list[r], sh[i].name, ms,
                           100.0 * bytes / (ms * 1e6) / copy_gbs);
                }
                gemm_skinny_set_stream(skinny_streams[0]);
            }
            printf("%d rows, all weights: skinny %.3f ms = %.1f%% of copy, stream %.3f ms = %.1f%%, skinny-async (%s) "
                   "%.3f ms = %.1f%%\n", rows_list[r], tot[0], 100.0 * all_bytes / (tot[0] * 1e6) / copy_gbs, tot[1],
                   100.0 * all_bytes / (tot[1] * 1e6) / copy_gbs, skinny_stream_name(1), tot[2],
                   100.0 * all_bytes / (tot[2] * 1e6) / copy_gbs);
        }
    }
    /* decode under programmatic launch, 128 graph-replayed steps after a 128-token
     * prompt: every batch on every path, the path a part of that max_batch takes first */
    TRY(part_gemm_setup(p, d.max_rows, d.max_batch));
    /* {batch, path, fold, prefetch, attention keys, skinny stream} */
    const struct decode_setup cases[] = {
        {1, DECODE_GEMV, 0, 0, 0, 0},    {1, DECODE_GEMV, 1, 0, 0, 0},    {1, DECODE_GEMV, 2, 0, 0, 0},
        {1, DECODE_GEMV, 0, 0, 256, 0},
        {1, DECODE_TENSOR, 0, 0, 0, 0},  {16, DECODE_STREAM, 0, 0, 0, 0}, {16, DECODE_TENSOR, 0, 0, 0, 0},
        {16, DECODE_TENSOR, 0, 0, 0, 1}, {16, DECODE_SKINNY, 0, 0, 0, 0}, {64, DECODE_STREAM, 0, 0, 0, 0},
        {64, DECODE_TENSOR, 0, 0, 0, 0}, {64, DECODE_SKINNY, 0, 0, 0, 0}, {16, DECODE_LT, 0, 0, 0, 0},
        {32, DECODE_LT, 0, 0, 0, 0},     {32, DECODE_STREAM, 0, 0, 0, 0}, {64, DECODE_LT, 0, 0, 0, 0},
        {16, DECODE_STREAM, 0, 0, 0, 0}, {64, DECODE_STREAM, 0, 0, 0, 0}};
    for (const struct decode_setup &c : cases) decode_figure(p, c, 128, 128, copy_gbs, s);
    for (int b = 16; b <= 64; b *= 2) {  /* the decode class with o and down whole (the tree before) */
        struct decode_setup c = {b, DECODE_LT};
        c.no_kslices = 1;
        decode_figure(p, c, 128, 128, copy_gbs, s);
    }
    for (int i = 1; i < n_wave; i++) {
        struct decode_setup c = {1, DECODE_GEMV, 0, 0, 0, 0, 0, i};
        decode_figure(p, c, 128, 128, copy_gbs, s);
    }
    for (int b = 16; b <= 64; b *= 4) {  /* the stream kernel in the blocks its default does not take */
        struct decode_setup c = {b, DECODE_STREAM, 0, 0, 0, 0, 0, 0, b >= 64 ? 8 : 4};
        decode_figure(p, c, 128, 128, copy_gbs, s);
    }
    /* every attention setting at the last step's context (the cases above filled
     * the cache of all 64 sequences to it), then the whole step with each batch's
     * fastest when it is not the default */
    const struct decode_setup steps_at[3] = {{1, DECODE_GEMV, 0, 0, 0, 0, 0}, {16, DECODE_LT, 0, 0, 0, 0, 0},
                                             {64, DECODE_LT, 0, 0, 0, 0, 0}};
    for (struct decode_setup c : steps_at) {
        /* the default's setting in the register kernel (stages 0) and in the bulk
         * kernel, one wave: the default's bits, so the kernel may follow the call's
         * shape (attention.h says which the default takes) */
        for (int stages = 0; stages <= 3; stages++) {
            struct decode_setup d = c;
            d.attn_keys = ATTN_DECODE_CHUNK, d.attn_warps = ATTN_DECODE_WARPS, d.attn_stages = stages;
            decode_figure(p, d, 128, 128, copy_gbs, s);
            if (stages == 0 || stages > 2 || c.batch == 1) continue;
            printf("    the same, a block a head's partials through L2 and tickets:\n");
            attn_decode_bulk_set_local(0);
            decode_figure(p, d, 128, 128, copy_gbs, s);
            attn_decode_bulk_set_local(1);
        }
        int best[4];
        attn_sweep(p, c.batch, 128 + 128 - 1, copy_gbs, s, best);
        if (best[0] == 0 && best[1] == 0) continue;
        c.attn_keys = best[0];
        c.attn_warps = best[1];
        c.attn_stages = best[2];
        c.attn_per_block = best[3];
        decode_figure(p, c, 128, 128, copy_gbs, s);
        if (!best[2]) continue;
        c.attn_per_block = 0;  /* the same copies, one wave (the rule a part would take) */
        decode_figure(p, c, 128, 128, copy_gbs, s);
    }
    llama_part_destroy(p);

    p = long_context_part(&m, &d);
    decode_figure(p, {1, DECODE_GEMV, 0, 0, 0, 0}, LONG_PROMPT, 128, copy_gbs, s);
    decode_figure(p, {1, DECODE_GEMV, 0, 0, 256, 0}, LONG_PROMPT, 128, copy_gbs, s);
    /* the default's setting in the register kernel (the tree before the bulk kernel took long contexts) */
    decode_figure(p, {1, DECODE_GEMV, 0, 0, ATTN_DECODE_CHUNK, 0, ATTN_DECODE_WARPS}, LONG_PROMPT, 128, copy_gbs, s);
    for (int i = 1; i < n_wave; i++) decode_figure(p, {1, DECODE_GEMV, 0, 0, 0, 0, 0, i}, LONG_PROMPT, 128, copy_gbs, s);
    {
        int best[4];
        attn_sweep(p, 1, LONG_PROMPT + 128 - 1, copy_gbs, s, best);
        struct decode_setup c = {1, DECODE_GEMV, 0, 0, best[0], 0, best[1]};
        c.attn_stages = best[2];
        c.attn_per_block = best[3];
        if (best[0] || best[1]) decode_figure(p, c, LONG_PROMPT, 128, copy_gbs, s);
        c.attn_per_block = 0;
        if (best[2]) decode_figure(p, c, LONG_PROMPT, 128, copy_gbs, s);
    }
    llama_part_destroy(p);
    return 0;
}
