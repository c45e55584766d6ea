/* bench_kernels' decode-attention figures: each setting alone under plain launches
 * and graph replay, the sweep over every setting, and the launches a profiler
 * reads (bench_kernels.h). */
#include "bench_kernels.h"

const char *attn_setting_name(int keys, int warps, int stages, int per_block)
{
    static char buf[8][96];
    static int next;
    char *b = buf[next++ % 8];
    const int k = keys ? keys : ATTN_DECODE_CHUNK;
    if (!keys) warps = ATTN_DECODE_WARPS;
    if (warps && stages)
        snprintf(b, sizeof buf[0], "spread %d keys %d warps a block, bulk copies in %d stage%s, %d splits a block%s", k,
                 warps, stages, stages == 1 ? "" : "s", per_block, per_block ? "" : " (one wave)");
    else if (warps)
        snprintf(b, sizeof buf[0], "spread %d keys %d warps a block%s", k, warps, keys ? ", in registers" : " (default)");
    else snprintf(b, sizeof buf[0], "key-a-lane %d keys a block%s", k, keys ? "" : " (default)");
    return b;
}

struct attn_args decode_attn_args(struct llama_part *p, int l, int batch, int pos, const int *pos_dev)
{
    const struct part_dims *x = &p->dims;
    size_t off = (size_t)l * p->al.cache_layer_elems;
    struct attn_args aa = {p->q, p->k_cache + off, p->v_cache + off, p->attn, batch, 1, 0, pos, pos_dev,
                           x->hq, x->hkv, x->hd, p->d.max_context, p->partials};
    aa.qkv = p->qkv;
    aa.inv_freq = p->inv_freq;
    aa.counters = p->counters;
    return aa;
}

/* The decode attention alone over every layer of part p at one setting, batch
 * sequences at position pos (host position, as the key-a-lane kernel's figures in
 * docs/PERF.md were timed): 32 launches on the stream without programmatic launch,
 * and the same launches captured in a graph with it, replayed (the executor's
 * decode runs that way; there each kernel's cache loads overlap the one before).
 * Returns the graph's ms; prints both against the KV bytes at the copy rate. */
double attn_figure(struct llama_part *p, int batch, int pos, int keys, int warps, double copy_gbs, cudaStream_t s,
                   int stages, int per_block)
{
    const struct model_spec *m = &p->m;
    const struct part_dims *x = &p->dims;
    int *dpos;
    CU(cudaMalloc((void **)&dpos, sizeof(int)));
    CU(cudaMemcpy(dpos, &pos, sizeof(int), cudaMemcpyHostToDevice));
    auto launch_all = [&](int pdl, cudaStream_t st, const int *pos_dev = NULL) {
        for (int l = 0; l < m->layers; l++) {
            struct attn_args aa = decode_attn_args(p, l, batch, pos, pos_dev);
            aa.keys_per_block = keys;
            aa.warps_per_block = warps;
            aa.decode_stages = stages;
            aa.splits_per_block = per_block;
            aa.pdl = pdl;
            TRY(attn_decode(&aa, st));
        }
    };
    double stream_ms = time_ms([&] { launch_all(0, s); }, 2, 10, s);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    launch_all(1, s);
    CU(cudaStreamEndCapture(s, &graph));
    CU(cudaGraphInstantiate(&exec, graph, 0));
    double graph_ms = time_ms([&] { CU(cudaGraphLaunch(exec, s)); }, 3, 20, s);
    CU(cudaGraphExecDestroy(exec));
    CU(cudaGraphDestroy(graph));
    /* as a decode step's graph has it: the position on the device, the grid sized for
     * the whole cache (p->d.max_context keys) */
    CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    launch_all(1, s, dpos);
    CU(cudaStreamEndCapture(s, &graph));
    CU(cudaGraphInstantiate(&exec, graph, 0));
    double dev_ms = time_ms([&] { CU(cudaGraphLaunch(exec, s)); }, 3, 20, s);
    CU(cudaGraphExecDestroy(exec));
    CU(cudaGraphDestroy(graph));
    CU(cudaFree(dpos));
    double kv = (double)batch * m->layers * 2 * (pos + 1) * x->hkv * x->hd * 2;
    double floor_ms = kv / (copy_gbs * 1e6);
    printf("    decode attention alone, batch %d, context %d, %s, %d layers: %.3f ms = %.1f%% of copy over the KV "
           "bytes | graph + programmatic launch %.3f ms = %.1f%% | the same, position on the device (grid for %d keys) "
           "%.3f ms = %.1f%% | KV floor %.3f ms\n", batch, pos + 1, attn_setting_name(keys, warps, stages, per_block), m->layers, stream_ms,
           100.0 * floor_ms / stream_ms, graph_ms, 100.0 * floor_ms / graph_ms, p->d.max_context, dev_ms,
           100.0 * floor_ms / dev_ms, floor_ms);
    return graph_ms;
}

/* Every decode-attention setting (the key-a-lane kernel at 128 and 256 keys, the
 * spread kernel at each of attention.h's pairs, the bulk kernel at three of them in
 * every stage count and split assignment) at one batch and context; the fastest
 * under graph replay into best as {keys, warps, stages, splits a block} (keys 0 for
 * the default). */
void attn_sweep(struct llama_part *p, int batch, int pos, double copy_gbs, cudaStream_t s, int best[4])
{
    static const int spread[ATTN_DECODE_SPREAD_COUNT][2] = ATTN_DECODE_SPREAD_SETTINGS;
    printf("decode attention settings, batch %d, context %d:\n", batch, pos + 1);
    double best_ms = attn_figure(p, batch, pos, 0, 0, copy_gbs, s);
    best[0] = best[1] = best[2] = best[3] = 0;
    for (int i = -1; i < ATTN_DECODE_SPREAD_COUNT; i++) {
        const int keys = i < 0 ? 256 : spread[i][0], warps = i < 0 ? 0 : spread[i][1];
        double ms = attn_figure(p, batch, pos, keys, warps, copy_gbs, s);
        if (ms < best_ms) best_ms = ms, best[0] = keys, best[1] = warps;
    }
    /* the bulk-copy kernel (the same bits as the register kernel at its setting) */
    static const int bulk[][2] = {{64, 4}, {32, 4}, {64, 8}};
    for (const auto &bs : bulk)
        for (int stages = 1; stages <= 4; stages++)
            for (int per_block : {0, 1, 2, 4, 8}) {
                double ms = attn_figure(p, batch, pos, bs[0], bs[1], copy_gbs, s, stages, per_block);
                if (ms < best_ms) best_ms = ms, best[0] = bs[0], best[1] = bs[1], best[2] = stages, best[3] = per_block;
            }
    printf("    fastest under graph replay at batch %d, context %d: %s, %.3f ms\n", batch, pos + 1,
           attn_setting_name(best[0], best[1], best[2], best[3]), best_ms);
}

void attn_profile_launches(struct llama_part *p, int batch, int pos, cudaStream_t s)
{
    for (int l = 0; l < 2; l++) {
        struct attn_args aa = decode_attn_args(p, l, batch, pos, NULL);
        TRY(attn_decode(&aa, s));
    }
    CU(cudaStreamSynchronize(s));
}
