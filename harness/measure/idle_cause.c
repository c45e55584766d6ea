/* See idle_cause.h. Dependencies are looked up through two sorted indexes (a
 * step's record ends; the ends of the schedule's final steps), so a generate
 * trace of 10^5 records costs a few sorts, not a scan per gap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "idle_cause.h"

/* A dependency may end this far after the work that waited for it starts: records
 * of the two come from separately rounded clocks (the cost model's per-pass offsets,
 * CUPTI's per-device timestamps). Far shorter than any step of the next pass. */
#define DEP_SLACK_NS 1000

struct end_mark {
    int step;
    uint64_t end;
    int device;
};

static int ev_by_start(const void *a, const void *b)
{
    const struct idle_event *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->step < 0) - (y->step < 0);   /* at a tie, tagged work is what ends the gap */
}

static int mark_by_step_end(const void *a, const void *b)
{
    const struct end_mark *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The latest mark of `step` ending at or before `at` in marks sorted by (step, end). */
static const struct end_mark *latest_before(const struct end_mark *marks, int n, int step, uint64_t at)
{
    int lo = 0, hi = n;   /* first index with (step, end) > (step, at) */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (marks[mid].step < step || (marks[mid].step == step && marks[mid].end <= at)) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && marks[lo - 1].step == step ? &marks[lo - 1] : NULL;
}

/* 1 for a step no other step depends on: what a pass ends with. */
static void mark_sinks(const struct schedule *s, char *sink)
{
    for (int i = 0; i < s->n_steps; i++) sink[i] = 1;
    for (int i = 0; i < s->n_steps; i++)
        for (int k = 0; k < s->steps[i].n_deps; k++) {
            int d = s->steps[i].deps[k];
            if (d >= 0 && d < s->n_steps) sink[d] = 0;
        }
}

struct index {
    struct end_mark *marks;   /* every tagged record's end, by (step, end) */
    int n_marks;
    struct end_mark *final;   /* records of final steps, by end (step field 0) */
    int n_final;
};

/* The dependency that a gap ending at `at` before `step` waited for longest. */
static const struct end_mark *latest_dependency(const struct index *x, const struct schedule *s, int step,
                                                uint64_t at)
{
    const struct step *st = &s->steps[step];
    if (st->n_deps == 0) return latest_before(x->final, x->n_final, 0, at + DEP_SLACK_NS);
    const struct end_mark *best = NULL;
    for (int k = 0; k < st->n_deps; k++) {
        const struct end_mark *d = latest_before(x->marks, x->n_marks, st->deps[k], at + DEP_SLACK_NS);
        if (d && (!best || d->end > best->end)) best = d;
    }
    return best;
}

/* Charge the gap [a, b) on `device`, ended by `next` (NULL: nothing after it). */
static void charge(const struct index *x, const struct schedule *s, int device, uint64_t a, uint64_t b,
                   const struct idle_event *next, uint64_t *peer, uint64_t *host)
{
    if (!next || next->step < 0 || b <= a) return;   /* other */
    const struct end_mark *dep = latest_dependency(x, s, next->step, b);
    int no_deps = s->steps[next->step].n_deps == 0;
    if (!dep) {
        if (no_deps) *host += b - a;   /* a first pass's first step: nothing to wait for */
        return;
    }
    if (dep->end <= a) {
        *host += b - a;
        return;
    }
    if (dep->device == device) return;   /* a dependency ending inside this GPU's own gap: other */
    uint64_t until = dep->end < b ? dep->end : b;
    *peer += until - a;
    *host += b - until;
}

static int build_index(const struct idle_event *e, int n, const struct schedule *s, struct index *x)
{
    char *sink = malloc((size_t)s->n_steps + 1);
    x->marks = malloc(((size_t)n + 1) * sizeof *x->marks);
    x->final = malloc(((size_t)n + 1) * sizeof *x->final);
    if (!sink || !x->marks || !x->final) {
        free(sink);
        return pb_fail("out of host memory splitting idle time of %d records", n);
    }
    mark_sinks(s, sink);
    x->n_marks = x->n_final = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].step < 0) continue;
        x->marks[x->n_marks++] = (struct end_mark){e[i].step, e[i].end, e[i].device};
        if (sink[e[i].step]) x->final[x->n_final++] = (struct end_mark){0, e[i].end, e[i].device};
    }
    free(sink);
    qsort(x->marks, (size_t)x->n_marks, sizeof *x->marks, mark_by_step_end);
    qsort(x->final, (size_t)x->n_final, sizeof *x->final, mark_by_step_end);
    return PB_OK;
}

/* Walk one device's work in start order; charge every gap inside [w0, w1). */
static void split_device(const struct index *x, const struct schedule *s, const struct idle_event *e, int n,
                         uint64_t w0, uint64_t w1, struct gpu_metrics *g, int device)
{
    uint64_t gaps = 0, peer = 0, host = 0, cursor = w0;
    for (int i = 0; i < n; i++) {
        if (e[i].start > cursor) {
            gaps += e[i].start - cursor;
            charge(x, s, device, cursor, e[i].start, &e[i], &peer, &host);
        }
        if (e[i].end > cursor) cursor = e[i].end;
    }
    if (w1 > cursor) gaps += w1 - cursor;   /* after this GPU's last work: other */
    g->idle_peer_wait_ms = (double)peer / 1e6;
    g->idle_host_ms = (double)host / 1e6;
    g->idle_other_ms = (double)(gaps - peer - host) / 1e6;
}

int idle_causes_of_events(struct idle_event *e, int n, const struct schedule *s, struct iteration_metrics *m)
{
    int nd = m->n_devices;
    for (int d = 0; d < nd; d++)
        m->gpu[d].idle_peer_wait_ms = m->gpu[d].idle_host_ms = m->gpu[d].idle_other_ms = NAN;
    if (!s) return PB_OK;
    uint64_t w0 = UINT64_MAX, w1 = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].step >= s->n_steps) e[i].step = -1;
        if (e[i].start < w0) w0 = e[i].start;
        if (e[i].end > w1) w1 = e[i].end;
    }
    struct index x = {0};
    int rc = n ? build_index(e, n, s, &x) : PB_OK;
    if (rc == PB_OK && n) {
        qsort(e, (size_t)n, sizeof *e, ev_by_start);
        struct idle_event *mine = malloc((size_t)n * sizeof *mine);
        if (!mine) rc = pb_fail("out of host memory splitting idle time of %d records", n);
        for (int d = 0; rc == PB_OK && d < nd; d++) {
            int k = 0;
            for (int i = 0; i < n; i++)
                if (e[i].device == d) mine[k++] = e[i];
            split_device(&x, s, mine, k, w0, w1, &m->gpu[d], d);
        }
        free(mine);
    }
    free(x.marks);
    free(x.final);
    return rc;
}

int idle_events_add(struct idle_events *v, const struct trace *t, int iteration, uint64_t offset)
{
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (iteration >= 0 && r->iteration != iteration) continue;
        if (r->kind == REC_RANGE || r->device < 0 || r->end_ns < r->start_ns) continue;
        if (v->n == v->cap) {
            int cap = v->cap ? 2 * v->cap : 4096;
            struct idle_event *grown = realloc(v->e, (size_t)cap * sizeof *grown);
            if (!grown) return pb_fail("out of host memory keeping %d records' intervals for idle time", v->n);
            v->e = grown;
            v->cap = cap;
        }
        int step = r->has_step && r->step >= 0 ? r->step : -1;
        v->e[v->n++] = (struct idle_event){r->start_ns + offset, r->end_ns + offset, r->device, step};
    }
    return PB_OK;
}

void idle_events_free(struct idle_events *v)
{
    free(v->e);
    *v = (struct idle_events){0};
}

int idle_causes_iteration(const struct trace *t, int iteration, const struct schedule *s,
                          struct iteration_metrics *m)
{
    int nd = m->n_devices;
    for (int d = 0; d < nd; d++)
        m->gpu[d].idle_peer_wait_ms = m->gpu[d].idle_host_ms = m->gpu[d].idle_other_ms = NAN;
    if (!t->busy_known || !s) return PB_OK;
    struct idle_events v = {0};
    int rc = idle_events_add(&v, t, iteration, 0);
    if (rc == PB_OK) rc = idle_causes_of_events(v.e, v.n, s, m);
    idle_events_free(&v);
    return rc;
}

int idle_causes_mean(const struct trace *t, int iters, const struct schedule *s, struct iteration_metrics *m)
{
    if (iters <= 0) return idle_causes_iteration(t, -1, s, m);
    double sum[PB_MAX_DEVICES][3] = {{0}};
    for (int i = 0; i < iters; i++) {
        PB_TRY(idle_causes_iteration(t, i, s, m));
        for (int d = 0; d < m->n_devices; d++) {
            sum[d][0] += m->gpu[d].idle_peer_wait_ms / iters;
            sum[d][1] += m->gpu[d].idle_host_ms / iters;
            sum[d][2] += m->gpu[d].idle_other_ms / iters;
        }
    }
    for (int d = 0; d < m->n_devices; d++) {
        m->gpu[d].idle_peer_wait_ms = sum[d][0];
        m->gpu[d].idle_host_ms = sum[d][1];
        m->gpu[d].idle_other_ms = sum[d][2];
    }
    return PB_OK;
}

static int work_kinds_iteration(const struct trace *t, int iteration, const struct schedule *s,
                                struct metrics_span *scratch, double out[][PB_WORK_KINDS], int nd)
{
    for (int d = 0; d < nd; d++)
        for (int k = 0; k < PB_WORK_KINDS; k++) {
            int n = 0;
            for (int i = 0; i < t->n; i++) {
                const struct record *r = &t->rec[i];
                if ((iteration >= 0 && r->iteration != iteration) || r->kind == REC_RANGE || r->device != d ||
                    r->end_ns < r->start_ns)
                    continue;
                int tagged = s && r->has_step && r->step >= 0 && r->step < s->n_steps;
                int kind = tagged ? (int)s->steps[r->step].kind : PB_WORK_UNTAGGED;
                if (kind == k) scratch[n++] = (struct metrics_span){r->start_ns, r->end_ns};
            }
            out[d][k] = (double)metrics_union_ns(scratch, n) / 1e6;
        }
    return PB_OK;
}

int work_kinds_mean(const struct trace *t, int iters, const struct schedule *s, struct iteration_metrics *m)
{
    int nd = m->n_devices;
    if (!t->busy_known) return PB_OK;
    struct metrics_span *scratch = malloc(((size_t)t->n + 1) * sizeof *scratch);
    if (!scratch) return pb_fail("out of host memory splitting busy time of %d records", t->n);
    double one[PB_MAX_DEVICES][PB_WORK_KINDS], sum[PB_MAX_DEVICES][PB_WORK_KINDS] = {{0}};
    int runs = iters > 0 ? iters : 1;
    for (int i = 0; i < runs; i++) {
        work_kinds_iteration(t, iters > 0 ? i : -1, s, scratch, one, nd);
        for (int d = 0; d < nd; d++)
            for (int k = 0; k < PB_WORK_KINDS; k++) sum[d][k] += one[d][k] / runs;
    }
    for (int d = 0; d < nd; d++) memcpy(m->gpu[d].work_ms, sum[d], sizeof sum[d]);
    free(scratch);
    return PB_OK;
}

int idle_causes_same_structure(const struct schedule *a, const struct schedule *b)
{
    if (!a || !b || a->n_steps != b->n_steps) return 0;
    for (int i = 0; i < a->n_steps; i++) {
        const struct step *x = &a->steps[i], *y = &b->steps[i];
        if (x->kind != y->kind || x->device != y->device || x->n_deps != y->n_deps) return 0;
        if (memcmp(x->deps, y->deps, (size_t)x->n_deps * sizeof x->deps[0])) return 0;
    }
    return 1;
}

const struct schedule *idle_causes_schedule(const struct program *g)
{
    const struct schedule *dec = g->decode.n_steps ? &g->decode : NULL;
    return !dec || idle_causes_same_structure(&g->prompt, dec) ? &g->prompt : NULL;
}
