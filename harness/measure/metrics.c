/* The metrics of DESIGN.md from activity records. One window for all GPUs
 * (first device activity to last, across every GPU), so a GPU that waits for
 * another shows as idle; the HTA-style own span is reported beside it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "metrics.h"


static int span_cmp(const void *a, const void *b)
{
    const struct metrics_span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

uint64_t metrics_union_ns(struct metrics_span *s, int n)
{
    if (n == 0) return 0;
    qsort(s, (size_t)n, sizeof *s, span_cmp);
    uint64_t total = 0, cur_start = s[0].start, cur_end = s[0].end;
    for (int i = 1; i < n; i++) {
        if (s[i].start <= cur_end) {
            if (s[i].end > cur_end) cur_end = s[i].end;
        } else {
            total += cur_end - cur_start;
            cur_start = s[i].start;
            cur_end = s[i].end;
        }
    }
    return total + (cur_end - cur_start);
}

static int in_iteration(const struct record *r, int iteration)
{
    return iteration < 0 || r->iteration == iteration;
}

static int is_device_activity(const struct record *r)
{
    return r->kind != REC_RANGE && r->device >= 0 && r->end_ns >= r->start_ns;
}

static int is_kernel(const struct record *r)
{
    return r->kind == REC_KERNEL || r->kind == REC_COMM;
}

/* Collect intervals of records on `device` (any device if < 0) that `want` accepts. */
static int collect(const struct trace *t, int iteration, int device, int (*want)(const struct record *),
                   struct metrics_span *out)
{
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!in_iteration(r, iteration) || !is_device_activity(r)) continue;
        if (device >= 0 && r->device != device) continue;
        if (!want(r)) continue;
        out[n++] = (struct metrics_span){r->start_ns, r->end_ns};
    }
    return n;
}

static int want_compute(const struct record *r) { return r->kind == REC_KERNEL; }
static int want_comm(const struct record *r) { return r->kind == REC_COMM; }
static int want_copy(const struct record *r) { return r->kind == REC_MEMCPY; }
static int want_any(const struct record *r) { (void)r; return 1; }

static double ms(uint64_t ns) { return (double)ns / 1e6; }

/* Peer copies per ordered device pair, in order of first appearance: bytes and the
 * union of their intervals. */
static int link_totals(const struct trace *t, int iteration, struct metrics_span *scratch, struct activity_totals *out)
{
    out->n_links = 0;
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!in_iteration(r, iteration) || r->kind != REC_MEMCPY) continue;
        if (r->src_device < 0 || r->dst_device < 0 || r->src_device == r->dst_device) continue;
        int found = -1;
        for (int k = 0; k < out->n_links; k++)
            if (out->link[k].src == r->src_device && out->link[k].dst == r->dst_device) found = k;
        if (found >= 0) continue;
        if (out->n_links == (int)(sizeof out->link / sizeof out->link[0]))
            return pb_fail("more than %d device pairs exchange data; metrics keep the first ones",
                           out->n_links);
        int l = out->n_links++;
        out->link[l].src = r->src_device;
        out->link[l].dst = r->dst_device;
        out->link[l].bytes = 0;
        int n = 0;
        for (int j = 0; j < t->n; j++) {
            const struct record *q = &t->rec[j];
            if (!in_iteration(q, iteration) || q->kind != REC_MEMCPY) continue;
            if (q->src_device != r->src_device || q->dst_device != r->dst_device) continue;
            out->link[l].bytes += q->bytes;
            scratch[n++] = (struct metrics_span){q->start_ns, q->end_ns};
        }
        out->link[l].ns = metrics_union_ns(scratch, n);
    }
    return PB_OK;
}

int metrics_totals(const struct trace *t, int iteration, struct activity_totals *out)
{
    memset(out, 0, sizeof *out);
    out->iteration = iteration;
    out->first_ns = UINT64_MAX;
    int nd = t->n_devices < PB_MAX_DEVICES ? t->n_devices : PB_MAX_DEVICES;
    struct metrics_span *s = malloc(((size_t)t->n + 1) * sizeof *s);
    if (!s) return pb_fail("out of host memory computing metrics of %d records", t->n);
    for (int i = 0; i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!in_iteration(r, iteration) || !is_device_activity(r)) continue;
        out->n_device_records++;
        if (r->start_ns < out->first_ns) out->first_ns = r->start_ns;
        if (r->end_ns > out->last_ns) out->last_ns = r->end_ns;
    }
    for (int d = 0; d < nd; d++) {
        out->compute_ns[d] = metrics_union_ns(s, collect(t, iteration, d, want_compute, s));
        out->comm_ns[d] = metrics_union_ns(s, collect(t, iteration, d, want_comm, s));
        out->copy_ns[d] = metrics_union_ns(s, collect(t, iteration, d, want_copy, s));
        out->busy_ns[d] = metrics_union_ns(s, collect(t, iteration, d, want_any, s));
        int nk = collect(t, iteration, d, is_kernel, s);
        uint64_t k0 = UINT64_MAX, k1 = 0;
        for (int i = 0; i < nk; i++) {
            if (s[i].start < k0) k0 = s[i].start;
            if (s[i].end > k1) k1 = s[i].end;
        }
        out->n_kernels[d] = nk;
        out->kernel_first_ns[d] = nk ? k0 : 0;
        out->kernel_last_ns[d] = k1;
        out->kernel_ns[d] = metrics_union_ns(s, nk);
    }
    out->comm_all_ns = metrics_union_ns(s, collect(t, iteration, -1, want_comm, s));
    int rc = link_totals(t, iteration, s, out);
    free(s);
    return rc;
}

int metrics_totals_append(struct activity_totals *acc, const struct activity_totals *pass, uint64_t offset)
{
    if (!pass->n_device_records) return PB_OK;
    if (!acc->n_device_records || pass->first_ns + offset < acc->first_ns) acc->first_ns = pass->first_ns + offset;
    if (pass->last_ns + offset > acc->last_ns) acc->last_ns = pass->last_ns + offset;
    acc->n_device_records += pass->n_device_records;
    for (int d = 0; d < PB_MAX_DEVICES; d++) {
        acc->compute_ns[d] += pass->compute_ns[d];
        acc->comm_ns[d] += pass->comm_ns[d];
        acc->copy_ns[d] += pass->copy_ns[d];
        acc->busy_ns[d] += pass->busy_ns[d];
        acc->kernel_ns[d] += pass->kernel_ns[d];
        if (!pass->n_kernels[d]) continue;
        if (!acc->n_kernels[d] || pass->kernel_first_ns[d] + offset < acc->kernel_first_ns[d])
            acc->kernel_first_ns[d] = pass->kernel_first_ns[d] + offset;
        if (pass->kernel_last_ns[d] + offset > acc->kernel_last_ns[d])
            acc->kernel_last_ns[d] = pass->kernel_last_ns[d] + offset;
        acc->n_kernels[d] += pass->n_kernels[d];
    }
    acc->comm_all_ns += pass->comm_all_ns;
    for (int k = 0; k < pass->n_links; k++) {
        int found = -1;
        for (int j = 0; j < acc->n_links; j++)
            if (acc->link[j].src == pass->link[k].src && acc->link[j].dst == pass->link[k].dst) found = j;
        if (found < 0) {
            if (acc->n_links == (int)(sizeof acc->link / sizeof acc->link[0]))
                return pb_fail("more than %d device pairs exchange data; metrics keep the first ones",
                               acc->n_links);
            found = acc->n_links++;
            acc->link[found].src = pass->link[k].src;
            acc->link[found].dst = pass->link[k].dst;
            acc->link[found].bytes = acc->link[found].ns = 0;
        }
        acc->link[found].bytes += pass->link[k].bytes;
        acc->link[found].ns += pass->link[k].ns;
    }
    return PB_OK;
}

/* The metrics of an iteration from its totals: one conversion, whether the totals
 * came from every record or were summed pass by pass. */
static void metrics_of_totals(const struct trace *t, const struct activity_totals *a, int iteration,
                              struct iteration_metrics *out)
{
    memset(out, 0, sizeof *out);
    int nd = t->n_devices < PB_MAX_DEVICES ? t->n_devices : PB_MAX_DEVICES;
    out->n_devices = nd;
    /* The window spans device activity on all GPUs; host ranges only stand in
     * when no device activity was recorded (no CUPTI). */
    uint64_t r0 = UINT64_MAX, r1 = 0;
    for (int i = 0; !a->n_device_records && i < t->n; i++) {
        const struct record *r = &t->rec[i];
        if (!in_iteration(r, iteration) || r->kind != REC_RANGE) continue;
        if (r->start_ns < r0) r0 = r->start_ns;
        if (r->end_ns > r1) r1 = r->end_ns;
    }
    double window = a->n_device_records ? ms(a->last_ns - a->first_ns) : (r1 > r0 ? ms(r1 - r0) : 0);
    int known = t->busy_known && a->n_device_records > 0;
    for (int d = 0; d < nd; d++) {
        struct gpu_metrics *g = &out->gpu[d];
        g->window_ms = window;
        g->known = known;
        g->idle_peer_wait_ms = g->idle_host_ms = g->idle_other_ms = g->mbu = g->mfu = NAN;
        for (int k = 0; k < PB_WORK_KINDS; k++) g->work_ms[k] = NAN;
        if (!known) {
            /* Unknown, never zero: NAN propagates into reports as "unknown". */
            g->compute_ms = g->comm_ms = g->copy_ms = g->idle_ms = NAN;
            g->utilisation = g->own_span_ms = NAN;
            continue;
        }
        g->compute_ms = ms(a->compute_ns[d]);
        g->comm_ms = ms(a->comm_ns[d]);
        g->copy_ms = ms(a->copy_ns[d]);
        g->idle_ms = window - ms(a->busy_ns[d]);
        g->utilisation = window > 0 ? ms(a->kernel_ns[d]) / window : 0;
        g->own_span_ms = a->n_kernels[d] ? ms(a->kernel_last_ns[d] - a->kernel_first_ns[d]) : 0;
    }
    out->allreduce_ms = known ? ms(a->comm_all_ns) : NAN;
    out->n_links = a->n_links;
    for (int k = 0; k < a->n_links; k++) {
        struct link_metrics *l = &out->link[k];
        l->src = a->link[k].src;
        l->dst = a->link[k].dst;
        l->bytes = a->link[k].bytes;
        l->ms = ms(a->link[k].ns);
        /* bytes per ms / 1e6 = GB/s (10^9 bytes per second). */
        l->gbps = l->ms > 0 ? (double)l->bytes / l->ms / 1e6 : 0;
    }
}

int metrics_iteration(const struct trace *t, int iteration, struct iteration_metrics *out)
{
    const struct activity_totals *kept = trace_totals_of(t, iteration);
    if (kept) {
        metrics_of_totals(t, kept, iteration, out);
        return PB_OK;
    }
    struct activity_totals a;
    int rc = metrics_totals(t, iteration, &a);
    metrics_of_totals(t, &a, iteration, out);
    return rc;
}

int metrics_mean(const struct trace *t, int iters, struct iteration_metrics *out)
{
    memset(out, 0, sizeof *out);
    if (iters <= 0) return metrics_iteration(t, -1, out);
    struct iteration_metrics it;
    for (int i = 0; i < iters; i++) {
        PB_TRY(metrics_iteration(t, i, &it));
        out->n_devices = it.n_devices;
        for (int d = 0; d < it.n_devices; d++) {
            struct gpu_metrics *a = &out->gpu[d];
            const struct gpu_metrics *b = &it.gpu[d];
            a->window_ms += b->window_ms / iters;
            a->compute_ms += b->compute_ms / iters;
            a->comm_ms += b->comm_ms / iters;
            a->copy_ms += b->copy_ms / iters;
            a->idle_ms += b->idle_ms / iters;
            a->utilisation += b->utilisation / iters;
            a->own_span_ms += b->own_span_ms / iters;
            a->known = i == 0 ? b->known : (a->known && b->known);
            /* Filled afterwards from the schedule (idle_cause.h, hw_use.h). */
            a->idle_peer_wait_ms = a->idle_host_ms = a->idle_other_ms = a->mbu = a->mfu = NAN;
            for (int k = 0; k < PB_WORK_KINDS; k++) a->work_ms[k] = NAN;
        }
        out->allreduce_ms += it.allreduce_ms / iters;
        for (int k = 0; k < it.n_links; k++) {
            int found = -1;
            for (int j = 0; j < out->n_links; j++)
                if (out->link[j].src == it.link[k].src && out->link[j].dst == it.link[k].dst) found = j;
            if (found < 0) {
                found = out->n_links++;
                out->link[found] = (struct link_metrics){.src = it.link[k].src, .dst = it.link[k].dst};
            }
            out->link[found].bytes += it.link[k].bytes;
            out->link[found].ms += it.link[k].ms;
        }
    }
    /* Links: mean bytes and time per iteration; GB/s from the totals. */
    for (int j = 0; j < out->n_links; j++) {
        struct link_metrics *l = &out->link[j];
        l->gbps = l->ms > 0 ? (double)l->bytes / l->ms / 1e6 : 0;
        l->bytes /= (uint64_t)iters;
        l->ms /= iters;
    }
    return PB_OK;
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double metrics_percentile(const double *values, int n, double p)
{
    if (n <= 0) return NAN;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return NAN;
    memcpy(v, values, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, double_cmp);
    if (p < 0) p = 0;
    if (p > 100) p = 100;
    /* Linear interpolation between closest ranks, as numpy's default. */
    double rank = p / 100.0 * (n - 1);
    int lo = (int)floor(rank);
    int hi = lo + 1 < n ? lo + 1 : lo;
    double res = v[lo] + (v[hi] - v[lo]) * (rank - lo);
    free(v);
    return res;
}

double metrics_bubble(const struct iteration_metrics *m, int device)
{
    if (device < 0 || device >= m->n_devices) return NAN;
    const struct gpu_metrics *g = &m->gpu[device];
    if (!g->known || g->window_ms <= 0) return NAN;
    return g->idle_ms / g->window_ms;
}

double metrics_gpipe_bound(int stages, int microbatches, int virtual_stages)
{
    if (stages <= 0 || microbatches <= 0) return NAN;
    if (virtual_stages < 1) virtual_stages = 1;
    return (double)(stages - 1) / ((double)virtual_stages * microbatches + stages - 1);
}
