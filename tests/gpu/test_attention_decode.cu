/* The decode attention's bit-exactness at every setting (attention.h): a
 * sequence's output bits alone equal its bits in a batch of 16, whether the batch
 * has one position or one per sequence (serving, with an empty slot), under a host
 * or a device position, launched directly or replayed from a CUDA graph under
 * programmatic launch (the executor's decode); the counters are back at zero after
 * every call. tests/gpu/test_attention.cu checks each setting against the CPU. */
#include "../../kernels/attention.h"
#include "kernel_test_util.h"

typedef __nv_bfloat16 bf16;

#define BATCH 16
#define MAX_CTX 700

struct bits_case {
    int hd, hq, hkv, keys, warps, qkv_n;
    int stages, per_block;  /* attn_args.decode_stages, splits_per_block */
    size_t cache, out_n;  /* bf16 elements: the whole cache; one sequence's output */
    bf16 *qkv, *kc, *vc, *kc0, *vc0, *alone, *batch;
    float *dinv, *partials;
    int *counters, *dpos, *dpos_seq;
};

static struct attn_args case_args(const struct bits_case *c)
{
    struct attn_args a = {NULL, c->kc, c->vc, c->batch, BATCH, 1, 0, 0, NULL, c->hq, c->hkv, c->hd, MAX_CTX, c->partials};
    a.qkv = c->qkv;
    a.inv_freq = c->dinv;
    a.counters = c->counters;
    a.keys_per_block = c->keys;
    a.warps_per_block = c->warps;
    a.decode_stages = c->stages;
    a.splits_per_block = c->per_block;
    return a;
}

static int counters_zero(const struct bits_case *c)
{
    const size_t n = attn_decode_counters(BATCH, c->hq);
    int *h = (int *)malloc(n * sizeof(int));
    cudaDeviceSynchronize();
    cudaMemcpy(h, c->counters, n * sizeof(int), cudaMemcpyDeviceToHost);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= h[i] == 0;
    free(h);
    return zero;
}

static void reset_cache(const struct bits_case *c)
{
    cudaMemcpy(c->kc, c->kc0, c->cache * 2, cudaMemcpyDeviceToDevice);
    cudaMemcpy(c->vc, c->vc0, c->cache * 2, cudaMemcpyDeviceToDevice);
}

/* Each sequence b in [0, BATCH) but `skip` alone at pos[b] (host position, batch 1
 * at batch offset b) into c->alone's row b. */
static int run_alone(struct bits_case *c, const int *pos, int skip)
{
    int bad = 0;
    for (int b = 0; b < BATCH; b++) {
        if (b == skip) continue;
        struct attn_args a = case_args(c);
        a.batch = 1;
        a.batch_offset = b;
        a.pos = pos[b];
        a.qkv = c->qkv + (size_t)b * c->qkv_n;
        a.out = c->alone + (size_t)b * c->out_n;
        bad |= attn_decode(&a, 0) != 0;
    }
    return bad;
}

/* 1 if every row of c->batch but `skip` has the bits of c->alone's; the skipped
 * row must still hold the poison (an empty slot writes nothing). */
static int rows_equal(int *failures_, const struct bits_case *c, int skip, const char *what)
{
    int ok = 1;
    for (int b = 0; b < BATCH; b++) {
        const bf16 *got = c->batch + (size_t)b * c->out_n;
        if (b == skip) {
            bf16 *nan;
            cudaMalloc((void **)&nan, c->out_n * 2);
            poison(nan, c->out_n);
            if (!bits_equal(got, nan, c->out_n)) {
                fprintf(stderr, "  %s, hd %d, %d keys, %d warps: the empty slot %d was written\n", what, c->hd, c->keys,
                        c->warps, b);
                ok = 0;
            }
            cudaFree(nan);
        } else if (!bits_equal(got, c->alone + (size_t)b * c->out_n, c->out_n)) {
            fprintf(stderr, "  %s, hd %d, %d keys, %d warps: sequence %d's bits differ from its decode alone\n", what,
                    c->hd, c->keys, c->warps, b);
            ok = 0;
        }
    }
    if (!ok) (*failures_)++;
    return ok;
}

/* The batch call captured into one graph three times (programmatic launch on, as
 * the executor runs decode, where every layer's kernel takes the same counters and
 * partials: the second starts under the first's tail), the output poisoned before
 * the third, and replayed `replays` times, each checked against the alone rows:
 * the third call's combine writes the output only if the counters came back to
 * zero after the first two. */
static void graph_replays(int *failures_, struct bits_case *c, struct attn_args a, int skip, int replays,
                          const char *what)
{
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    a.pdl = 1;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    CHECK(attn_decode(&a, s) == 0);
    CHECK(attn_decode(&a, s) == 0);
    CUDA_OK(cudaMemsetAsync(c->batch, 0xff, (size_t)BATCH * c->out_n * 2, s));
    CHECK(attn_decode(&a, s) == 0);
    CUDA_OK(cudaStreamEndCapture(s, &g));
    CUDA_OK(cudaGraphInstantiate(&ge, g, 0));
    for (int r = 0; r < replays; r++) {
        poison(c->batch, (size_t)BATCH * c->out_n);
        CUDA_OK(cudaDeviceSynchronize());  /* the poison (legacy stream) before the replay (s does not wait on it) */
        CUDA_OK(cudaGraphLaunch(ge, s));
        CUDA_OK(cudaStreamSynchronize(s));
        rows_equal(failures_, c, skip, what);
        CHECK(counters_zero(c));
    }
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
}

/* c's buffers for hd, hq, hkv: random qkv rows and cache (seed), zeroed counters. */
static void bits_case_alloc(struct bits_case *c, uint64_t seed)
{
    const int hd = c->hd, hq = c->hq, hkv = c->hkv;
    c->qkv_n = (hq + 2 * hkv) * hd;
    c->cache = (size_t)BATCH * hkv * MAX_CTX * hd;
    c->out_n = (size_t)hq * hd;
    c->dinv = dev_tiny_inv_freq(hd);
    c->qkv = dev_random((size_t)BATCH * c->qkv_n, 2.0f, seed, NULL);
    c->kc0 = dev_random(c->cache, 2.0f, seed + 1, NULL);
    c->vc0 = dev_random(c->cache, 1.0f, seed + 2, NULL);
    cudaMalloc((void **)&c->kc, c->cache * 2);
    cudaMalloc((void **)&c->vc, c->cache * 2);
    cudaMalloc((void **)&c->alone, BATCH * c->out_n * 2);
    cudaMalloc((void **)&c->batch, BATCH * c->out_n * 2);
    cudaMalloc((void **)&c->partials, attn_decode_partials_floats(BATCH, hq, hd, MAX_CTX) * 4);
    cudaMalloc((void **)&c->counters, attn_decode_counters(BATCH, hq) * sizeof(int));
    cudaMemset(c->counters, 0, attn_decode_counters(BATCH, hq) * sizeof(int));
    cudaMalloc((void **)&c->dpos, sizeof(int));
}

static void bits_case_run(int *failures_, int hd, int hq, int hkv, int keys, int warps, uint64_t seed, int stages = 0,
                          int per_block = 0)
{
    struct bits_case c = {};
    c.hd = hd, c.hq = hq, c.hkv = hkv, c.keys = keys, c.warps = warps;
    c.stages = stages, c.per_block = per_block;
    bits_case_alloc(&c, seed);
    cudaMalloc((void **)&c.dpos_seq, BATCH * sizeof(int));

    /* one position per sequence around the chunks' boundaries; slot 5 empty */
    const int empty = 5;
    int pos[BATCH] = {0, 1, 31, 32, 33, -1, 63, 64, 127, 128, 129, 255, 256, 300, 511, MAX_CTX - 1};
    int bound = 0;
    for (int b = 0; b < BATCH; b++) bound = pos[b] > bound ? pos[b] : bound;
    cudaMemcpy(c.dpos_seq, pos, sizeof pos, cudaMemcpyHostToDevice);
    reset_cache(&c);
    poison(c.alone, BATCH * c.out_n);
    CHECK(run_alone(&c, pos, empty) == 0);
    {   /* the serving batch at its bound, directly */
        struct attn_args a = case_args(&c);
        a.pos = bound;
        a.pos_seq = c.dpos_seq;
        poison(c.batch, BATCH * c.out_n);
        CHECK(attn_decode(&a, 0) == 0);
        CUDA_OK(cudaDeviceSynchronize());
        rows_equal(failures_, &c, empty, "per-sequence positions");
        CHECK(counters_zero(&c));
        /* bounded by the cache's end: every split of the cache launched, the idle ones exit */
        a.pos = MAX_CTX - 1;
        graph_replays(failures_, &c, a, empty, 2, "per-sequence positions, graph");
    }
    {   /* one position for all, on the device, from a graph: the executor's decode */
        const int p = 290;
        int same[BATCH];
        for (int b = 0; b < BATCH; b++) same[b] = p;
        reset_cache(&c);
        poison(c.alone, BATCH * c.out_n);
        CHECK(run_alone(&c, same, -1) == 0);
        cudaMemcpy(c.dpos, &p, sizeof(int), cudaMemcpyHostToDevice);
        struct attn_args a = case_args(&c);
        a.pos = p;
        poison(c.batch, BATCH * c.out_n);
        CHECK(attn_decode(&a, 0) == 0);
        CUDA_OK(cudaDeviceSynchronize());
        rows_equal(failures_, &c, -1, "one host position");
        a.pos_dev = c.dpos;
        graph_replays(failures_, &c, a, -1, 3, "one device position, graph");
    }
    cudaFree(c.qkv), cudaFree(c.kc), cudaFree(c.vc), cudaFree(c.kc0), cudaFree(c.vc0), cudaFree(c.alone);
    cudaFree(c.batch), cudaFree(c.dinv), cudaFree(c.partials), cudaFree(c.counters), cudaFree(c.dpos);
    cudaFree(c.dpos_seq);
}

TEST(test_attention_decode_sequence_bits_alone_equal_in_batch)
{
    static const int spread[ATTN_DECODE_SPREAD_COUNT][2] = ATTN_DECODE_SPREAD_SETTINGS;
    int settings[ATTN_DECODE_SPREAD_COUNT + 2][2] = {{128, 0}, {256, 0}};
    for (int i = 0; i < ATTN_DECODE_SPREAD_COUNT; i++) settings[i + 2][0] = spread[i][0], settings[i + 2][1] = spread[i][1];
    for (int i = 0; i < ATTN_DECODE_SPREAD_COUNT + 2; i++) {
        CHECK(attn_decode_setting_supported(settings[i][0], settings[i][1]));
        bits_case_run(failures_, 128, 8, 2, settings[i][0], settings[i][1], 300 + 10 * i);
        bits_case_run(failures_, 64, 4, 1, settings[i][0], settings[i][1], 305 + 10 * i);
    }
    CHECK(!attn_decode_setting_supported(32, 0));
    CHECK(!attn_decode_setting_supported(256, 2));
}

/* The bulk-copy kernel (attention_decode_bulk.cu) against the register kernel at the
 * same setting: the same bits for every sequence at every stage count and split
 * assignment (one wave, 1 and 3 splits a block, and a block a head, which keeps its
 * partials in shared memory where they fit), at one host position for all and
 * at one position per sequence; then the alone-equals-batch checks above, graphs
 * and device positions included, for the bulk kernel itself. */
TEST(test_attention_decode_bulk_copies_give_the_register_kernels_bits)
{
    static const int settings[][2] = {{64, 4}, {32, 2}, {64, 8}, {32, 4}, {64, 2}};
    const int hq = 8, hkv = 2;
    for (int hd = 64; hd <= 128; hd *= 2)
        for (const auto &st : settings) {
            struct bits_case c = {};
            c.hd = hd, c.hq = hq, c.hkv = hkv, c.keys = st[0], c.warps = st[1];
            bits_case_alloc(&c, 900 + hd);
            cudaMalloc((void **)&c.dpos_seq, BATCH * sizeof(int));
            int pos[BATCH] = {0, 1, 31, 32, 33, -1, 63, 64, 127, 128, 129, 255, 256, 300, 511, MAX_CTX - 1};
            cudaMemcpy(c.dpos_seq, pos, sizeof pos, cudaMemcpyHostToDevice);
            for (int per_seq = 0; per_seq < 2; per_seq++) {
                struct attn_args a = case_args(&c);
                a.pos = per_seq ? MAX_CTX - 1 : 650;
                a.pos_seq = per_seq ? c.dpos_seq : NULL;
                a.decode_stages = 0;
                reset_cache(&c);
                poison(c.alone, BATCH * c.out_n);
                a.out = c.alone;
                CHECK(attn_decode(&a, 0) == 0);
                for (int stages = 1; stages <= 4; stages++)
                    for (int per_block : {3, 0, 1, 64}) {  /* a fixed count first: it must not rely on the one-wave path's setup */
                        CHECK(attn_decode_bulk_supported(st[0], st[1], stages));
                        reset_cache(&c);
                        poison(c.batch, BATCH * c.out_n);
                        a.out = c.batch;
                        a.decode_stages = stages;
                        a.splits_per_block = per_block;
                        CHECK(attn_decode(&a, 0) == 0);
                        CUDA_OK(cudaDeviceSynchronize());
                        char what[96];
                        snprintf(what, sizeof what, "bulk, %d stages, %d splits a block%s", stages, per_block,
                                 per_seq ? ", per-sequence positions" : "");
                        rows_equal(failures_, &c, per_seq ? 5 : -1, what);
                        CHECK(counters_zero(&c));
                    }
            }
            cudaFree(c.qkv), cudaFree(c.kc), cudaFree(c.vc), cudaFree(c.kc0), cudaFree(c.vc0), cudaFree(c.alone);
            cudaFree(c.batch), cudaFree(c.dinv), cudaFree(c.partials), cudaFree(c.counters), cudaFree(c.dpos_seq);
            cudaFree(c.dpos);
        }
    /* the default takes the bulk kernel where attention.h says (past ATTN_DECODE_BULK_SPLITS
     * splits a head; in one stage when a one-wave grid has a block a head, as 32 x 32 heads
     * give any GPU of up to 2048 resident blocks) and the register kernel elsewhere: the
     * register kernel's bits every time, at a host and a device position */
    struct default_case {
        int batch, hq, hkv, ctx, stages;
    };
    const struct default_case dcs[] = {{1, 8, 2, (ATTN_DECODE_BULK_SPLITS + 2) * ATTN_DECODE_CHUNK, ATTN_DECODE_BULK_STAGES},
                                       {32, 32, 8, 5 * ATTN_DECODE_CHUNK, 1},
                                       {1, 8, 2, 4 * ATTN_DECODE_CHUNK, 0}};
    for (const struct default_case &dc : dcs) {
        const int hd = 128, ctx = dc.ctx, pos = ctx - 5, bq = dc.batch;
        const size_t cache = (size_t)bq * dc.hkv * ctx * hd, out_n = (size_t)bq * dc.hq * hd;
        bf16 *qkv = dev_random((size_t)bq * (dc.hq + 2 * dc.hkv) * hd, 2.0f, 990, NULL);
        bf16 *kc0 = dev_random(cache, 2.0f, 991, NULL), *vc0 = dev_random(cache, 1.0f, 992, NULL), *kc, *vc, *o[2];
        float *dinv = dev_tiny_inv_freq(hd), *partials;
        int *counters, *dpos;
        cudaMalloc((void **)&kc, cache * 2);
        cudaMalloc((void **)&vc, cache * 2);
        cudaMalloc((void **)&o[0], out_n * 2);
        cudaMalloc((void **)&o[1], out_n * 2);
        cudaMalloc((void **)&partials, attn_decode_partials_floats(bq, dc.hq, hd, ctx) * 4);
        cudaMalloc((void **)&counters, attn_decode_counters(bq, dc.hq) * sizeof(int));
        cudaMemset(counters, 0, attn_decode_counters(bq, dc.hq) * sizeof(int));
        cudaMalloc((void **)&dpos, sizeof(int));
        cudaMemcpy(dpos, &pos, sizeof(int), cudaMemcpyHostToDevice);
        for (int on_dev = 0; on_dev < 2; on_dev++) {
            for (int i = 0; i < 2; i++) {
                cudaMemcpy(kc, kc0, cache * 2, cudaMemcpyDeviceToDevice);
                cudaMemcpy(vc, vc0, cache * 2, cudaMemcpyDeviceToDevice);
                poison(o[i], out_n);
                struct attn_args a = {NULL, kc, vc, o[i], bq, 1, 0, pos, on_dev ? dpos : NULL, dc.hq, dc.hkv, hd, ctx,
                                      partials};
                a.qkv = qkv;
                a.inv_freq = dinv;
                a.counters = counters;
                a.keys_per_block = i ? ATTN_DECODE_CHUNK : 0;  /* the default, then its setting in registers */
                a.warps_per_block = i ? ATTN_DECODE_WARPS : 0;
                if (!i) CHECK(attn_decode_default_stages(&a) == dc.stages);
                CHECK(attn_decode(&a, 0) == 0);
            }
            CUDA_OK(cudaDeviceSynchronize());
            CHECK(bits_equal(o[0], o[1], out_n));
        }
        cudaFree(qkv), cudaFree(kc0), cudaFree(vc0), cudaFree(kc), cudaFree(vc), cudaFree(o[0]), cudaFree(o[1]);
        cudaFree(dinv), cudaFree(partials), cudaFree(counters), cudaFree(dpos);
    }
    bits_case_run(failures_, 128, 8, 2, 64, 4, 950, 2, 0);
    bits_case_run(failures_, 128, 8, 2, 64, 4, 960, 3, 1);
    bits_case_run(failures_, 64, 4, 1, 32, 2, 970, 4, 3);
    CHECK(!attn_decode_bulk_supported(128, 4, 2));
    CHECK(!attn_decode_bulk_supported(64, 4, 5));
}
