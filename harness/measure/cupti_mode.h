/* How the profiled iterations are traced: PB_CUPTI_MODE, a comma-separated list,
 * read once when CUPTI starts. Plain C (no CUDA), so the CPU suite tests it.
 *
 *   gate      (default) hold the GPU, behind a host function on the origin stream,
 *             until the iteration's first CUDA graph has been launched: what CUPTI
 *             costs on the host when it sets up a traced graph launch is then
 *             outside the GPU's window, as the untraced launch's host time is
 *             nearly nothing. Work launched without a graph is never held.
 *   nogate    launch as the timed iterations do (the tree before the gate).
 *   copies    (default) memcpy and memset records as well as kernels.
 *   nocopies  kernel (or graph) records alone: a diagnostic for what the copy
 *             kinds cost; copy busy time and transfers are then missing.
 *   ownzero   (default) CUPTI is told its buffers come zeroed
 *             (CUPTI_ACTIVITY_ATTR_ZEROED_OUT_ACTIVITY_BUFFER): the collector zeroes
 *             what CUPTI wrote when the buffer comes back, at a flush between
 *             iterations, and keeps a few zeroed buffers ready, so no buffer is
 *             zeroed or allocated while an iteration is being launched.
 *   cuptizero CUPTI zeroes each 8 MiB buffer in the thread that needs it (CUPTI's
 *             default; its header warns of stalls in the critical path).
 *
 * scripts/cupti_overhead.sh runs each combination against --no-cupti. */
#ifndef PB_CUPTI_MODE_H
#define PB_CUPTI_MODE_H
#include <stddef.h>

struct cupti_mode {
    int gate;     /* 1: hold the GPU until the first graph of a profiled iteration is launched */
    int copies;   /* 1: memcpy and memset records too */
    int own_zero; /* 1: buffers handed to CUPTI already zeroed (ownzero) */
};

/* Parse `text` (NULL or empty: the defaults, gate, copies and ownzero). A later word
 * overrides an earlier one of the same pair. PB_ERR with a message naming the
 * word on anything else. */
int cupti_mode_parse(const char *text, struct cupti_mode *out);
/* "gate,copies,ownzero" and the like: the canonical spelling of m, for summary.json. */
void cupti_mode_describe(const struct cupti_mode *m, char *out, size_t len);
#endif
