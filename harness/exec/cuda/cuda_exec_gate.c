/* The host gate of profiled iterations (PB_CUPTI_MODE=gate, cupti_mode.h). On an
 * H200 (docs/PERF.md) a traced 1x128 prefill ran +25.7% over the untraced one, a
 * traced generate of 32 decode passes (as many kernels a pass, as short) +1.1%, and
 * that with its own prefill in it: a per-kernel cost on the GPU would have shown in
 * every decode pass, so the cost is taken to be on the host around the traced graph
 * launch, which a prefill meets right after its start event while later passes are
 * launched ahead of the GPU. scripts/cupti_overhead.sh confirmed it on the H200:
 * at 1x128 the profiled iterations ran +23.0% without the gate and -1.2% with it
 * (docs/PERF.md). A host function on the origin stream holds the GPU before the start event
 * until the first graph has been launched; the GPU then replays it as untraced
 * iterations do. A wait gives up after GATE_TIMEOUT_S, so an error between closing
 * and opening cannot hang the run. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cuda_exec_internal.h"

#define GATE_TIMEOUT_S 10

struct exec_gate {
    pthread_mutex_t lock;
    pthread_cond_t opened;
    int closed;
    int timed_out;
};

static void CUDART_CB hold(void *arg)
{
    struct exec_gate *g = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += GATE_TIMEOUT_S;
    pthread_mutex_lock(&g->lock);
    int rc = 0;
    while (g->closed && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&g->opened, &g->lock, &deadline);
    if (g->closed) g->timed_out = 1;
    g->closed = 0;
    pthread_mutex_unlock(&g->lock);
}

int exec_gate_close(struct executor *e, cudaStream_t s)
{
    if (!e->gate) {
        e->gate = calloc(1, sizeof *e->gate);
        if (!e->gate) return pb_fail("out of host memory for the profiling gate");
        pthread_mutex_init(&e->gate->lock, NULL);
        pthread_cond_init(&e->gate->opened, NULL);
    }
    pthread_mutex_lock(&e->gate->lock);
    e->gate->closed = 1;
    pthread_mutex_unlock(&e->gate->lock);
    cudaError_t r = cudaLaunchHostFunc(s, hold, e->gate);
    if (r != cudaSuccess) {
        exec_gate_open(e);
        return pb_fail("cudaLaunchHostFunc (the profiling gate): %s", cudaGetErrorString(r));
    }
    return PB_OK;
}

void exec_gate_open(struct executor *e)
{
    if (!e->gate) return;
    pthread_mutex_lock(&e->gate->lock);
    e->gate->closed = 0;
    pthread_cond_broadcast(&e->gate->opened);
    int late = e->gate->timed_out;
    e->gate->timed_out = 0;
    pthread_mutex_unlock(&e->gate->lock);
    if (late)
        fprintf(stderr, "bench: note: %s: the profiling gate opened itself after %d s (the first graph was not "
                        "launched in time); that iteration's time includes the wait\n", e->c.label, GATE_TIMEOUT_S);
}

void exec_gate_free(struct executor *e)
{
    if (!e->gate) return;
    exec_gate_open(e);
    pthread_cond_destroy(&e->gate->opened);
    pthread_mutex_destroy(&e->gate->lock);
    free(e->gate);
    e->gate = NULL;
}
