/* bench --calibrate on 2 or more GPUs: the peer-memory all-reduce (kernels/allreduce.h)
 * one-shot and two-shot against NCCL's, bf16 in place, at each calibration_ar_bytes,
 * host wall time per call over back-to-back calls, as nccl-tests times them. The
 * crossovers --allreduce auto uses come from these (calibration_peer_allreduce). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../../kernels/allreduce.h"
#include "cuda_calibrate.h"
#include "cuda_calibrate_check.h"

#define AR_ITERS 50
#define AR_MAX_BYTES (32ull << 20)

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

struct ar_bench {
    int n;
    int ordinal[PEER_MAX_RANKS];   /* rank -> GPU */
    void *buf[PEER_MAX_RANKS];
    cudaStream_t stream[PEER_MAX_RANKS];
    ncclComm_t comm[PEER_MAX_RANKS];
    struct peer_group g;
};

static int one_call(struct ar_bench *b, int algo, size_t count)
{
    int rc = PB_OK;
    if (algo != CALIBRATION_AR_NCCL)
        return peer_group_allreduce(&b->g, b->buf, count,
                                    algo == CALIBRATION_AR_ONESHOT ? ALLREDUCE_ONESHOT : ALLREDUCE_TWOSHOT, b->stream);
    CKN(ncclGroupStart());
    for (int d = 0; d < b->n; d++)
        CKN(ncclAllReduce(b->buf[d], b->buf[d], count, ncclBfloat16, ncclSum, b->comm[d], b->stream[d]));
    CKN(ncclGroupEnd());
done:
    return rc;
}

static int sync_all(struct ar_bench *b)
{
    int rc = PB_OK;
    for (int d = 0; d < b->n; d++) {
        CK(cudaSetDevice(b->ordinal[d]));
        CK(cudaStreamSynchronize(b->stream[d]));
    }
done:
    return rc;
}

static int time_calls(struct ar_bench *b, int algo, size_t count, double *us)
{
    for (int i = 0; i < 5; i++) PB_TRY(one_call(b, algo, count));
    PB_TRY(sync_all(b));
    double t0 = wall_s();
    for (int i = 0; i < AR_ITERS; i++) PB_TRY(one_call(b, algo, count));
    PB_TRY(sync_all(b));
    *us = (wall_s() - t0) / AR_ITERS * 1e6;
    return PB_OK;
}

int calibrate_peer_allreduce(int n, struct calibration *c)
{
    int rc = PB_OK, ordinal[PEER_MAX_RANKS] = {0};
    if (n > PEER_MAX_RANKS) {
        printf("peer all-reduce: not measured on %d GPUs (it supports %d)\n", n, PEER_MAX_RANKS);
        return PB_OK;
    }
    struct ar_bench b = {.n = n};
    for (int d = 0; d < n; d++) ordinal[d] = b.ordinal[d] = d;
    for (int d = 0; d < n; d++) {
        CK(cudaSetDevice(d));
        CK(cudaMalloc(&b.buf[d], AR_MAX_BYTES));
        /* The sums run at the same speed on any values; zeros keep them finite. */
        CK(cudaMemset(b.buf[d], 0, AR_MAX_BYTES));
        CK(cudaDeviceSynchronize());   /* the streams below are non-blocking */
        CK(cudaStreamCreateWithFlags(&b.stream[d], cudaStreamNonBlocking));
    }
    if (peer_group_create(n, ordinal, AR_MAX_BYTES / 2, &b.g) != PB_OK) {
        /* GPUs without P2P between them: the profile keeps its base's table. */
        printf("peer all-reduce: not measured (%s)\n", pb_last_error());
        goto done;
    }
    CKN(ncclCommInitAll(b.comm, n, ordinal));
    for (int s = 0; s < CALIBRATION_AR_SIZES; s++) {
        for (int a = 0; a < CALIBRATION_AR_ALGOS; a++)
            if ((rc = time_calls(&b, a, calibration_ar_bytes[s] / 2, &c->ar_us[a][s])) != PB_OK) goto done;
        printf("all-reduce %d GPUs, %8llu B: one-shot %.1f us, two-shot %.1f us, NCCL %.1f us\n", n,
               (unsigned long long)calibration_ar_bytes[s], c->ar_us[0][s], c->ar_us[1][s], c->ar_us[2][s]);
    }
    rc = peer_group_check(&b.g);
done:
    for (int d = 0; d < n; d++) {
        if (b.comm[d]) ncclCommDestroy(b.comm[d]);
        cudaSetDevice(d);
        if (b.stream[d]) cudaStreamDestroy(b.stream[d]);
        cudaFree(b.buf[d]);
    }
    if (b.g.n) peer_group_destroy(&b.g);
    return rc;
}

/* Holds a stream until the host has enqueued what is to be timed (hold_release). */
struct hold {
    pthread_mutex_t lock;
    pthread_cond_t go;
    int closed;
};

static void CUDART_CB hold_wait(void *arg)
{
    struct hold *h = arg;
    pthread_mutex_lock(&h->lock);
    while (h->closed) pthread_cond_wait(&h->go, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

static void hold_release(struct hold *h)
{
    pthread_mutex_lock(&h->lock);
    h->closed = 0;
    pthread_cond_broadcast(&h->go);
    pthread_mutex_unlock(&h->lock);
}

/* GPU time per call of AR_ITERS calls enqueued while both streams are held, then
 * released at once: the GPU's own cost of the launches and event waits of a call,
 * which a pass pays whether or not its host keeps ahead (host wall time would count
 * the host's enqueueing, which a pass hides behind earlier work). */
static int time_calls_gpu(struct ar_bench *b, int algo, size_t count, double *us)
{
    int rc = PB_OK;
    struct hold h = {.lock = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER, .closed = 1};
    cudaEvent_t e0 = NULL, e1 = NULL, go = NULL, end1 = NULL;
    for (int i = 0; i < 5; i++) PB_TRY(one_call(b, algo, count));
    PB_TRY(sync_all(b));
    CK(cudaSetDevice(b->ordinal[0]));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaEventCreateWithFlags(&go, cudaEventDisableTiming));
    CK(cudaEventCreateWithFlags(&end1, cudaEventDisableTiming));
    if (cudaLaunchHostFunc(b->stream[0], hold_wait, &h) != cudaSuccess) {
        rc = pb_fail("cudaLaunchHostFunc failed holding the shared-GPU all-reduce");
        h.closed = 0;
        goto done;
    }
    CK(cudaEventRecord(go, b->stream[0]));
    CK(cudaEventRecord(e0, b->stream[0]));
    CK(cudaStreamWaitEvent(b->stream[1], go, 0));
    for (int i = 0; i < AR_ITERS && rc == PB_OK; i++) rc = one_call(b, algo, count);
    if (rc == PB_OK) CK(cudaEventRecord(end1, b->stream[1]));
    if (rc == PB_OK) CK(cudaStreamWaitEvent(b->stream[0], end1, 0));
    if (rc == PB_OK) CK(cudaEventRecord(e1, b->stream[0]));
    hold_release(&h);
    if (rc == PB_OK) {
        float ms = 0;
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&ms, e0, e1));
        *us = ms * 1e3 / AR_ITERS;
    }
done:
    hold_release(&h);
    sync_all(b);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (go) cudaEventDestroy(go);
    if (end1) cudaEventDestroy(end1);
    return rc;
}

/* Two logical ranks on GPU 0 (--devices 0,0): the peer all-reduce meets through events
 * there, each phase a launch per rank, as the executor runs tp on logical devices.
 * One-shot and two-shot at 8 KiB and 32 MiB, GPU time per call with the calls queued
 * ahead (time_calls_gpu): the launches and event waits are the fixed cost;
 * calibration_shared_gpu turns them into the profile's shared_gpu section. */
int calibrate_shared_allreduce(struct calibration *c)
{
    int rc = PB_OK;
    const size_t sizes[2] = {8u << 10, AR_MAX_BYTES};
    struct ar_bench b = {.n = 2};
    for (int d = 0; d < b.n; d++) {
        CK(cudaSetDevice(0));
        CK(cudaMalloc(&b.buf[d], AR_MAX_BYTES));
        CK(cudaMemset(b.buf[d], 0, AR_MAX_BYTES));
        CK(cudaDeviceSynchronize());
        CK(cudaStreamCreateWithFlags(&b.stream[d], cudaStreamNonBlocking));
    }
    if (peer_group_create(b.n, b.ordinal, AR_MAX_BYTES / 2, &b.g) != PB_OK) {
        printf("shared-GPU all-reduce: not measured (%s)\n", pb_last_error());
        goto done;
    }
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 2; k++)
            if ((rc = time_calls_gpu(&b, a == 0 ? CALIBRATION_AR_ONESHOT : CALIBRATION_AR_TWOSHOT, sizes[k] / 2,
                                     &c->shared_ar_us[a][k])) != PB_OK)
                goto done;
    printf("all-reduce of 2 logical ranks on GPU 0: one-shot %.1f us (8 KiB), %.1f us (32 MiB); two-shot %.1f us, "
           "%.1f us\n", c->shared_ar_us[0][0], c->shared_ar_us[0][1], c->shared_ar_us[1][0], c->shared_ar_us[1][1]);
    rc = peer_group_check(&b.g);
done:
    cudaSetDevice(0);
    for (int d = 0; d < b.n; d++) {
        if (b.stream[d]) cudaStreamDestroy(b.stream[d]);
        cudaFree(b.buf[d]);
    }
    if (b.g.n) peer_group_destroy(&b.g);
    return rc;
}
