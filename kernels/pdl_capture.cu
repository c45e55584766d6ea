/* The launch-completion edge out of a library kernel under stream capture (pdl.h). */
#include "pdl.h"

static int early_mode = PDL_EARLY_ON;
/* The node pdl_capture_keep last named on this thread (captures are thread-local). */
static thread_local cudaGraphNode_t kept_node = NULL;
void pdl_set_early(int mode) { early_mode = mode; }
int pdl_early(void) { return early_mode; }

/* Edges into the upstream node that are looked at; one with more is left alone. */
#define PDL_MAX_IN 8

/* An edge that fires only when its upstream has ended, with memory visibility. */
static bool edge_is_full(const cudaGraphEdgeData &e)
{
    return e.from_port == cudaGraphKernelNodePortDefault && e.type == cudaGraphDependencyTypeDefault;
}

/* The nodes the next captured launch on s will depend on (*n 0 when s is not capturing). */
static cudaError_t capture_deps(cudaStream_t s, const cudaGraphNode_t **deps, const cudaGraphEdgeData **edges,
                                size_t *n)
{
    cudaStreamCaptureStatus status;
    *n = 0;
    cudaError_t e = cudaStreamIsCapturing(s, &status);
    if (e != cudaSuccess || status != cudaStreamCaptureStatusActive) return e;
    return cudaStreamGetCaptureInfo(s, &status, NULL, NULL, deps, edges, n);
}

cudaError_t pdl_capture_early(cudaStream_t s, int *early)
{
    *early = 0;
    if (early_mode == PDL_EARLY_OFF) return cudaSuccess;
    const cudaGraphNode_t *deps = NULL;
    const cudaGraphEdgeData *edges = NULL;
    size_t n = 0;
    cudaError_t e = capture_deps(s, &deps, &edges, &n);
    if (e != cudaSuccess || n != 1) return e;
    if (edges && !edge_is_full(edges[0])) return cudaSuccess;  /* already set (by a caller, or a second launch with nothing between) */
    cudaGraphNode_t up = deps[0];
    if (up == kept_node) return cudaSuccess;
    cudaGraphNodeType type;
    if ((e = cudaGraphNodeGetType(up, &type)) != cudaSuccess || type != cudaGraphNodeTypeKernel) return e;
    cudaGraphNode_t in[PDL_MAX_IN];
    cudaGraphEdgeData in_edges[PDL_MAX_IN];
    size_t n_in = PDL_MAX_IN;  /* a full answer may hide more: such a node is left alone */
    if ((e = cudaGraphNodeGetDependencies(up, in, in_edges, &n_in)) != cudaSuccess) return e;
    if (n_in >= PDL_MAX_IN) return cudaSuccess;
    for (size_t i = 0; i < n_in; i++)  /* an upstream that itself started early: its edge stays */
        if (!edge_is_full(in_edges[i])) return cudaSuccess;
    cudaGraphEdgeData edge = {};
    edge.from_port = cudaGraphKernelNodePortLaunchCompletion;
    edge.type = cudaGraphDependencyTypeProgrammatic;
    if ((e = cudaStreamUpdateCaptureDependencies(s, &up, &edge, 1, cudaStreamSetCaptureDependencies)) != cudaSuccess)
        return e;
    *early = 1;
    return cudaSuccess;
}

cudaError_t pdl_capture_keep(cudaStream_t s)
{
    const cudaGraphNode_t *deps = NULL;
    const cudaGraphEdgeData *edges = NULL;
    size_t n = 0;
    cudaError_t e = capture_deps(s, &deps, &edges, &n);
    if (e == cudaSuccess && n == 1) kept_node = deps[0];
    return e;
}
