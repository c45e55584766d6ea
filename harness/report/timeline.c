/* Timeline layout: pick a representative iteration, assign lanes, make boxes. */
#include "timeline.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"

const char *box_kind_name(enum box_kind k)
{
    static const char *const names[] = {"compute", "communication", "copy", "memset"};
    return k >= 0 && k < BOX_KINDS ? names[k] : "other";
}

static int contains_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, n)) return 1;
    return 0;
}

enum box_kind box_kind_of(const struct record *r)
{
    switch (r->kind) {
    case REC_COMM: return BOX_COMM;
    case REC_MEMCPY: return BOX_COPY;
    case REC_MEMSET: return BOX_MEMSET;
    default: break;
    }
    /* Records read back from trace.json lose REC_COMM (the profiler's format calls
     * every kernel "kernel"), so NCCL kernels are recognised by name again. */
    return contains_nocase(r->name, "nccl") ? BOX_COMM : BOX_COMPUTE;
}

int record_microbatch(const char *name)
{
    for (const char *s = name; *s; s++) {
        const char *digits = NULL;
        if (!strncmp(s, "mb", 2) && (s == name || !isalnum((unsigned char)s[-1]))) digits = s + 2;
        else if (!strncasecmp(s, "microbatch", 10)) digits = s + 10;
        if (!digits) continue;
        while (*digits == ' ' || *digits == '=' || *digits == ':') digits++;
        if (isdigit((unsigned char)*digits)) return atoi(digits);
    }
    return -1;
}

static int is_device(const struct record *r)
{
    return r->kind != REC_RANGE && r->device >= 0 && r->end_ns >= r->start_ns;
}

struct iter_window {
    int iteration;
    uint64_t t0, t1;
};

static int cmp_window(const void *a, const void *b)
{
    const struct iter_window *x = a, *y = b;
    uint64_t dx = x->t1 - x->t0, dy = y->t1 - y->t0;
    return dx < dy ? -1 : dx > dy ? 1 : x->iteration - y->iteration;
}

/* Windows of every iteration present, sorted by length. */
static int iteration_windows(const struct trace *t, struct iter_window **out, int *n_out)
{
    int n = 0, cap = 0;
    struct iter_window *w = NULL;
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!is_device(r)) continue;
        int k = 0;
        while (k < n && w[k].iteration != r->iteration) k++;
        if (k == n) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct iter_window *g = realloc(w, (size_t)cap * sizeof *g);
                if (!g) { free(w); return pb_fail("out of host memory laying out a timeline"); }
                w = g;
            }
            w[n++] = (struct iter_window){r->iteration, r->start_ns, r->end_ns};
        }
        if (r->start_ns < w[k].t0) w[k].t0 = r->start_ns;
        if (r->end_ns > w[k].t1) w[k].t1 = r->end_ns;
    }
    if (n) qsort(w, (size_t)n, sizeof *w, cmp_window);
    *out = w;
    *n_out = n;
    return PB_OK;
}

static int lane_of(struct timeline *tl, int device, int stream)
{
    for (int i = 0; i < tl->n_lanes; i++)
        if (tl->lane_device[i] == device && tl->lane_stream[i] == stream) return i;
    if (tl->n_lanes == TIMELINE_MAX_LANES) return -1;
    /* Keep lanes sorted by device, then stream: GPU 0 at the top. */
    int at = tl->n_lanes;
    while (at > 0 && (tl->lane_device[at - 1] > device ||
                      (tl->lane_device[at - 1] == device && tl->lane_stream[at - 1] > stream))) {
        tl->lane_device[at] = tl->lane_device[at - 1];
        tl->lane_stream[at] = tl->lane_stream[at - 1];
        at--;
    }
    tl->lane_device[at] = device;
    tl->lane_stream[at] = stream;
    tl->n_lanes++;
    return at;
}

int timeline_build(const struct trace *t, int iteration, struct timeline *out)
{
    memset(out, 0, sizeof *out);
    out->iteration = -1;
    out->predicted = t->predicted;
    struct iter_window *w = NULL;
    int nw = 0;
    PB_TRY(iteration_windows(t, &w, &nw));
    out->n_iterations = nw;
    int pick = -1;
    for (int k = 0; k < nw; k++)
        if (w[k].iteration == iteration) pick = k;
    if (pick < 0 && nw) pick = nw / 2;   /* median window */
    if (pick < 0) { free(w); return PB_OK; }
    out->iteration = w[pick].iteration;
    uint64_t t0 = w[pick].t0;
    out->span_ms = (double)(w[pick].t1 - w[pick].t0) / 1e6;
    free(w);
    /* Lanes first, so box lane indices are final once boxes are added. */
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (is_device(r) && r->iteration == out->iteration) lane_of(out, r->device, r->stream);
    }
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!is_device(r) || r->iteration != out->iteration) continue;
        int lane = lane_of(out, r->device, r->stream);
        if (lane < 0) continue;   /* more lanes than a picture can show */
        if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 256;
            struct timeline_box *g = realloc(out->box, (size_t)cap * sizeof *g);
            if (!g) { timeline_free(out); return pb_fail("out of host memory laying out a timeline"); }
            out->box = g;
            out->cap = cap;
        }
        struct timeline_box *b = &out->box[out->n++];
        b->lane = lane;
        b->start_ms = (double)(r->start_ns - t0) / 1e6;
        b->end_ms = (double)(r->end_ns - t0) / 1e6;
        b->kind = box_kind_of(r);
        /* Measured kernels carry their step's microbatch; simulated ones name it. */
        b->microbatch = r->has_step ? r->microbatch : record_microbatch(r->name);
        snprintf(b->name, sizeof b->name, "%s", r->name);
    }
    return PB_OK;
}

void timeline_free(struct timeline *tl)
{
    free(tl->box);
    tl->box = NULL;
    tl->n = tl->cap = 0;
}
