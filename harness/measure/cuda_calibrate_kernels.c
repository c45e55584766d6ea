/* bench --calibrate, the per-kernel part: cuBLASLt bf16 GEMMs at the row counts a
 * model's prompts and batches give, and the cost of one kernel inside a CUDA graph.
 * Both are timed the way the executor runs a pass: captured into a graph and
 * replayed, so the time per call includes the gap between kernels that the cost
 * model prices as launch overhead. Weights rotate over more memory than L2 holds,
 * as a forward pass never finds a layer's weights in L2. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/llama.h"
#include "../exec/model/calibration.h"
#include "../../base/check.h"
#include "cuda_calibrate.h"
#include "cuda_calibrate_check.h"

#define WEIGHT_COPIES 8             /* 8 x 32 MiB: past the 50 MiB L2 of an H100 */
#define CALLS_PER_GRAPH 64
#define GRAPH_REPS 7
#define WARM_MS 200                 /* untimed replays first, at least this long (time_graph) */
#define LAUNCH_KERNELS 1000
#define LT_WORKSPACE (32u << 20)
#define DECODE_CALLS 16             /* decode layers a graph replays back to back */


/* Buffers and descriptors of the shape being timed. */
struct lt_bench {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t algo;
    void *w[WEIGHT_COPIES], *x, *y, *workspace;
    cudaStream_t s;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median ms of one replay of `g`, after untimed replays of at least WARM_MS. The
 * points --predict is judged on run their passes back to back for seconds, so the GPU
 * is timed there at the clocks it holds under sustained load; a replay of a few ms
 * right after idle can run at boost clocks a compute-bound pass does not keep. */
static int time_graph(cudaGraphExec_t g, cudaStream_t s, double *ms)
{
    int rc = PB_OK;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double v[GRAPH_REPS];
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CK(cudaEventRecord(e0, s));
    for (float warm = 0; warm < WARM_MS;) {
        CK(cudaGraphLaunch(g, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&warm, e0, e1));
    }
    for (int r = 0; r < GRAPH_REPS; r++) {
        float t;
        CK(cudaEventRecord(e0, s));
        CK(cudaGraphLaunch(g, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t, e0, e1));
        v[r] = t;
    }
    *ms = median_of(v, GRAPH_REPS);
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return rc;
}

/* `calls` calls of issue(ctx, s) captured into one graph on s, replayed (time_graph):
 * *us per call. `what` names the calls in messages. */
static int time_captured(cudaStream_t s, int calls, int (*issue)(void *ctx, cudaStream_t s), void *ctx,
                         const char *what, double *us)
{
    int rc = PB_OK;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    double ms = 0;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < calls; i++)
        if (issue(ctx, s) != PB_OK) {
            cudaStreamEndCapture(s, &graph);
            rc = pb_fail("%s failed while capturing", what);
            goto done;
        }
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    if ((rc = time_graph(exec, s, &ms)) != PB_OK) goto done;
    *us = ms * 1e3 / calls;
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    return rc;
}

/* Y[M, N] = X[M, K] W[N, K]^T in column-major terms: C (N x M) = op_T(A: K x N) B (K x M). */
static int lt_setup(struct lt_bench *b, int m)
{
    int rc = PB_OK, found = 0;
    const int n = CALIBRATION_SHAPE_N, k = CALIBRATION_SHAPE_K;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    size_t ws = LT_WORKSPACE;
    CKB(cublasLtMatmulDescCreate(&b->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CKB(cublasLtMatmulDescSetAttribute(b->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CKB(cublasLtMatmulDescSetAttribute(b->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CKB(cublasLtMatrixLayoutCreate(&b->a, CUDA_R_16BF, k, n, k));
    CKB(cublasLtMatrixLayoutCreate(&b->b, CUDA_R_16BF, k, m, k));
    CKB(cublasLtMatrixLayoutCreate(&b->c, CUDA_R_16BF, n, m, n));
    CKB(cublasLtMatmulPreferenceCreate(&b->pref));
    CKB(cublasLtMatmulPreferenceSetAttribute(b->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CKB(cublasLtMatmulAlgoGetHeuristic(b->lt, b->desc, b->a, b->b, b->c, b->c, b->pref, 1, &b->algo, &found));
    if (found < 1) rc = pb_fail("cuBLASLt has no bf16 algorithm for M=%d N=%d K=%d", m, n, k);
done:
    return rc;
}

static void lt_teardown(struct lt_bench *b)
{
    if (b->pref) cublasLtMatmulPreferenceDestroy(b->pref);
    if (b->a) cublasLtMatrixLayoutDestroy(b->a);
    if (b->b) cublasLtMatrixLayoutDestroy(b->b);
    if (b->c) cublasLtMatrixLayoutDestroy(b->c);
    if (b->desc) cublasLtMatmulDescDestroy(b->desc);
    b->pref = NULL;
    b->a = b->b = b->c = NULL;
    b->desc = NULL;
}

/* Capture CALLS_PER_GRAPH GEMMs of M rows, each on the next weight copy; *us per call. */
static int time_shape(struct lt_bench *b, int m, double *us)
{
    int rc = PB_OK;
    const float alpha = 1.0f, beta = 0.0f;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    double ms = 0;
    if ((rc = lt_setup(b, m)) != PB_OK) goto done;
    CK(cudaStreamBeginCapture(b->s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < CALLS_PER_GRAPH; i++) {
        cublasStatus_t st = cublasLtMatmul(b->lt, b->desc, &alpha, b->w[i % WEIGHT_COPIES], b->a, b->x, b->b,
                                           &beta, b->y, b->c, b->y, b->c, &b->algo.algo, b->workspace,
                                           LT_WORKSPACE, b->s);
        if (st != CUBLAS_STATUS_SUCCESS) {
            cudaStreamEndCapture(b->s, &graph);
            rc = pb_fail("cublasLtMatmul (M=%d) failed while capturing: cuBLAS status %d", m, (int)st);
            goto done;
        }
    }
    CK(cudaStreamEndCapture(b->s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    if ((rc = time_graph(exec, b->s, &ms)) != PB_OK) goto done;
    *us = ms * 1e3 / CALLS_PER_GRAPH;
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    lt_teardown(b);
    return rc;
}

static int lt_alloc(struct lt_bench *b, uint16_t *host)
{
    int rc = PB_OK;
    const int max_m = calibration_shape_rows[CALIBRATION_SHAPES - 1];
    const size_t wbytes = (size_t)CALIBRATION_SHAPE_N * CALIBRATION_SHAPE_K * 2;
    const size_t xbytes = (size_t)max_m * CALIBRATION_SHAPE_K * 2, ybytes = (size_t)max_m * CALIBRATION_SHAPE_N * 2;
    calibration_fill_random_bf16(host, wbytes / 2, 4321);
    for (int i = 0; i < WEIGHT_COPIES; i++) {
        CK(cudaMalloc(&b->w[i], wbytes));
        CK(cudaMemcpy(b->w[i], host, wbytes, cudaMemcpyHostToDevice));
    }
    calibration_fill_random_bf16(host, xbytes / 2, 8765);
    CK(cudaMalloc(&b->x, xbytes));
    CK(cudaMemcpy(b->x, host, xbytes, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&b->y, ybytes));
    CK(cudaMalloc(&b->workspace, LT_WORKSPACE));
    CK(cudaStreamCreateWithFlags(&b->s, cudaStreamNonBlocking));
done:
    return rc;
}

int calibrate_gemm_shapes(int dev, struct calibration *c)
{
    int rc = PB_OK;
    struct lt_bench b;
    memset(&b, 0, sizeof b);
    const int max_m = calibration_shape_rows[CALIBRATION_SHAPES - 1];
    size_t host_elems = (size_t)CALIBRATION_SHAPE_N * CALIBRATION_SHAPE_K;
    if ((size_t)max_m * CALIBRATION_SHAPE_K > host_elems) host_elems = (size_t)max_m * CALIBRATION_SHAPE_K;
    uint16_t *host = malloc(host_elems * 2);
    if (!host) return pb_fail("out of host memory for the GEMM shapes' inputs");
    CK(cudaSetDevice(dev));
    CKB(cublasLtCreate(&b.lt));
    if ((rc = lt_alloc(&b, host)) != PB_OK) goto done;
    for (int i = 0; i < CALIBRATION_SHAPES; i++)
        if ((rc = time_shape(&b, calibration_shape_rows[i], &c->shape_us[i])) != PB_OK) goto done;
done:
    for (int i = 0; i < WEIGHT_COPIES; i++) cudaFree(b.w[i]);
    cudaFree(b.x);
    cudaFree(b.y);
    cudaFree(b.workspace);
    if (b.s) cudaStreamDestroy(b.s);
    if (b.lt) cublasLtDestroy(b.lt);
    free(host);
    return rc;
}

/* The kernel core's smallest kernel (one thread adding to a counter), LAUNCH_KERNELS
 * times in one graph: what each kernel of a replayed pass costs beyond its work. */
static int issue_advance(void *pos, cudaStream_t s) { return llama_advance_pos(pos, 1, s); }

int calibrate_graph_launch(int dev, double *us)
{
    int rc = PB_OK;
    int *pos = NULL;
    cudaStream_t s = NULL;
    CK(cudaSetDevice(dev));
    CK(cudaMalloc((void **)&pos, sizeof *pos));
    CK(cudaMemset(pos, 0, sizeof *pos));
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    rc = time_captured(s, LAUNCH_KERNELS, issue_advance, pos, "llama_advance_pos (the launch graph)", us);
done:
    if (s) cudaStreamDestroy(s);
    cudaFree(pos);
    return rc;
}

struct layer_call {
    struct llama_part *p;
    const struct llama_call *call;
};

static int issue_layer(void *ctx, cudaStream_t s)
{
    const struct layer_call *lc = ctx;
    return llama_layers(lc->p, 0, 1, lc->call, s);
}

/* The part a layer timing runs on: `batch` x `seq` tokens, or more where part_rows is
 * above that, as a pipeline stage sized for the whole batch (max_batch part_rows / seq,
 * max_rows part_rows) runs a microbatch: its short-prompt GEMM algorithms are then
 * timed at gemm_tune_rows(part_rows), not at the call's rows (kernels/gemm_class.h). */
static struct llama_part_desc layer_part(int dev, int rank, int world, int batch, int seq, int pos, int part_rows)
{
    int rows = part_rows > batch * seq ? part_rows : batch * seq;
    int max_batch = rows / seq > batch ? rows / seq : batch;
    return (struct llama_part_desc){.device = dev, .rank = rank, .world = world, .first_layer = 0, .n_layers = 1,
                                    .max_batch = max_batch, .max_context = pos + seq + 16, .max_rows = rows,
                                    .programmatic_launch = 1};
}

/* One layer of the model over `batch` x `seq` new tokens at position `pos`,
 * DECODE_CALLS times in one graph: the kernel core's own kernels at the model's
 * shapes (a 7B layer's weights are 400 MB, far past L2), with programmatic launch as
 * the executor runs them, on a part of part_rows (layer_part; 0: the call's rows).
 * seq 1 is a decode step attending to pos + 1 positions. *us per layer. */
static int time_layer(int dev, const struct model_spec *m, int batch, int seq, int pos, int part_rows, double *us)
{
    int rc = PB_OK;
    struct llama_part *p = NULL;
    uint16_t *host = NULL;
    cudaStream_t s = NULL;
    struct llama_part_desc d = layer_part(dev, 0, 1, batch, seq, pos, part_rows);
    struct llama_call call = {.batch_offset = 0, .batch = batch, .seq = seq, .pos = pos};
    CK(cudaSetDevice(dev));
    if (llama_part_create(m, &d, &p) != PB_OK || llama_part_init_random(p, 1) != PB_OK) {
        rc = pb_fail("could not build one layer of %s at %d x %d tokens for the layer timing", m->name, batch, seq);
        goto done;
    }
    /* Random activations: tensor cores run faster on zeros than on real data. */
    size_t elems = (size_t)batch * seq * m->hidden;
    host = malloc(elems * sizeof *host);
    if (!host) {
        rc = pb_fail("out of host memory for a layer's activations");
        goto done;
    }
    calibration_fill_random_bf16(host, elems, 2468);
    CK(cudaMemcpy(llama_part_hidden(p), host, elems * sizeof *host, cudaMemcpyHostToDevice));
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    if (llama_layers(p, 0, 1, &call, s) != PB_OK) {   /* outside the graph: first-call setup */
        rc = pb_fail("llama_layers failed on %d x %d tokens of %s", batch, seq, m->name);
        goto done;
    }
    CK(cudaStreamSynchronize(s));
    struct layer_call lc = {p, &call};
    rc = time_captured(s, DECODE_CALLS, issue_layer, &lc, "llama_layers (one layer of the model)", us);
done:
    if (s) cudaStreamDestroy(s);
    if (p) llama_part_destroy(p);
    free(host);
    return rc;
}

/* One layer on `parts` (1 or 2) one-layer parts of GPU `dev`, as logical devices of
 * --devices 0,0 are: each part its own stream, all branches of one graph (forked from
 * and joined to the first stream), DECODE_CALLS layers on each, so with two parts the
 * GPU interleaves their kernels as it does a pipeline's stages or tp's ranks there.
 * world 1: whole layers (llama_layers); world 2: tensor-parallel ranks 0 and 1 (their
 * attention and MLP halves, without the sums between, which the shared_gpu section
 * prices); parts of part_rows as time_layer's. *us per layer on each part (per pair
 * of layers with two parts). */
static int time_parts(int dev, const struct model_spec *m, int world, int parts, int batch, int seq, int pos,
                      int part_rows, double *us)
{
    int rc = PB_OK;
    struct llama_part *p[2] = {NULL, NULL};
    uint16_t *host = NULL;
    cudaStream_t s[2] = {NULL, NULL};
    cudaEvent_t fork = NULL, join = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    struct llama_call call = {.batch_offset = 0, .batch = batch, .seq = seq, .pos = pos};
    size_t elems = (size_t)batch * seq * m->hidden;
    CK(cudaSetDevice(dev));
    host = malloc(elems * sizeof *host);
    if (!host) {
        rc = pb_fail("out of host memory for a layer's activations");
        goto done;
    }
    calibration_fill_random_bf16(host, elems, 2468);
    for (int k = 0; k < parts; k++) {
        struct llama_part_desc d = layer_part(dev, world > 1 ? k : 0, world, batch, seq, pos, part_rows);
        if (llama_part_create(m, &d, &p[k]) != PB_OK || llama_part_init_random(p[k], 1 + k) != PB_OK) {
            rc = pb_fail("could not build a %s layer of %s at %d x %d tokens for the shared-GPU timing",
                         world > 1 ? "tensor-parallel" : "whole", m->name, batch, seq);
            goto done;
        }
        CK(cudaMemcpy(llama_part_hidden(p[k]), host, elems * sizeof *host, cudaMemcpyHostToDevice));
        CK(cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking));
    }
    for (int pass = 0; pass < 1 + DECODE_CALLS && rc == PB_OK; pass++) {
        /* pass 0: first-call setup outside the graph; then DECODE_CALLS layers captured */
        if (pass == 1) {
            for (int k = 0; k < parts; k++) CK(cudaStreamSynchronize(s[k]));
            CK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
            CK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
            CK(cudaStreamBeginCapture(s[0], cudaStreamCaptureModeThreadLocal));
            CK(cudaEventRecord(fork, s[0]));
            if (parts > 1) CK(cudaStreamWaitEvent(s[1], fork, 0));
        }
        for (int k = 0; k < parts && rc == PB_OK; k++) {
            int bad = world > 1 ? llama_attention(p[k], 0, &call, s[k]) != PB_OK || llama_mlp(p[k], 0, &call, s[k]) != PB_OK
                                : llama_layers(p[k], 0, 1, &call, s[k]) != PB_OK;
            if (bad) rc = pb_fail("the kernel core failed on a layer of %s at %d x %d tokens", m->name, batch, seq);
        }
    }
    if (parts > 1 && rc == PB_OK) CK(cudaEventRecord(join, s[1]));
    if (parts > 1 && rc == PB_OK) CK(cudaStreamWaitEvent(s[0], join, 0));
    if (fork) {
        cudaError_t end = cudaStreamEndCapture(s[0], &graph);
        if (rc == PB_OK && end != cudaSuccess) rc = pb_fail("cudaStreamEndCapture: %s", cudaGetErrorString(end));
    }
    if (rc != PB_OK) goto done;
    CK(cudaGraphInstantiate(&exec, graph, 0));
    double ms = 0;
    if ((rc = time_graph(exec, s[0], &ms)) == PB_OK) *us = ms * 1e3 / DECODE_CALLS;
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (fork) cudaEventDestroy(fork);
    if (join) cudaEventDestroy(join);
    for (int k = 0; k < 2; k++) {
        if (s[k]) cudaStreamDestroy(s[k]);
        if (p[k]) llama_part_destroy(p[k]);
    }
    free(host);
    cudaGetLastError();
    return rc;
}

/* The pairs of one point: whole layers, then tp ranks alone and interleaved. */
static void time_shared_point(int dev, const struct model_spec *m, int batch, int seq, int pos, double *pair,
                              double *tp_one, double *tp_pair)
{
    if (time_parts(dev, m, 1, 2, batch, seq, pos, 0, pair) != PB_OK ||
        (m->heads % 2 == 0 && (time_parts(dev, m, 2, 1, batch, seq, pos, 0, tp_one) != PB_OK ||
                               time_parts(dev, m, 2, 2, batch, seq, pos, 0, tp_pair) != PB_OK)))
        printf("two logical devices on GPU %d, %d x %d tokens: not measured (%s)\n", dev, batch, seq, pb_last_error());
}

int calibrate_model_layers(int dev, const struct model_spec *m, struct calibration *c)
{
    c->decode_model = *m;
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++)
        PB_TRY(time_layer(dev, m, calibration_decode_batch[i], 1, CALIBRATION_DECODE_CONTEXT, 0,
                          &c->decode_layer_us[i]));
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++)
        PB_TRY(time_layer(dev, m, calibration_prompt_batch[i], calibration_prompt_seq[i], 0, 0,
                          &c->prompt_layer_us[i]));
    /* Prompt layers on parts sized for more rows than the call, as a pipeline's stages
     * run their microbatches; a failure leaves the point out (the simulator then prices
     * those calls at the gemm table's fractions for their rows, as before). */
    for (int i = 0; i < CALIBRATION_TUNED_POINTS; i++) {
        int b = calibration_tuned_batch[i], q = calibration_tuned_seq[i], rows = calibration_tuned_part_rows[i];
        if (time_layer(dev, m, b, q, 0, rows, &c->tuned_layer_us[i]) != PB_OK ||
            time_parts(dev, m, 1, 2, b, q, 0, rows, &c->tuned_pair_us[i]) != PB_OK)
            printf("prompt layer of %s, %d x %d tokens on a part of %d rows: not measured (%s)\n", m->name, b, q,
                   rows, pb_last_error());
    }
    /* The same layers as two logical devices of one GPU; a failure leaves the table
     * without that point (the simulator then prices shared compute as serial). */
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++)
        time_shared_point(dev, m, calibration_decode_batch[i], 1, CALIBRATION_DECODE_CONTEXT, &c->decode_pair_us[i],
                          &c->decode_tp_us[i], &c->decode_tp_pair_us[i]);
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++)
        time_shared_point(dev, m, calibration_prompt_batch[i], calibration_prompt_seq[i], 0, &c->prompt_pair_us[i],
                          &c->prompt_tp_us[i], &c->prompt_tp_pair_us[i]);
    return PB_OK;
}
