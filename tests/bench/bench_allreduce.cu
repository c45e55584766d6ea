/* All-reduce latency by message size (docs/PERF.md): the peer-memory one-shot and
 * two-shot (kernels/allreduce.h) and NCCL's, bf16 sums in place, 8 KiB to 32 MiB.
 * Figures as nccl-tests defines them: time = wall clock of `iters` back-to-back
 * calls on every rank / iters; algbw = bytes / time; busbw = algbw x 2(n-1)/n.
 * "wrong" counts elements of one checked call that differ from the CPU sum (bits
 * for the peer sums, which are exact fp32 sums in rank order; beyond bf16 rounding
 * for NCCL's, whose order is its own).
 * --residual: the form tensor parallelism calls (allreduce.h): the sum of the ranks'
 * inputs added to a residual every rank holds, one rounding; NCCL's sum is followed
 * by allreduce_add_partials, as the executor does. The bytes in the table stay the
 * message's (the residual is read and written on each rank's own GPU).
 * usage: bench_allreduce [--devices 0,1,...] [--iters N] [--residual]
 *   default: every visible GPU when there are two or more, else logical ranks 0,0
 *   (one GPU: ranks meet through events, and NCCL cannot run). */
#include <chrono>
#include <math.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include <cuda_bf16.h>
#include "../../kernels/allreduce.h"

#define CU(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)
#define NC(x) do { ncclResult_t r_ = (x); if (r_ != ncclSuccess) { fprintf(stderr, "%s: %s\n", #x, ncclGetErrorString(r_)); exit(1); } } while (0)
#define TRY(x) do { if ((x) != 0) { fprintf(stderr, "failed: %s\n", #x); exit(1); } } while (0)

static const size_t MAX_BYTES = (size_t)32 << 20;

struct bench {
    int n, distinct;
    int residual;                     /* --residual: sums go to res[k] plus its values */
    void *res[PEER_MAX_RANKS];
    std::vector<uint16_t> res_input;  /* the residual every rank starts from */
    int ordinal[PEER_MAX_RANKS];
    void *buf[PEER_MAX_RANKS];
    cudaStream_t stream[PEER_MAX_RANKS];
    struct peer_group g;
    ncclComm_t comm[PEER_MAX_RANKS];
    std::vector<uint16_t> input[PEER_MAX_RANKS];
};

static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static void upload(struct bench *b, size_t count)
{
    for (int k = 0; k < b->n; k++) {
        CU(cudaSetDevice(b->ordinal[k]));
        CU(cudaMemcpy(b->buf[k], b->input[k].data(), count * 2, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(b->res[k], b->res_input.data(), count * 2, cudaMemcpyHostToDevice));
        CU(cudaDeviceSynchronize());   /* the ranks' streams are non-blocking */
    }
}

static void call(struct bench *b, enum allreduce_algo algo, size_t count)
{
    if (algo != ALLREDUCE_NCCL) {
        if (b->residual)
            TRY(peer_group_allreduce_residual(&b->g, (const void *const *)b->buf, b->res, count, algo, b->stream));
        else
            TRY(peer_group_allreduce(&b->g, b->buf, count, algo, b->stream));
        return;
    }
    NC(ncclGroupStart());
    for (int k = 0; k < b->n; k++)
        NC(ncclAllReduce(b->buf[k], b->buf[k], count, ncclBfloat16, ncclSum, b->comm[k], b->stream[k]));
    NC(ncclGroupEnd());
    for (int k = 0; b->residual && k < b->n; k++) {
        CU(cudaSetDevice(b->ordinal[k]));
        const void *sum = b->buf[k];
        TRY(allreduce_add_partials(b->res[k], &sum, 1, count, b->stream[k]));
    }
}

static void sync_all(struct bench *b)
{
    for (int k = 0; k < b->n; k++) {
        CU(cudaSetDevice(b->ordinal[k]));
        CU(cudaStreamSynchronize(b->stream[k]));
    }
}

/* Elements of every rank's result that differ from the CPU's fp32 sum in rank order. */
static long wrong(struct bench *b, enum allreduce_algo algo, size_t count)
{
    upload(b, count);
    call(b, algo, count);
    sync_all(b);
    std::vector<uint16_t> got(count);
    long bad = 0;
    for (int k = 0; k < b->n; k++) {
        CU(cudaSetDevice(b->ordinal[k]));
        CU(cudaMemcpy(got.data(), b->residual ? b->res[k] : b->buf[k], count * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < count; i++) {
            float acc = 0.f;
            for (int r = 0; r < b->n; r++) acc += from_bf16(b->input[r][i]);
            if (b->residual) acc = from_bf16(b->res_input[i]) + acc;
            uint16_t want = to_bf16(acc);
            if (algo != ALLREDUCE_NCCL) bad += got[i] != want;
            else bad += fabsf(from_bf16(got[i]) - acc) > fabsf(acc) / 64 + 1e-2f;
        }
    }
    TRY(peer_group_check(&b->g));
    return bad;
}

static double time_us(struct bench *b, enum allreduce_algo algo, size_t count, int iters)
{
    for (int i = 0; i < 10; i++) call(b, algo, count);
    sync_all(b);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) call(b, algo, count);
    sync_all(b);
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
}

static void setup(struct bench *b)
{
    b->distinct = 1;
    for (int a = 0; a < b->n; a++)
        for (int c = 0; c < a; c++) b->distinct &= b->ordinal[a] != b->ordinal[c];
    TRY(peer_group_create(b->n, b->ordinal, MAX_BYTES / 2, &b->g));
    uint64_t s = 88172645463325252ull;
    for (int k = 0; k < b->n; k++) {
        CU(cudaSetDevice(b->ordinal[k]));
        CU(cudaMalloc(&b->buf[k], MAX_BYTES));
        CU(cudaMalloc(&b->res[k], MAX_BYTES));
        CU(cudaStreamCreateWithFlags(&b->stream[k], cudaStreamNonBlocking));
        b->input[k].resize(MAX_BYTES / 2);
        for (auto &v : b->input[k]) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            v = to_bf16((float)((s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1);
        }
    }
    b->res_input.resize(MAX_BYTES / 2);
    for (auto &v : b->res_input) {   /* a residual stream some 16 times the partials */
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v = to_bf16(((float)((s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1) * 16);
    }
    if (b->distinct) NC(ncclCommInitAll(b->comm, b->n, b->ordinal));
}

int main(int argc, char **argv)
{
    struct bench b;
    memset(&b.ordinal, 0, sizeof b.ordinal);
    b.n = 0;
    b.residual = 0;
    int iters = 100, visible = 0;
    CU(cudaGetDeviceCount(&visible));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
            for (char *t = strtok(argv[++i], ","); t && b.n < PEER_MAX_RANKS; t = strtok(NULL, ","))
                b.ordinal[b.n++] = atoi(t);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--residual")) {
            b.residual = 1;
        } else {
            fprintf(stderr, "usage: bench_allreduce [--devices 0,1,...] [--iters N] [--residual]\n");
            return 2;
        }
    }
    if (!b.n) {
        b.n = visible >= 2 ? (visible < PEER_MAX_RANKS ? visible : PEER_MAX_RANKS) : 2;
        for (int k = 0; k < b.n; k++) b.ordinal[k] = visible >= 2 ? k : 0;
    }
    if (b.n < 2 || iters < 1) {
        fprintf(stderr, "bench_allreduce: needs at least 2 ranks (--devices) and --iters >= 1\n");
        return 2;
    }
    setup(&b);
    printf("# %d ranks on GPUs", b.n);
    for (int k = 0; k < b.n; k++) printf(" %d", b.ordinal[k]);
    printf(" (%s), %d iterations%s; busbw = algbw x 2(n-1)/n\n",
           b.distinct ? "distinct GPUs: peer access, flags" : "logical ranks on shared GPUs: events", iters,
           b.residual ? ", sums added to a residual" : "");
    printf("%12s %10s %8s %10s %10s %10s %8s\n", "size_B", "count", "algo", "time_us", "algbw_GBs", "busbw_GBs",
           "wrong");
    enum allreduce_algo algos[3] = {ALLREDUCE_ONESHOT, ALLREDUCE_TWOSHOT, ALLREDUCE_NCCL};
    for (size_t bytes = 8192; bytes <= MAX_BYTES; bytes *= 2)
        for (int a = 0; a < 3; a++) {
            if (algos[a] == ALLREDUCE_NCCL && !b.distinct) continue;
            size_t count = bytes / 2;
            long bad = wrong(&b, algos[a], count);
            double us = time_us(&b, algos[a], count, iters);
            double algbw = bytes / (us * 1e3);
            printf("%12zu %10zu %8s %10.2f %10.2f %10.2f %8ld\n", bytes, count, allreduce_algo_name(algos[a]), us, algbw,
                   algbw * 2.0 * (b.n - 1) / b.n, bad);
            fflush(stdout);
        }
    peer_group_destroy(&b.g);
    return 0;
}
