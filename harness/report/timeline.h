/* One timed iteration of a trace laid out for drawing: a lane per (GPU, stream),
 * boxes coloured by what they are. The gnuplot data (plot_data.c) and the HTML
 * report's inline SVG (report_html.c) both draw from this, so they agree. */
#ifndef PB_TIMELINE_H
#define PB_TIMELINE_H
#include "../measure/trace.h"

enum box_kind { BOX_COMPUTE, BOX_COMM, BOX_COPY, BOX_MEMSET, BOX_KINDS };

struct timeline_box {
    int lane;
    double start_ms, end_ms;   /* from the iteration's first device activity */
    enum box_kind kind;
    int microbatch;            /* -1 when the record's name does not say */
    char name[PB_LABEL_LEN];
};

#define TIMELINE_MAX_LANES 128

struct timeline {
    int iteration;             /* the iteration drawn */
    int n_iterations;          /* distinct iterations in the trace */
    int n_lanes;
    int lane_device[TIMELINE_MAX_LANES], lane_stream[TIMELINE_MAX_LANES];
    int n, cap;
    struct timeline_box *box;
    double span_ms;            /* the shared window of DESIGN.md for this iteration */
    int predicted;
};

/* Lay out iteration `iteration` of t (-1: the iteration whose window is the
 * median, so the picture is a typical one, not the fastest or a hiccup).
 * An empty trace gives an empty timeline (n == 0), not an error. */
int timeline_build(const struct trace *t, int iteration, struct timeline *out);
void timeline_free(struct timeline *tl);
/* "compute", "communication", "copy", "memset". */
const char *box_kind_name(enum box_kind k);
/* What a record draws as; REC_KERNEL whose name says NCCL counts as communication. */
enum box_kind box_kind_of(const struct record *r);
/* Microbatch from a name such as "layers 0-15 mb3" or "microbatch 3"; -1 if none. */
int record_microbatch(const char *name);
#endif
