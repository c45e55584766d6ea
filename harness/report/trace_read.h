/* trace.json read back into per-point traces, so plots can be drawn from a
 * results folder alone (bench --plot, scripts/plot.sh, or a folder copied off the
 * GPU machine). */
#ifndef PB_TRACE_READ_H
#define PB_TRACE_READ_H
#include "../measure/trace.h"

struct trace_point {
    char strategy[PB_STRATEGY_NAME_LEN];
    struct trace t;
};

/* Split trace.json's device events into the points of the run, in the order
 * trace_json_write wrote them: an explicit args.point when present, otherwise a
 * new point where the strategy changes or the iteration number goes back.
 * Host ranges are skipped. *pts is malloc'd; free with trace_points_free. */
int trace_json_read(const char *path, struct trace_point **pts, int *n, int *predicted);
void trace_points_free(struct trace_point *pts, int n);
#endif
