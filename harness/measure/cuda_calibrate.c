/* bench --calibrate: measures what the cost model needs on the GPUs present (warm
 * up, repeat, take the median, random data for GEMMs, copy bytes counted read +
 * written; docs/COST_MODEL.md) and writes a device profile.
 * Every CUDA, cuBLAS and NCCL call is checked; a failure names the call and line,
 * frees what was allocated, and returns PB_ERR. */
#include "cuda_calibrate.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../base/atomic_file.h"
#include "../exec/model/calibration.h"
#include "../../kernels/gemm_class.h"
#include "../../base/check.h"
#include "../run/results_dir.h"
#include "cuda_calibrate_check.h"

#define GEMM_N 8192
#define COPY_BYTES (1ull << 30)
#define LINK_BYTES (256ull << 20)
#define SMALL_BYTES 4096
#define ALLREDUCE_BYTES (256ull << 20)
#define ALLREDUCE_SMALL_BYTES 8192
#define REPS 10
#define LAUNCHES 2000

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float median(float *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int measure_gemm(int dev, double *tflops)
{
    int rc = PB_OK;
    const size_t elems = (size_t)GEMM_N * GEMM_N, bytes = elems * 2;
    uint16_t *host = NULL;
    void *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t h = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[REPS];
    const float alpha = 1.0f, beta = 0.0f;
    CK(cudaSetDevice(dev));
    host = malloc(bytes);
    if (!host) {
        rc = pb_fail("out of host memory for the GEMM inputs (%zu MiB)", bytes >> 20);
        goto done;
    }
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMalloc(&c, bytes));
    calibration_fill_random_bf16(host, elems, 1234 + (uint64_t)dev);
    CK(cudaMemcpy(a, host, bytes, cudaMemcpyHostToDevice));
    calibration_fill_random_bf16(host, elems, 5678 + (uint64_t)dev);
    CK(cudaMemcpy(b, host, bytes, cudaMemcpyHostToDevice));
    CKB(cublasCreate(&h));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = -3; i < REPS; i++) {   /* three warm-ups: handle set-up, heuristics, clocks */
        CK(cudaEventRecord(e0, 0));
        CKB(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, GEMM_N, GEMM_N, GEMM_N, &alpha, a, CUDA_R_16BF,
                         GEMM_N, b, CUDA_R_16BF, GEMM_N, &beta, c, CUDA_R_16BF, GEMM_N,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        if (i >= 0) CK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    *tflops = 2.0 * GEMM_N * (double)GEMM_N * GEMM_N / (median(ms, REPS) * 1e-3) / 1e12;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (h) cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    free(host);
    return rc;
}

/* Device-to-device copy: bytes read plus bytes written per second. */
static int measure_copy(int dev, double *gbps)
{
    int rc = PB_OK;
    void *src = NULL, *dst = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[REPS];
    CK(cudaSetDevice(dev));
    CK(cudaMalloc(&src, COPY_BYTES));
    CK(cudaMalloc(&dst, COPY_BYTES));
    CK(cudaMemset(src, 0x5a, COPY_BYTES));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = -2; i < REPS; i++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpyAsync(dst, src, COPY_BYTES, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        if (i >= 0) CK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    *gbps = 2.0 * COPY_BYTES / (median(ms, REPS) * 1e-3) / 1e9;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    return rc;
}

/* Per small operation when the host issues them back to back: what a short kernel
 * costs on the GPU timeline. */
static int measure_launch(int dev, double *us)
{
    int rc = PB_OK;
    void *buf = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[5];
    CK(cudaSetDevice(dev));
    CK(cudaMalloc(&buf, 4));
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int r = -1; r < 5; r++) {
        CK(cudaEventRecord(e0, s));
        for (int i = 0; i < LAUNCHES; i++) CK(cudaMemsetAsync(buf, i & 0xff, 4, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    *us = median(ms, 5) * 1e3 / LAUNCHES;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (s) cudaStreamDestroy(s);
    cudaFree(buf);
    return rc;
}

/* Median time of one copy (large: bandwidth, small: latency), on stream s of the
 * current device; kind cudaMemcpyDefault covers host->device and peer copies. */
static int time_copies(void *dst, const void *src, size_t bytes, cudaStream_t s, float *median_ms)
{
    int rc = PB_OK;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[REPS];
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = -2; i < REPS; i++) {
        CK(cudaEventRecord(e0, s));
        CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        if (i >= 0) CK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    *median_ms = median(ms, REPS);
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return rc;
}

static int measure_h2d(int dev, double *gbps, double *latency_us)
{
    int rc = PB_OK;
    void *host = NULL, *d = NULL;
    cudaStream_t s = NULL;
    float big, small;
    CK(cudaSetDevice(dev));
    CK(cudaMallocHost(&host, LINK_BYTES));
    memset(host, 0x5a, LINK_BYTES);
    CK(cudaMalloc(&d, LINK_BYTES));
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    if ((rc = time_copies(d, host, LINK_BYTES, s, &big)) != PB_OK) goto done;
    if ((rc = time_copies(d, host, SMALL_BYTES, s, &small)) != PB_OK) goto done;
    *gbps = LINK_BYTES / (big * 1e-3) / 1e9;
    *latency_us = small * 1e3;
done:
    if (s) cudaStreamDestroy(s);
    cudaFree(d);
    cudaFreeHost(host);
    return rc;
}

/* Turn on peer access i -> j where the hardware allows it; *ok says whether it did. */
static int enable_peer(int i, int j, int *ok)
{
    int rc = PB_OK, can = 0;
    CK(cudaDeviceCanAccessPeer(&can, i, j));
    *ok = can;
    if (!can) return PB_OK;
    CK(cudaSetDevice(i));
    cudaError_t e = cudaDeviceEnablePeerAccess(j, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();   /* not an error for us; keep it out of later checks */
    } else if (e != cudaSuccess) {
        rc = pb_fail("cudaDeviceEnablePeerAccess(%d -> %d) failed: %s", i, j, cudaGetErrorString(e));
    }
done:
    return rc;
}

static int measure_peer(int i, int j, double *gbps, double *latency_us, int *access)
{
    int rc = PB_OK, ij = 0, ji = 0;
    void *src = NULL, *dst = NULL;
    cudaStream_t s = NULL;
    float big, small;
    if ((rc = enable_peer(i, j, &ij)) != PB_OK || (rc = enable_peer(j, i, &ji)) != PB_OK) return rc;
    *access = ij && ji;
    CK(cudaSetDevice(j));
    CK(cudaMalloc(&dst, LINK_BYTES));
    CK(cudaSetDevice(i));
    CK(cudaMalloc(&src, LINK_BYTES));
    CK(cudaMemset(src, 0x5a, LINK_BYTES));
    /* The executor issues peer copies on the source device's stream; so do we. */
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    if ((rc = time_copies(dst, src, LINK_BYTES, s, &big)) != PB_OK) goto done;
    if ((rc = time_copies(dst, src, SMALL_BYTES, s, &small)) != PB_OK) goto done;
    *gbps = LINK_BYTES / (big * 1e-3) / 1e9;
    *latency_us = small * 1e3;
done:
    if (s) cudaStreamDestroy(s);
    cudaFree(src);
    if (dst) {
        cudaSetDevice(j);
        cudaFree(dst);
    }
    return rc;
}

/* Host wall time per all-reduce of `bytes` on every GPU, averaged over `iters`. */
static int time_allreduce(int n, ncclComm_t *comms, float **buf, cudaStream_t *streams, size_t bytes,
                          int iters, double *seconds)
{
    int rc = PB_OK;
    double t0 = 0;
    for (int it = -2; it < iters; it++) {
        if (it == 0) {
            for (int d = 0; d < n; d++) {
                CK(cudaSetDevice(d));
                CK(cudaStreamSynchronize(streams[d]));
            }
            t0 = now_s();
        }
        CKN(ncclGroupStart());
        for (int d = 0; d < n; d++)
            CKN(ncclAllReduce(buf[d], buf[d], bytes / sizeof(float), ncclFloat, ncclSum, comms[d], streams[d]));
        CKN(ncclGroupEnd());
    }
    for (int d = 0; d < n; d++) {
        CK(cudaSetDevice(d));
        CK(cudaStreamSynchronize(streams[d]));
    }
    *seconds = (now_s() - t0) / iters;
done:
    return rc;
}

static int measure_allreduce(int n, struct calibration *c)
{
    int rc = PB_OK;
    ncclComm_t comms[PB_MAX_DEVICES] = {0};
    float *buf[PB_MAX_DEVICES] = {0};
    cudaStream_t streams[PB_MAX_DEVICES] = {0};
    double big = 0, small = 0;
    /* NVLink multicast can take a shared host's GPUs down; keep it off unless the
     * user has decided otherwise. */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    for (int d = 0; d < n; d++) {
        CK(cudaSetDevice(d));
        CK(cudaMalloc((void **)&buf[d], ALLREDUCE_BYTES));
        /* NCCL's sum runs at the same speed on any values; zeros keep it finite. */
        CK(cudaMemset(buf[d], 0, ALLREDUCE_BYTES));
        CK(cudaStreamCreateWithFlags(&streams[d], cudaStreamNonBlocking));
    }
    CKN(ncclCommInitAll(comms, n, NULL));
    if ((rc = time_allreduce(n, comms, buf, streams, ALLREDUCE_BYTES, 5, &big)) != PB_OK) goto done;
    if ((rc = time_allreduce(n, comms, buf, streams, ALLREDUCE_SMALL_BYTES, 100, &small)) != PB_OK) goto done;
    c->allreduce_bytes = ALLREDUCE_BYTES;
    c->allreduce_bus_gbps = 2.0 * (n - 1) / n * ALLREDUCE_BYTES / big / 1e9;
    c->allreduce_small_us = small * 1e6;
done:
    for (int d = 0; d < n; d++) {
        if (comms[d]) ncclCommDestroy(comms[d]);
        cudaSetDevice(d);
        if (streams[d]) cudaStreamDestroy(streams[d]);
        cudaFree(buf[d]);
    }
    return rc;
}

/* How many GPUs to measure: --gpus N of the visible ones, or all. */
static int gpu_count(const struct options *o, int *n)
{
    int present = 0;
    cudaError_t e = cudaGetDeviceCount(&present);
    if (e != cudaSuccess || present == 0)
        return pb_fail("--calibrate measures the GPUs of this machine, and none is visible (%s); "
                       "without GPUs use --simulate --gpu-profile h100|h200|a100|l40s|rtx4090",
                       e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0");
    if (o->gpus > present)
        return pb_fail("--gpus %d but %d GPU(s) are visible", o->gpus, present);
    *n = o->gpus > 0 ? o->gpus : present;
    if (*n > PB_MAX_DEVICES) *n = PB_MAX_DEVICES;
    return PB_OK;
}

/* GEMMs at the model's row counts on GPU 0, printed as achieved rates. */
static int measure_shapes(struct calibration *c)
{
    PB_TRY(calibrate_gemm_shapes(0, c));
    for (int i = 0; i < CALIBRATION_SHAPES; i++) {
        double m = calibration_shape_rows[i], n = CALIBRATION_SHAPE_N, k = CALIBRATION_SHAPE_K;
        double s = c->shape_us[i] * 1e-6;
        printf("GEMM [%4.0f, %.0f] x [%.0f, %.0f]^T in a graph: %8.2f us a call, %6.1f TFLOP/s, %6.0f GB/s\n",
               m, k, n, k, c->shape_us[i], 2 * m * n * k / s / 1e12, (n * k + m * k + m * n) * 2 / s / 1e9);
    }
    fflush(stdout);
    return PB_OK;
}

/* Decode layers of the model on GPU 0; a failure costs the GEMV table only (the base's stays). */
static void measure_decode(const struct options *o, struct calibration *c)
{
    char path[4096];
    struct model_spec m;
    const char *name = o->model_path ? o->model_path : "llama-2-7b";
    if (model_spec_load(model_resolve_path(name, path, sizeof path), &m) != PB_OK ||
        calibrate_model_layers(0, &m, c) != PB_OK) {
        fprintf(stderr, "bench: warning: model layers not timed (%s); the GEMV table and the GEMM "
                        "points at prompt rows stay as the microbenchmarks above give them\n", pb_last_error());
        memset(c->decode_layer_us, 0, sizeof c->decode_layer_us);
        memset(c->prompt_layer_us, 0, sizeof c->prompt_layer_us);
        memset(c->tuned_layer_us, 0, sizeof c->tuned_layer_us);
        memset(c->tuned_pair_us, 0, sizeof c->tuned_pair_us);
        return;
    }
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++)
        printf("decode layer of %s, batch %2d at %d positions, in a graph: %8.2f us\n", m.name,
               calibration_decode_batch[i], CALIBRATION_DECODE_CONTEXT, c->decode_layer_us[i]);
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++)
        printf("prompt layer of %s, %d x %d tokens, in a graph: %8.2f us\n", m.name, calibration_prompt_batch[i],
               calibration_prompt_seq[i], c->prompt_layer_us[i]);
    for (int i = 0; i < CALIBRATION_TUNED_POINTS; i++) {
        int b = calibration_tuned_batch[i], q = calibration_tuned_seq[i];
        double at_own = 0;   /* the same tokens on a part of their own rows, where timed above */
        for (int j = 0; j < CALIBRATION_PROMPT_POINTS; j++)
            if (calibration_prompt_batch[j] == b && calibration_prompt_seq[j] == q) at_own = c->prompt_layer_us[j];
        printf("prompt layer of %s, %d x %d tokens on a part tuned at %d rows, in a graph: %8.2f us", m.name, b, q,
               gemm_tune_rows(calibration_tuned_part_rows[i]), c->tuned_layer_us[i]);
        if (at_own > 0 && c->tuned_layer_us[i] > 0) printf(" (%.3f x on its own rows' part)", c->tuned_layer_us[i] / at_own);
        printf("\n");
    }
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++)
        printf("two logical devices on GPU 0, a decode layer each, batch %2d: %8.2f us a pair (%.3f x twice one)\n",
               calibration_decode_batch[i], c->decode_pair_us[i],
               c->decode_layer_us[i] > 0 ? c->decode_pair_us[i] / (2 * c->decode_layer_us[i]) : 0);
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++)
        printf("two logical devices on GPU 0, a prompt layer each, %d x %d: %8.2f us a pair (%.3f x twice one)\n",
               calibration_prompt_batch[i], calibration_prompt_seq[i], c->prompt_pair_us[i],
               c->prompt_layer_us[i] > 0 ? c->prompt_pair_us[i] / (2 * c->prompt_layer_us[i]) : 0);
    for (int i = 0; i < CALIBRATION_TUNED_POINTS; i++)
        printf("two logical devices on GPU 0, a prompt layer each, %d x %d on parts tuned at %d rows: %8.2f us a pair "
               "(%.3f x twice one)\n", calibration_tuned_batch[i], calibration_tuned_seq[i],
               gemm_tune_rows(calibration_tuned_part_rows[i]), c->tuned_pair_us[i],
               c->tuned_layer_us[i] > 0 ? c->tuned_pair_us[i] / (2 * c->tuned_layer_us[i]) : 0);
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++)
        printf("tp ranks 0, 1 of 2 on GPU 0, decode batch %2d: rank 0 alone %8.2f us, both %8.2f us (%.3f x twice one)\n",
               calibration_decode_batch[i], c->decode_tp_us[i], c->decode_tp_pair_us[i],
               c->decode_tp_us[i] > 0 ? c->decode_tp_pair_us[i] / (2 * c->decode_tp_us[i]) : 0);
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++)
        printf("tp ranks 0, 1 of 2 on GPU 0, prompt %d x %d: rank 0 alone %8.2f us, both %8.2f us (%.3f x twice one)\n",
               calibration_prompt_batch[i], calibration_prompt_seq[i], c->prompt_tp_us[i], c->prompt_tp_pair_us[i],
               c->prompt_tp_us[i] > 0 ? c->prompt_tp_pair_us[i] / (2 * c->prompt_tp_us[i]) : 0);
    fflush(stdout);
}

static int measure_all(int n, struct calibration *c)
{
    int rc = PB_OK;
    struct cudaDeviceProp prop;
    c->n_gpus = n;
    for (int d = 0; d < n; d++) {
        size_t free_b, total_b;
        CK(cudaGetDeviceProperties(&prop, d));
        if (d == 0) snprintf(c->gpu, sizeof c->gpu, "%.95s", prop.name);
        else if (strcmp(prop.name, c->gpu))
            fprintf(stderr, "bench: warning: GPU %d is a %s, GPU 0 a %s; the profile takes the slowest\n",
                    d, prop.name, c->gpu);
        CK(cudaSetDevice(d));
        CK(cudaMemGetInfo(&free_b, &total_b));
        if (d == 0 || total_b < c->memory_bytes) c->memory_bytes = total_b;
        PB_TRY(measure_gemm(d, &c->gemm_tflops[d]));
        PB_TRY(measure_copy(d, &c->copy_gbps[d]));
        printf("GPU %d %s: bf16 GEMM %.0f TFLOP/s, copy %.0f GB/s (read + write), %.1f GiB\n", d,
               prop.name, c->gemm_tflops[d], c->copy_gbps[d], total_b / (double)(1ull << 30));
        fflush(stdout);
    }
    PB_TRY(measure_launch(0, &c->launch_us));
    PB_TRY(calibrate_graph_launch(0, &c->graph_launch_us));
    PB_TRY(measure_h2d(0, &c->h2d_gbps, &c->h2d_latency_us));
    printf("launch %.2f us per small operation, %.2f us per kernel in a CUDA graph; host->GPU 0 %.1f GB/s, "
           "%.1f us small copy\n", c->launch_us, c->graph_launch_us, c->h2d_gbps, c->h2d_latency_us);
    PB_TRY(measure_shapes(c));
    c->peer_access = 1;
    float lat[PB_MAX_DEVICES * PB_MAX_DEVICES];
    int nl = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double l = 0;
            int access = 0;
            PB_TRY(measure_peer(i, j, &c->peer_gbps[i][j], &l, &access));
            c->peer_access &= access;
            lat[nl++] = (float)l;
            printf("peer %d -> %d: %.1f GB/s one way%s, %.1f us small copy\n", i, j, c->peer_gbps[i][j],
                   access ? "" : " (no P2P access)", l);
        }
    if (nl) c->peer_latency_us = median(lat, nl);
    if (n > 1) {
        PB_TRY(measure_allreduce(n, c));
        printf("NCCL all-reduce %d GPUs: %.0f MiB at %.0f GB/s bus bandwidth; 8 KiB in %.1f us\n", n,
               (double)c->allreduce_bytes / (1 << 20), c->allreduce_bus_gbps, c->allreduce_small_us);
        PB_TRY(calibrate_peer_allreduce(n, c));
    }
    PB_TRY(calibrate_shared_allreduce(c));   /* logical devices on GPU 0 (--devices 0,0) */
done:
    return rc;
}

int run_calibrate(const struct options *o)
{
    static struct calibration c;          /* large (peer matrix); one per process */
    static struct device_profile base, out;
    int n = 0;
    PB_TRY(gpu_count(o, &n));
    memset(&c, 0, sizeof c);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(c.date, sizeof c.date, "%Y-%m-%d", &tm);
    printf("calibrating %d GPU(s): GEMM, copies, launch, GEMM shapes, links%s, decode layers\n", n, n > 1 ? ", NCCL all-reduce" : "");
    PB_TRY(measure_all(n, &c));
    measure_decode(o, &c);

    const char *base_name = calibration_base_name(c.gpu);
    int have_base = base_name && device_profile_load(base_name, &base) == PB_OK;
    if (!base_name)
        fprintf(stderr, "bench: note: no shipped profile for \"%s\"; datasheet peaks are set to the "
                        "measurements\n", c.gpu);
    PB_TRY(calibration_to_profile(&c, have_base ? &base : NULL, &out));

    char dir[4096], file[128], path[4300];
    PB_TRY(results_dir_create(o->out_dir, "calibrate", "", dir, sizeof dir));
    snprintf(file, sizeof file, "%s.json", out.name);
    PB_TRY(path_join(path, sizeof path, dir, file));
    PB_TRY(device_profile_write(&out, path));
    printf("wrote %s\nuse it with: bench --simulate --gpu-profile %s --model ...\n", path, path);
    return PB_OK;
}
