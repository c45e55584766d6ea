/* Passes replayed from CUDA graphs. A prefill of a 7B model at 1x128 launches
 * about 300 short kernels; launched one by one, the host (and CUPTI's cost per
 * launch) falls behind the GPU. One graph launch per pass hides both behind GPU
 * work. Captured with the same calls the direct path makes, so the kernels, their
 * arguments and the results are the same bit for bit. */
#include <stdlib.h>
#include <string.h>
#include "../../measure/cupti.h"
#include "cuda_exec_internal.h"

/* Captured nodes and the place of the step that made them; CUPTI reports
 * replayed work on the launching stream, so records are placed by node. */
struct capture_nodes {
    cudaGraphNode_t *node;
    struct cupti_place *where;
    int n, cap;
};

static int captured(const struct capture_nodes *c, cudaGraphNode_t node)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (c->node[i] == node) return 1;
    return 0;
}

static int remember(struct capture_nodes *c, cudaGraphNode_t node, const struct cupti_place *where)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 512;
        void *a = realloc(c->node, (size_t)cap * sizeof *c->node), *b = realloc(c->where, (size_t)cap * sizeof *c->where);
        if (a) c->node = a;
        if (b) c->where = b;
        if (!a || !b) return pb_fail("out of host memory capturing a graph");
        c->cap = cap;
    }
    c->node[c->n] = node;
    c->where[c->n++] = *where;
    return PB_OK;
}

static void forget_all(struct capture_nodes *c)
{
    free(c->node);
    free(c->where);
    memset(c, 0, sizeof *c);
}

/* Steps are attributed in issue order, so every node reachable backwards from
 * the stream's frontier that has no owner yet was made by this step. Both queries
 * ask for edge data: kernels launched with programmatic dependent launch leave
 * programmatic edges, and a query without edge data would then fail as lossy
 * (cudaErrorLossyQuery). Only the nodes are used; the edge data is discarded. */
int exec_capture_attribute(struct executor *e, cudaStream_t s, const struct cupti_place *where)
{
    struct capture_nodes *c = e->capture;
    if (!c) return PB_OK;
    enum cudaStreamCaptureStatus status;
    const cudaGraphNode_t *front = NULL;
    const cudaGraphEdgeData *front_edges = NULL;
    size_t n = 0;
    CUDA_TRY(cudaStreamGetCaptureInfo(s, &status, NULL, NULL, &front, &front_edges, &n));
    if (status != cudaStreamCaptureStatusActive) return PB_OK;
    size_t cap = n + 64, top = 0;
    cudaGraphNode_t *stack = malloc(cap * sizeof *stack);
    cudaGraphEdgeData *edges = malloc(cap * sizeof *edges);  /* filled, never read */
    if (!stack || !edges) {
        free(stack);
        free(edges);
        return pb_fail("out of host memory capturing a graph");
    }
    for (size_t i = 0; i < n; i++) stack[top++] = front[i];
    int rc = PB_OK;
    while (top > 0 && rc == PB_OK) {
        cudaGraphNode_t node = stack[--top];
        if (captured(c, node)) continue;
        rc = remember(c, node, where);
        size_t k = 0;
        if (rc == PB_OK && cudaGraphNodeGetDependencies(node, NULL, NULL, &k) != cudaSuccess) k = 0;
        if (rc == PB_OK && top + k > cap) {
            cap = 2 * (top + k);
            cudaGraphNode_t *grown = realloc(stack, cap * sizeof *stack);
            if (grown) stack = grown;
            cudaGraphEdgeData *grown_edges = grown ? realloc(edges, cap * sizeof *edges) : NULL;
            if (grown_edges) edges = grown_edges;
            if (!grown || !grown_edges) rc = pb_fail("out of host memory capturing a graph");
        }
        if (rc == PB_OK && k > 0 && cudaGraphNodeGetDependencies(node, stack + top, edges + top, &k) == cudaSuccess)
            top += k;
    }
    free(stack);
    free(edges);
    return rc;
}

int exec_copy(struct executor *e, void *dst, int dst_logical, const void *src, int src_logical, size_t n,
              cudaStream_t s)
{
    int od = e->c.ordinal[dst_logical], os = e->c.ordinal[src_logical];
    if (od == os) CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
    else if (e->capture) CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, s));
    else CUDA_TRY(cudaMemcpyPeerAsync(dst, od, src, os, n, s));
    return PB_OK;
}

/* No NCCL capture (collectives launch directly). The peer all-reduce is captured:
 * its epoch lives in device memory and its kernels advance it, so each replay is
 * the next call (kernels/allreduce.h), and ranks that share a GPU meet through
 * event waits, which capture as graph edges. Copies between GPUs need peer access,
 * because only a plain copy through unified addressing can be captured. */
static int graph_possible(const struct executor *e)
{
    if (!e->c.use_graph || e->have_comms) return 0;
    for (int a = 0; a < e->c.n_devices; a++)
        for (int b = 0; b < e->c.n_devices; b++)
            if (e->c.ordinal[a] != e->c.ordinal[b] && !e->peer[a][b]) return 0;
    return 1;
}

static cudaStream_t origin(struct executor *e) { return e->stream[0][0]; }

/* Name every captured node's stream to CUPTI, then instantiate (the clones
 * inherit the names). */
static int instantiate(struct executor *e, cudaGraph_t g, const struct capture_nodes *c, cudaGraphExec_t *out)
{
    for (int i = 0; i < c->n; i++) PB_TRY(cupti_register_graph_node(c->node[i], &c->where[i]));
    CUDA_TRY(cudaGraphInstantiate(out, g, 0));
    (void)e;
    return PB_OK;
}

static int capture_pass(struct executor *e, struct plan_exec *pe, int decode, cudaGraphExec_t *out, int *state)
{
    struct capture_nodes c = {0};
    cudaGraph_t g = NULL;
    int generate = e->c.decode != NULL;
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    CUDA_TRY(cudaStreamBeginCapture(origin(e), cudaStreamCaptureModeThreadLocal));
    e->capture = &c;
    int rc = exec_fork_streams(e, e->fork);
    if (rc == PB_OK && decode) rc = exec_issue_pass(e, pe, NULL, NULL, 0, 0, 1, 1, 1, 1, NULL, -1);
    else if (rc == PB_OK) rc = exec_issue_pass(e, pe, NULL, NULL, 0, 0, 0, generate, generate, 1, NULL, -1);
    if (rc == PB_OK) rc = exec_join_streams(e);
    e->capture = NULL;
    cudaSetDevice(e->c.ordinal[0]);
    cudaError_t end = cudaStreamEndCapture(origin(e), &g);
    if (rc == PB_OK && end == cudaSuccess && g) rc = instantiate(e, g, &c, out);
    else if (rc == PB_OK) rc = pb_fail("cudaStreamEndCapture: %s", cudaGetErrorString(end));
    if (g) cudaGraphDestroy(g);
    forget_all(&c);
    cudaGetLastError();   /* a failed capture leaves its error behind; the direct path starts clean */
    *state = rc == PB_OK ? 1 : -1;
    if (rc != PB_OK)
        fprintf(stderr, "bench: note: %s: the %s pass could not be captured into a CUDA graph (%s); "
                        "launching it directly\n", e->c.label, decode ? "decode" : "prefill", pb_last_error());
    return PB_OK;
}

int exec_capture_graphs(struct executor *e)
{
    if (!graph_possible(e)) {
        e->pre_graph_state = e->graph_state = -1;
        return PB_OK;
    }
    PB_TRY(exec_join_streams(e));
    PB_TRY(capture_pass(e, &e->pre, 0, &e->pre_graph, &e->pre_graph_state));
    if (e->c.decode) PB_TRY(capture_pass(e, &e->dec, 1, &e->graph, &e->graph_state));
    else e->graph_state = -1;
    return PB_OK;
}

int exec_graph_replay(struct executor *e, cudaGraphExec_t g)
{
    CUDA_TRY(cudaSetDevice(e->c.ordinal[0]));
    PB_TRY(exec_join_streams(e));
    CUDA_TRY(cudaGraphLaunch(g, origin(e)));
    return exec_fork_streams(e, e->fork);
}
