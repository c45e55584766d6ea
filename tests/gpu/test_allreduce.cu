/* The peer-memory all-reduce (kernels/allreduce.h) against a CPU sum on 2 and 4
 * logical ranks of one GPU: the fp32 sum in rank order rounded once to bf16, bit
 * for bit, on every rank, for sizes from one element to 2 MiB (8 KiB, a decode
 * step's, and odd ones that end mid-pack), and the same bits again on a second
 * call (the other staging half). Both forms: in place, and the residual form tp
 * calls (the partials' fp32 sum added to a residual every rank holds, then rounded
 * once), whose residual is large against the partials, as a residual stream's is,
 * so a second rounding would show. Both ways ranks meet are checked: events (what
 * logical devices use) and flags spun on in the kernel (what distinct GPUs and MPI
 * ranks use; the kernels of all ranks fit on the GPU at once here). */
#include "kernel_test_util.h"
#include "../../kernels/allreduce.h"

static const size_t sizes[] = {1, 7, 8, 4096, 4099, 12345, 65536 + 3, 1 << 20};
#define N_SIZES (sizeof sizes / sizeof sizes[0])
#define MAX_COUNT ((size_t)1 << 20)

struct ranks {
    int n;
    int residual;                     /* 1: the residual form (result in res[k]), 0: in place (in dev[k]) */
    uint16_t *host[PEER_MAX_RANKS];   /* inputs */
    uint16_t *res_host;               /* the residual every rank holds */
    void *dev[PEER_MAX_RANKS];
    void *res[PEER_MAX_RANKS];
    cudaStream_t stream[PEER_MAX_RANKS];
};

/* What every rank must hold: the sum over ranks in order 0..n-1 in fp32, plus the
 * residual in the residual form, rounded once. */
static uint16_t *cpu_sum(const struct ranks *r, size_t count)
{
    uint16_t *out = (uint16_t *)malloc(count * 2);
    for (size_t i = 0; i < count; i++) {
        float acc = 0.f;
        for (int k = 0; k < r->n; k++) acc += ref_from_bits(r->host[k][i]);
        if (r->residual) acc = ref_from_bits(r->res_host[i]) + acc;
        out[i] = ref_bf16_bits(acc);
    }
    return out;
}

/* New inputs on the host (uploaded by ranks_upload): partials in [-4, 4), a residual
 * some 16 times larger. */
static void ranks_fill(struct ranks *r, uint64_t seed)
{
    for (int k = 0; k < r->n; k++) {
        uint64_t s = seed * 7919 + k + 1;
        for (size_t i = 0; i < MAX_COUNT; i++) r->host[k][i] = ref_bf16_bits(rnd_uniform(&s) * 4.0f);
    }
    uint64_t s = seed * 7919 + 999;
    for (size_t i = 0; i < MAX_COUNT; i++) r->res_host[i] = ref_bf16_bits(rnd_uniform(&s) * 64.0f);
}

static void ranks_setup(struct ranks *r, int n, int residual, uint64_t seed)
{
    r->n = n;
    r->residual = residual;
    r->res_host = (uint16_t *)malloc(MAX_COUNT * 2);
    for (int k = 0; k < n; k++) {
        r->host[k] = (uint16_t *)malloc(MAX_COUNT * 2);
        cudaMalloc(&r->dev[k], MAX_COUNT * 2);
        cudaMalloc(&r->res[k], MAX_COUNT * 2);
        cudaStreamCreateWithFlags(&r->stream[k], cudaStreamNonBlocking);
    }
    ranks_fill(r, seed);
}

static void ranks_upload(struct ranks *r, size_t count)
{
    for (int k = 0; k < r->n; k++) {
        cudaMemcpy(r->dev[k], r->host[k], count * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(r->res[k], r->res_host, count * 2, cudaMemcpyHostToDevice);
    }
    cudaDeviceSynchronize();   /* the ranks' streams are non-blocking: they do not wait for the copy */
}

static void ranks_free(struct ranks *r)
{
    for (int k = 0; k < r->n; k++) {
        free(r->host[k]);
        cudaFree(r->dev[k]);
        cudaFree(r->res[k]);
        cudaStreamDestroy(r->stream[k]);
    }
    free(r->res_host);
}

/* One call of every rank through the group (events or flags), in r's form. */
static int group_call(struct peer_group *g, struct ranks *r, size_t count, enum allreduce_algo algo)
{
    if (!r->residual) return peer_group_allreduce(g, r->dev, count, algo, r->stream);
    return peer_group_allreduce_residual(g, (const void *const *)r->dev, r->res, count, algo, r->stream);
}

/* The same through flag-synchronised communicators, each rank on its stream. */
static int comm_call(struct peer_comm *comm, struct ranks *r, size_t count, enum allreduce_algo algo)
{
    int rc = 0;
    for (int k = 0; k < r->n; k++)
        rc |= r->residual ? peer_allreduce_residual(&comm[k], r->dev[k], r->res[k], count, algo, r->stream[k])
                          : peer_allreduce(&comm[k], r->dev[k], count, algo, r->stream[k]);
    return rc;
}

/* Every rank's result equals `want` bit for bit (and the residual form left the
 * partials as they were); prints the first difference. */
static int ranks_match(const struct ranks *r, const uint16_t *want, size_t count, const char *what)
{
    uint16_t *got = (uint16_t *)malloc(count * 2);
    int bad = 0;
    cudaDeviceSynchronize();
    for (int k = 0; k < r->n && r->residual && !bad; k++) {
        cudaMemcpy(got, r->dev[k], count * 2, cudaMemcpyDeviceToHost);
        if (memcmp(got, r->host[k], count * 2)) {
            fprintf(stderr, "  %s, %d ranks, %zu elements: the residual form changed rank %d's partials\n", what,
                    r->n, count, k);
            bad = 1;
        }
    }
    for (int k = 0; k < r->n && !bad; k++) {
        cudaMemcpy(got, r->residual ? r->res[k] : r->dev[k], count * 2, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < count && !bad; i++)
            if (got[i] != want[i]) {
                fprintf(stderr, "  %s%s, %d ranks, %zu elements: rank %d element %zu is %g, CPU sum %g\n", what,
                        r->residual ? " + residual" : "", r->n, count, k, i, ref_from_bits(got[i]),
                        ref_from_bits(want[i]));
                bad = 1;
            }
    }
    free(got);
    return bad;
}

/* Two calls per size through a group of n logical ranks on GPU 0 (events). */
static int group_case(int n, enum allreduce_algo algo, int residual)
{
    struct ranks r;
    ranks_setup(&r, n, residual, (uint64_t)n * 10 + algo);
    int ordinal[PEER_MAX_RANKS] = {0};
    struct peer_group g;
    int bad = peer_group_create(n, ordinal, MAX_COUNT, &g) != 0 || !g.use_events;
    for (size_t si = 0; si < N_SIZES && !bad; si++) {
        size_t count = sizes[si];
        uint16_t *want = cpu_sum(&r, count);
        for (int call = 0; call < 2 && !bad; call++) {
            ranks_upload(&r, count);
            bad |= group_call(&g, &r, count, algo) != 0;
            bad |= !bad && ranks_match(&r, want, count, allreduce_algo_name(algo));
        }
        free(want);
    }
    bad |= peer_group_check(&g) != 0;
    peer_group_destroy(&g);
    ranks_free(&r);
    return bad;
}

/* The same through flags: n communicators on GPU 0, each rank's kernel on its stream. */
static int flags_case(int n, enum allreduce_algo algo, int residual)
{
    struct ranks r;
    ranks_setup(&r, n, residual, (uint64_t)n * 100 + algo);
    struct peer_rank_memory mem[PEER_MAX_RANKS];
    struct peer_comm comm[PEER_MAX_RANKS];
    void *base[PEER_MAX_RANKS];
    int bad = 0;
    for (int k = 0; k < n; k++) {
        bad |= peer_memory_alloc(MAX_COUNT, &mem[k]) != 0;
        base[k] = mem[k].base;
    }
    for (int k = 0; k < n; k++) peer_comm_init(&comm[k], k, n, MAX_COUNT, base, 1);
    int resident = 0;
    bad |= peer_allreduce_resident_blocks(&resident) != 0;
    for (size_t si = 0; si < N_SIZES && !bad; si++) {
        size_t count = sizes[si];
        if (n * peer_allreduce_blocks(count, n, algo) > resident) {
            fprintf(stderr, "  skipped: %s of %zu on %d flag-synchronised ranks: %d blocks, the GPU holds %d\n",
                    allreduce_algo_name(algo), count, n, n * peer_allreduce_blocks(count, n, algo), resident);
            continue;
        }
        uint16_t *want = cpu_sum(&r, count);
        for (int call = 0; call < 2 && !bad; call++) {
            ranks_upload(&r, count);
            bad |= comm_call(comm, &r, count, algo) != 0;
            bad |= !bad && ranks_match(&r, want, count, allreduce_algo_name(algo));
        }
        free(want);
    }
    for (int k = 0; k < n; k++) {
        bad |= peer_comm_check(&comm[k]) != 0;
        peer_memory_free(&mem[k]);
    }
    ranks_free(&r);
    return bad;
}

/* One call of every rank captured into a CUDA graph (the ranks' streams forked from
 * and joined to an origin stream, as the executor captures a pass), replayed with new
 * inputs each time and interleaved with direct calls: every result is the CPU sum.
 * A replay is the next call only because the epoch is read on the device: with it
 * baked into the launch, a flag-synchronised replay would pass its barrier on the
 * flags of the capture's call and read staging its peers had not written yet. */
static int graph_case(int n, enum allreduce_algo algo, int flags, size_t count)
{
    struct ranks r;
    ranks_setup(&r, n, 1, (uint64_t)n * 1000 + algo);   /* the residual form, as tp captures it */
    int ordinal[PEER_MAX_RANKS] = {0};
    struct peer_group g;
    struct peer_rank_memory mem[PEER_MAX_RANKS];
    struct peer_comm comm[PEER_MAX_RANKS];
    void *base[PEER_MAX_RANKS];
    int bad = 0;
    if (flags) {
        for (int k = 0; k < n; k++) {
            bad |= peer_memory_alloc(MAX_COUNT, &mem[k]) != 0;
            base[k] = mem[k].base;
        }
        for (int k = 0; k < n; k++) peer_comm_init(&comm[k], k, n, MAX_COUNT, base, 1);
    } else {
        bad |= peer_group_create(n, ordinal, MAX_COUNT, &g) != 0 || !g.use_events;
    }
    cudaStream_t origin;
    cudaEvent_t fork, join[PEER_MAX_RANKS];
    cudaStreamCreateWithFlags(&origin, cudaStreamNonBlocking);
    cudaEventCreateWithFlags(&fork, cudaEventDisableTiming);
    for (int k = 0; k < n; k++) cudaEventCreateWithFlags(&join[k], cudaEventDisableTiming);
    /* one call: direct, or issued under capture */
    auto call = [&]() { return flags ? comm_call(comm, &r, count, algo) : group_call(&g, &r, count, algo); };
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (!bad) {
        bad |= cudaStreamBeginCapture(origin, cudaStreamCaptureModeThreadLocal) != cudaSuccess;
        cudaEventRecord(fork, origin);
        for (int k = 0; k < n; k++) cudaStreamWaitEvent(r.stream[k], fork, 0);
        bad |= call() != 0;
        for (int k = 0; k < n; k++) {
            cudaEventRecord(join[k], r.stream[k]);
            cudaStreamWaitEvent(origin, join[k], 0);
        }
        bad |= cudaStreamEndCapture(origin, &graph) != cudaSuccess;
        bad |= !graph || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess;
    }
    for (int round = 0; round < 6 && !bad; round++) {
        ranks_fill(&r, 77 + round);
        ranks_upload(&r, count);
        uint16_t *want = cpu_sum(&r, count);
        int replay = round % 3 != 2;   /* two replays, then a direct call */
        if (replay) bad |= cudaGraphLaunch(exec, origin) != cudaSuccess || cudaStreamSynchronize(origin) != cudaSuccess;
        else bad |= call() != 0;
        char what[64];
        snprintf(what, sizeof what, "%s %s round %d", allreduce_algo_name(algo), replay ? "graph replay" : "direct", round);
        bad |= !bad && ranks_match(&r, want, count, what);
        free(want);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    for (int k = 0; k < n; k++) {
        bad |= flags ? peer_comm_check(&comm[k]) != 0 : 0;
        if (flags) peer_memory_free(&mem[k]);
        cudaEventDestroy(join[k]);
    }
    if (!flags) {
        bad |= peer_group_check(&g) != 0;
        peer_group_destroy(&g);
    }
    cudaEventDestroy(fork);
    cudaStreamDestroy(origin);
    ranks_free(&r);
    return bad;
}

TEST(test_graph_replayed_calls_match_cpu_sum_each_time)
{
    CHECK(!graph_case(2, ALLREDUCE_ONESHOT, 0, 4096));      /* a decode step's 8 KiB, events */
    CHECK(!graph_case(2, ALLREDUCE_TWOSHOT, 0, 12345));
    CHECK(!graph_case(2, ALLREDUCE_ONESHOT, 1, 4096));      /* flags spun on in the kernel */
    CHECK(!graph_case(4, ALLREDUCE_ONESHOT, 1, 4099));
    CHECK(!graph_case(2, ALLREDUCE_TWOSHOT, 1, 65536 + 3));
}

TEST(test_oneshot_matches_cpu_sum_on_two_logical_ranks)
{
    CHECK(!group_case(2, ALLREDUCE_ONESHOT, 0));
    CHECK(!group_case(2, ALLREDUCE_ONESHOT, 1));
}

TEST(test_twoshot_matches_cpu_sum_on_two_logical_ranks)
{
    CHECK(!group_case(2, ALLREDUCE_TWOSHOT, 0));
    CHECK(!group_case(2, ALLREDUCE_TWOSHOT, 1));
}

TEST(test_oneshot_matches_cpu_sum_on_four_logical_ranks)
{
    CHECK(!group_case(4, ALLREDUCE_ONESHOT, 0));
    CHECK(!group_case(4, ALLREDUCE_ONESHOT, 1));
}

TEST(test_twoshot_matches_cpu_sum_on_four_logical_ranks)
{
    CHECK(!group_case(4, ALLREDUCE_TWOSHOT, 0));
    CHECK(!group_case(4, ALLREDUCE_TWOSHOT, 1));
}

TEST(test_flag_synchronised_oneshot_and_twoshot_match_cpu_sum)
{
    for (int residual = 0; residual < 2; residual++) {
        CHECK(!flags_case(2, ALLREDUCE_ONESHOT, residual));
        CHECK(!flags_case(2, ALLREDUCE_TWOSHOT, residual));
        CHECK(!flags_case(4, ALLREDUCE_ONESHOT, residual));
        CHECK(!flags_case(4, ALLREDUCE_TWOSHOT, residual));
    }
}

/* allreduce_add_partials (NCCL's finish, and tp emulated on one device) is the
 * residual form's arithmetic: the CPU sum, bit for bit, for 1 and 3 partials. */
TEST(test_residual_add_of_partials_matches_cpu_sum)
{
    for (int n = 1; n <= 3; n += 2) {
        struct ranks r;
        ranks_setup(&r, n, 1, 4242 + n);
        size_t count = 65536 + 3;
        ranks_upload(&r, count);
        uint16_t *want = cpu_sum(&r, count);
        CHECK_EQ_INT(allreduce_add_partials(r.res[0], (const void *const *)r.dev, n, count, 0), 0);
        for (int k = 1; k < n; k++) cudaMemcpy(r.res[k], r.res[0], count * 2, cudaMemcpyDeviceToDevice);
        CHECK(!ranks_match(&r, want, count, "allreduce_add_partials"));
        free(want);
        ranks_free(&r);
    }
}

TEST(test_peer_allgather_places_every_rank_slice)
{
    int n = 3, ordinal[PEER_MAX_RANKS] = {0};
    size_t bytes = 1000;   /* not a multiple of 16 */
    struct peer_group g;
    CHECK_EQ_INT(peer_group_create(n, ordinal, 64, &g), 0);
    void *send[3], *recv[3];
    cudaStream_t s[3];
    for (int k = 0; k < n; k++) {
        cudaMalloc(&send[k], bytes);
        cudaMemset(send[k], 0x10 + k, bytes);
        cudaMalloc(&recv[k], bytes * n);
        cudaMemset(recv[k], 0, bytes * n);
        cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking);
    }
    cudaDeviceSynchronize();
    CHECK_EQ_INT(peer_group_allgather(&g, (const void *const *)send, recv, bytes, s), 0);
    cudaDeviceSynchronize();
    unsigned char *h = (unsigned char *)malloc(bytes * n);
    for (int k = 0; k < n; k++) {
        cudaMemcpy(h, recv[k], bytes * n, cudaMemcpyDeviceToHost);
        for (int j = 0; j < n; j++) CHECK(h[j * bytes] == 0x10 + j && h[j * bytes + bytes - 1] == 0x10 + j);
        cudaFree(send[k]);
        cudaFree(recv[k]);
        cudaStreamDestroy(s[k]);
    }
    free(h);
    peer_group_destroy(&g);
}

TEST(test_peer_allreduce_refuses_more_than_its_buffers_hold)
{
    int ordinal[2] = {0, 0};
    struct peer_group g;
    CHECK_EQ_INT(peer_group_create(2, ordinal, 16, &g), 0);
    void *d[2];
    cudaStream_t s[2];
    for (int k = 0; k < 2; k++) {
        cudaMalloc(&d[k], 64 * 2);
        cudaStreamCreate(&s[k]);
    }
    CHECK(peer_group_allreduce(&g, d, 64, ALLREDUCE_ONESHOT, s) != 0);
    CHECK(peer_group_allreduce(&g, d, 16, ALLREDUCE_NCCL, s) != 0);
    for (int k = 0; k < 2; k++) {
        cudaFree(d[k]);
        cudaStreamDestroy(s[k]);
    }
    peer_group_destroy(&g);
}
