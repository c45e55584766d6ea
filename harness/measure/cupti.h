/* The CUPTI activity collector: kernels (NCCL ones recognised by name), memcpy
 * including peer-to-peer, and memset, decoded into trace records on CUPTI's
 * clock. CUPTI hands buffers to process-wide callbacks, so the collector's state
 * is the one global of the program; it lives in cuda_cupti.c behind these calls. */
#ifndef PB_CUPTI_H
#define PB_CUPTI_H
#include <stddef.h>
#include <stdint.h>
#include "cupti_mode.h"
#include "trace.h"

/* Enable activity collection. Returns PB_OK, or PB_ERR with the reason in `why`
 * (another profiler attached, profiling restricted): the caller then falls back
 * to event timing with busy time unknown. */
int cupti_start(char *why, size_t why_len);
/* Before cupti_start: 1 records one interval per replayed CUDA graph (and every
 * copy and memset) instead of one per kernel (--profile-detail step), so profiled
 * iterations run close to untraced ones. A one-device point's busy time is then
 * its graphs' span; where several logical devices ran, or a pass was launched
 * without a graph, cupti_collect marks busy time unknown. 0 (the default): a
 * record per kernel, busy time exact. */
void cupti_set_detail(int steps_only);
/* Before cupti_start: which kinds, and whether profiled iterations are gated
 * (PB_CUPTI_MODE, cupti_mode.h). The default is gate,copies. */
void cupti_set_mode(const struct cupti_mode *m);
/* 1 while records are being collected and the mode gates profiled iterations: the
 * executor then holds the GPU until an iteration's first graph is launched. */
int cupti_gate_wanted(void);
/* Map a CUDA stream to the run's logical device and stream index; `dst` is the
 * destination logical device of copies issued on it (-1 if none). */
int cupti_register_stream(void *cuda_stream, int device, int stream, int dst);
/* Where a piece of work belongs: logical device and stream, the destination of
 * a copy (-1 if none), and the schedule step and microbatch that issued it. */
struct cupti_place {
    int device, stream, dst;
    int step, microbatch;
};
/* Map a captured CUDA graph node (cudaGraphNode_t) to its place, before the
 * graph is instantiated: replayed work is reported on the launching stream, so
 * records of graph work are placed (and given their step) by node. */
int cupti_register_graph_node(void *graph_node, const struct cupti_place *where);
/* Work launched directly between these two calls belongs to step `step` of
 * microbatch `microbatch` (an external correlation id CUPTI ties to each
 * launch's records). Costs nothing while collection is paused. */
void cupti_push_step(int step, int microbatch);
void cupti_pop_step(void);
/* Logical device of records whose stream was not registered (CUDA ordinal -> device). */
int cupti_map_ordinal(int ordinal, int device);
/* Forget stream and ordinal maps (between strategies: streams are recreated). */
void cupti_clear_maps(void);
/* Flush and append every record since the last call to t, tagged with `iteration`;
 * iteration < 0 discards them (warm-up). Dropped records are added to t->dropped. */
int cupti_collect(struct trace *t, int iteration);
/* Host time on CUPTI's clock (the clock of every activity record). */
uint64_t cupti_now_ns(void);
/* Pause (on = 0) or resume (on = 1) activity collection, keeping the maps.
 * CUPTI timestamps every kernel it records on the GPU (about 5 us a kernel on
 * an H100), so latency is timed with collection paused and busy time comes
 * from separate profiled iterations. Records of work issued while paused are
 * not produced; pending ones stay for the next cupti_collect. */
int cupti_set_collecting(int on);
/* Disable collection and flush what is left (discarded). */
void cupti_stop(void);
/* executor.h's `profiling` and `collect` for the executors CUPTI measures (CUDA,
 * MPI): cupti_set_collecting, and cupti_collect into t (t NULL: discarded). */
int cupti_exec_profiling(void *state, int on);
int cupti_exec_collect(void *state, struct trace *t, int iteration);
#endif
