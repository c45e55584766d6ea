/* The answer in words. Sentences are built per workload (batch, seq, decode
 * tokens) from the points of that workload, so a sweep gets one paragraph group
 * per point of the grid. */
#include "explain.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "memory_report.h"
#include "placement_view.h"

#define GIB (1024.0 * 1024 * 1024)
#define MAX_WORKLOADS 8   /* paragraph groups; a bigger sweep points to summary.csv */
#define WRAP 90
/* Two latencies are "the same" when they differ by at most this fraction of the
 * larger: p50s of repeated runs move by about that much, and it is a thousand
 * times a CUDA event's 0.5 us resolution at the millisecond scale of a pass. */
#define SAME_FRACTION 0.005

/* Text under construction: a paragraph is gathered, then wrapped into the output. */
struct text {
    char *buf;
    size_t len, used;
    char para[4096];
    size_t para_used;
    const char *pred;   /* "predicted " or "" before measured quantities */
};

__attribute__((format(printf, 2, 3))) static void say(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (t->para_used < sizeof t->para) {
        int k = vsnprintf(t->para + t->para_used, sizeof t->para - t->para_used, fmt, ap);
        if (k > 0) t->para_used += (size_t)k;
        if (t->para_used > sizeof t->para - 1) t->para_used = sizeof t->para - 1;
    }
    va_end(ap);
}

static void out(struct text *t, const char *s, size_t n)
{
    if (t->used + n + 4 >= t->len) {
        if (t->len > 4 && t->used + 4 < t->len) memcpy(t->buf + t->used, "...", 4), t->used += 3;
        t->used = t->len;   /* full: drop the rest */
        return;
    }
    memcpy(t->buf + t->used, s, n);
    t->used += n;
    t->buf[t->used] = 0;
}

/* End the paragraph: wrap at WRAP columns on spaces, then a blank line. */
static void end_paragraph(struct text *t)
{
    const char *s = t->para;
    size_t rest = t->para_used;
    while (rest > 0) {
        size_t cut = rest;
        if (rest > WRAP) {
            cut = WRAP;
            while (cut > 0 && s[cut] != ' ') cut--;
            if (cut == 0) cut = WRAP;
        }
        out(t, s, cut);
        out(t, "\n", 1);
        s += cut;
        rest -= cut;
        while (rest > 0 && *s == ' ') s++, rest--;
    }
    if (t->para_used) out(t, "\n", 1);
    t->para_used = 0;
    t->para[0] = 0;
}

static int same_time(double a, double b)
{
    return fabs(a - b) <= SAME_FRACTION * fmax(a, b);
}

static int same_workload(const struct point_result *a, const struct point_result *b)
{
    return a->w.batch == b->w.batch && a->w.seq == b->w.seq && a->decode_tokens == b->decode_tokens &&
           a->w.mode == b->w.mode;
}

/* The point of a strategy in the workload of r[g] (the best by tokens/s when a
 * sweep over microbatches gives several); NULL if not run. ok_only: skip failures. */
static const struct point_result *find(const struct point_result *r, int n, int g, const char *name, int ok_only)
{
    const struct point_result *best = NULL;
    for (int i = 0; i < n; i++) {
        if (!same_workload(&r[i], &r[g]) || strcmp(r[i].strategy, name) || (ok_only && !r[i].ok)) continue;
        if (!best || (r[i].ok && (!best->ok || r[i].tokens_per_s > best->tokens_per_s))) best = &r[i];
    }
    return best;
}

/* Bytes in GiB, or MiB below one GiB so small models do not read "0.00 GiB". */
static void say_bytes(struct text *t, uint64_t bytes)
{
    if (bytes >= GIB) say(t, "%.2f GiB", bytes / GIB);
    else say(t, "%.1f MiB", bytes / (1024.0 * 1024));
}

static void describe_split(struct text *t, const struct point_result *p)
{
    uint64_t params[PB_MAX_DEVICES] = {0}, cpu = 0;
    placement_device_params(p->placement, params, &cpu);
    for (int d = 0; d < p->placement->n_devices; d++) {
        char what[512];
        placement_describe(p->placement, d, what, sizeof what);
        say(t, "%sGPU %d: %s (", d ? "; " : "", d, what);
        say_bytes(t, params[d]);
        say(t, " of parameters)");
    }
    if (cpu) {
        say(t, "; cpu: ");
        say_bytes(t, cpu);
        say(t, " offloaded, streamed to the GPU on every pass");
    }
}

/* Does module i sit on different devices? Modules without parameters (the rotary
 * embedding) are left out: where they sit costs nothing. */
static int moved_module(const struct placement *a, const struct placement *b, int i)
{
    return a->device[i] != b->device[i] && a->modules[i].param_bytes > 0;
}

/* Where naive and auto differ, module by module, in runs of the same move. */
static void placements(struct text *t, const struct point_result *naive, const struct point_result *autop)
{
    if (!naive || !naive->placement || !autop || !autop->placement) {
        say(t, "Placement: %s was not run (or could not be placed), so the naive and auto splits cannot be "
               "compared here; add --strategy naive,auto.", !naive || !naive->placement ? "naive" : "auto");
        end_paragraph(t);
        return;
    }
    const struct placement *a = naive->placement, *b = autop->placement;
    int moved = 0;
    for (int i = 0; i < a->n_modules && i < b->n_modules; i++) moved += moved_module(a, b, i);
    if (!moved) {
        say(t, "Placement: naive and auto put every module that holds parameters on the same GPU: the same "
               "split. ");
        describe_split(t, naive);
        say(t, ".");
        end_paragraph(t);
        return;
    }
    say(t, "Placement: naive and auto differ in %d module%s: ", moved, moved == 1 ? "" : "s");
    int first = 1;
    for (int i = 0; i < a->n_modules && i < b->n_modules; i++) {
        if (!moved_module(a, b, i)) continue;
        int j = i;
        while (j + 1 < a->n_modules && a->modules[j + 1].kind == MODULE_LAYER && a->modules[i].kind == MODULE_LAYER &&
               a->device[j + 1] == a->device[i] && b->device[j + 1] == b->device[i])
            j++;
        char what[96], from[16], to[16];
        if (a->modules[i].kind == MODULE_LAYER && j > i)
            snprintf(what, sizeof what, "layers %d-%d", a->modules[i].layer, a->modules[j].layer);
        else snprintf(what, sizeof what, "%s", a->modules[i].name);
        snprintf(from, sizeof from, a->device[i] == PB_DEVICE_CPU ? "cpu" : "GPU %d", a->device[i]);
        snprintf(to, sizeof to, b->device[i] == PB_DEVICE_CPU ? "cpu" : "GPU %d", b->device[i]);
        say(t, "%s%s on %s with naive, on %s with auto", first ? "" : "; ", what, from, to);
        first = 0;
        i = j;
    }
    say(t, ". Naive: ");
    describe_split(t, naive);
    say(t, ". Auto: ");
    describe_split(t, autop);
    say(t, ". Naive balances layer counts (the remainder goes to the last GPU); auto balances parameter "
           "bytes and keeps room for the largest layer.");
    end_paragraph(t);
}

/* Per-GPU utilisation of a sequential point, and whether more than one GPU worked at once. */
/* Why each GPU was idle (idle_cause.h) and how far it is from its roofline
 * (hw_use.h); silent where the run could not tell. */
static void idle_and_roofline(struct text *t, const struct point_result *p)
{
    const struct iteration_metrics *m = &p->metrics;
    int causes = 0, rates = 0;
    for (int d = 0; d < m->n_devices; d++) {
        causes += !isnan(m->gpu[d].idle_peer_wait_ms) && m->gpu[d].idle_ms > 0;
        rates += !isnan(m->gpu[d].mbu) && !isnan(m->gpu[d].mfu);
    }
    if (causes) {
        say(t, " Idle time by cause:");
        for (int d = 0, k = 0; d < m->n_devices; d++) {
            const struct gpu_metrics *g = &m->gpu[d];
            if (isnan(g->idle_peer_wait_ms) || g->idle_ms <= 0) continue;
            say(t, "%s GPU %d %.2f ms = %.2f waiting on another GPU + %.2f on the host (launch gaps) + %.2f "
                   "other", k++ ? ";" : "", d, g->idle_ms, g->idle_peer_wait_ms, g->idle_host_ms, g->idle_other_ms);
        }
        say(t, ".");
    }
    if (rates) {
        say(t, " Against the profile's measured ceilings, %smemory bandwidth used (MBU)", t->pred);
        for (int d = 0; d < m->n_devices; d++)
            if (!isnan(m->gpu[d].mbu)) say(t, "%s GPU %d %.0f%%", d ? "," : "", d, 100 * m->gpu[d].mbu);
        say(t, "; FLOPs (MFU)");
        for (int d = 0; d < m->n_devices; d++)
            if (!isnan(m->gpu[d].mfu)) say(t, "%s GPU %d %.0f%%", d ? "," : "", d, 100 * m->gpu[d].mfu);
        say(t, ".");
    }
}

static void one_at_a_time(struct text *t, const struct point_result *p, const struct point_result *single)
{
    if (!p) return;
    if (!p->ok) {
        say(t, "%s %s: %s.", p->strategy, point_status(p), p->reason);
        end_paragraph(t);
        return;
    }
    say(t, "%s: %sp50 %.2f ms", p->strategy, t->pred, p->p50_ms);
    if (single && single->ok && single != p)
        say(t, " (%.2fx single's %.2f ms)", single->p50_ms / p->p50_ms, single->p50_ms);
    if (!p->busy_known || p->metrics.n_devices == 0 || !p->metrics.gpu[0].known) {
        say(t, ". Per-GPU busy time is unknown for this run (no activity records, e.g. CUPTI off), so "
               "utilisation cannot be shown.");
        end_paragraph(t);
        return;
    }
    double sum = 0;
    say(t, "; %sbusy ", t->pred);
    for (int d = 0; d < p->metrics.n_devices; d++) {
        sum += p->metrics.gpu[d].utilisation;
        say(t, "%sGPU %d %.0f%%", d ? ", " : "", d, 100 * p->metrics.gpu[d].utilisation);
    }
    say(t, " of the %.2f ms window: together %.2f GPUs' worth", p->metrics.gpu[0].window_ms, sum);
    if (p->metrics.n_devices > 1 && sum < 1.1)
        say(t, ", so one GPU works while the other%s wait%s.", p->metrics.n_devices > 2 ? "s" : "",
            p->metrics.n_devices > 2 ? "" : "s");
    else if (p->metrics.n_devices > 1)
        say(t, ": more than one GPU worked at once.");
    else say(t, ".");
    if (p->transfer_bytes > 0 && p->transfer_ms > 0)
        say(t, " Copies between GPUs: %.2f MiB per pass in %.3f ms (%.1f GB/s), %.1f%% of the latency.",
            p->transfer_bytes / (1024.0 * 1024), p->transfer_ms, p->transfer_bytes / p->transfer_ms / 1e6,
            100 * p->transfer_ms / p->p50_ms);
    idle_and_roofline(t, p);
    end_paragraph(t);
}

/* Distinct CUDA ordinals among a point's logical devices (--devices 0,0 gives 1). */
static int physical_gpus(const struct point_result *p)
{
    int n = 0;
    for (int d = 0; d < p->n_devices; d++) {
        int seen = 0;
        for (int e = 0; e < d; e++) seen |= p->ordinal[e] == p->ordinal[d];
        n += !seen;
    }
    return n;
}

/* Generation is bound by reading weights: a stage reads all of its weights for
 * every microbatch of every token, m times what one pass of the whole batch reads. */
static void weights_read_again(struct text *t, const struct point_result *p, const struct point_result *base)
{
    uint64_t params[PB_MAX_DEVICES] = {0}, cpu = 0, most = 0;
    placement_device_params(p->placement, params, &cpu);
    for (int d = 0; d < p->placement->n_devices; d++) most = params[d] > most ? params[d] : most;
    say(t, " Here it does not beat %s: generating a token reads all of a stage's weights (up to ", base->strategy);
    say_bytes(t, most);
    say(t, ") once per microbatch, %d times per token, where %s reads them once for the whole batch; decoding "
           "is bound by those reads, so splitting the batch multiplies them faster than the overlap saves.",
        p->microbatches, base->strategy);
}

static void pipeline(struct text *t, const struct point_result *r, int n, int g, const struct point_result *naive,
                     const struct point_result *single)
{
    const struct point_result *p = find(r, n, g, "pipeline", 0);
    if (!p) return;
    if (!p->ok) {
        say(t, "pipeline %s: %s.", point_status(p), p->reason);
        end_paragraph(t);
        return;
    }
    say(t, "pipeline (%d stages, %d microbatch%s): %sp50 %.2f ms", p->stages, p->microbatches,
        p->microbatches == 1 ? "" : "es", t->pred, p->p50_ms);
    const struct point_result *base = naive && naive->ok ? naive : single && single->ok ? single : NULL;
    if (base) say(t, ", %.2fx %s", base->p50_ms / p->p50_ms, base->strategy);
    if (single && single->ok && base != single) say(t, " and %.2fx single", single->p50_ms / p->p50_ms);
    say(t, ".");
    if (p->microbatches > 1) {
        say(t, " Its stages work on different microbatches at the same time");
        if (p->busy_known && !isnan(p->gpipe_bound)) {
            double sum = 0;
            for (int s = 0; s < p->stages; s++) sum += p->bubble[s];
            say(t, "; the %sbubble (idle fraction, mean over stages) is %.0f%% against the GPipe bound "
                   "(p-1)/(m+p-1) = %.0f%%", t->pred, 100 * sum / p->stages, 100 * p->gpipe_bound);
        } else if (!p->busy_known) {
            say(t, "; its bubble is unknown (no busy time), the GPipe bound is %.0f%%", 100 * p->gpipe_bound);
        }
        say(t, ".");
    }
    int others = 0;
    for (int i = 0; i < n; i++) others += same_workload(&r[i], &r[g]) && !strcmp(r[i].strategy, "pipeline") && r[i].ok;
    if (others > 1) {
        say(t, " Across microbatches:");
        for (int i = 0, k = 0; i < n; i++)
            if (same_workload(&r[i], &r[g]) && !strcmp(r[i].strategy, "pipeline") && r[i].ok)
                say(t, "%s m=%d %.0f tokens/s", k++ ? "," : "", r[i].microbatches, r[i].tokens_per_s);
        say(t, " (more microbatches shrink the bubble but give each kernel fewer rows).");
    }
    if (base && p->p50_ms >= base->p50_ms && !t->pred[0] && physical_gpus(p) < p->n_devices)
        say(t, " Here it does not beat %s: its %d stages share %d GPU%s (--devices), so overlapping them "
               "cannot add compute; on separate GPUs the same schedule overlaps.", base->strategy,
            p->n_devices, physical_gpus(p), physical_gpus(p) == 1 ? "" : "s");
    else if (base && p->microbatches <= 1)
        say(t, " With one microbatch (a batch of %d sequence%s is not split) nothing overlaps: it runs as the "
               "sequential split does.", p->w.batch, p->w.batch == 1 ? "" : "s");
    else if (base && p->p50_ms >= base->p50_ms && p->decode_tokens > 0 && p->placement)
        weights_read_again(t, p, base);
    else if (base && p->p50_ms >= base->p50_ms)
        say(t, " Here it does not beat %s: each of the %d microbatches has 1/%d of the rows, so every kernel "
               "is smaller and less efficient, and the copies and waits between stages cost more than the "
               "overlap saves.", base->strategy, p->microbatches, p->microbatches);
    end_paragraph(t);
}

static void tensor_parallel(struct text *t, const struct point_result *p, const struct point_result *single)
{
    if (!p) return;
    if (!p->ok) {
        say(t, "tp %s: %s.", point_status(p), p->reason);
        end_paragraph(t);
        return;
    }
    say(t, "tp (%d GPUs): %sp50 %.2f ms", p->n_devices, t->pred, p->p50_ms);
    if (single && single->ok) say(t, ", %.2fx single", single->p50_ms / p->p50_ms);
    say(t, ". Every GPU works on every layer with 1/%d of its weights", p->n_devices);
    if (p->busy_known && p->metrics.allreduce_ms > 0)
        say(t, ", joined by all-reduces that took %.2f ms (%.0f%% of the iteration)", p->metrics.allreduce_ms,
            100 * p->metrics.allreduce_ms / p->p50_ms);
    else if (!p->busy_known) say(t, "; the all-reduce time is unknown (no busy time)");
    say(t, ".");
    end_paragraph(t);
}

static void best(struct text *t, const struct point_result *r, int n, int g, const struct point_result *single,
                 const char *model, int gpus)
{
    const struct point_result *b = NULL;
    for (int i = 0; i < n; i++)
        if (same_workload(&r[i], &r[g]) && r[i].ok && (!b || r[i].tokens_per_s > b->tokens_per_s)) b = &r[i];
    if (!b) {
        say(t, "No strategy ran successfully for this workload.");
        end_paragraph(t);
        return;
    }
    int physical = t->pred[0] ? gpus : physical_gpus(b);
    if (physical < gpus)
        say(t, "Best for %s here on %d logical devices sharing %d GPU%s: %s", model, gpus, physical,
            physical == 1 ? "" : "s", b->strategy);
    else
        say(t, "Best for %s here on %d GPU%s: %s", model, gpus, gpus == 1 ? "" : "s", b->strategy);
    if (b->microbatches > 1) say(t, " with %d microbatches", b->microbatches);
    say(t, ", %s%.0f tokens/s", t->pred, b->tokens_per_s);
    if (single && single->ok && b != single) say(t, " (%.2fx single)", single->p50_ms / b->p50_ms);
    for (int i = 0, k = 0; i < n; i++)
        if (&r[i] != b && same_workload(&r[i], &r[g]) && r[i].ok && strcmp(r[i].strategy, b->strategy) &&
            same_time(r[i].p50_ms, b->p50_ms))
            say(t, "%s%s", k++ ? ", " : "; the same time as ", r[i].strategy);
    say(t, ".");
    int failed = 0;
    for (int i = 0; i < n; i++) failed += same_workload(&r[i], &r[g]) && !r[i].ok;
    if (failed) {
        say(t, " Failed:");
        for (int i = 0, k = 0; i < n; i++)
            if (same_workload(&r[i], &r[g]) && !r[i].ok) say(t, "%s %s (%s)", k++ ? ";" : "", r[i].strategy, r[i].reason);
        say(t, ".");
    }
    end_paragraph(t);
}

void explain_text(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                  char *buf, size_t len)
{
    struct text t = {.buf = buf, .len = len, .pred = o && o->simulate ? "predicted " : ""};
    if (!len) return;
    buf[0] = 0;
    const char *model = env && env->model[0] ? env->model : "this model";
    int gpus = 0;
    for (int i = 0; i < n; i++) gpus = r[i].n_devices > gpus ? r[i].n_devices : gpus;
    if (o && o->simulate)
        say(&t, "Every number below is predicted by the cost model (--simulate), not measured on GPUs.");
    else if (env && !env->cupti_enabled)
        say(&t, "CUPTI was off (%s): latencies are measured, per-GPU busy time is unknown.",
            env->cupti_note[0] ? env->cupti_note : "no reason recorded");
    end_paragraph(&t);
    int groups = 0;
    for (int g = 0; g < n; g++) {
        int seen = 0;
        for (int q = 0; q < g && !seen; q++) seen = same_workload(&r[q], &r[g]);
        if (seen) continue;
        if (++groups > MAX_WORKLOADS) {
            say(&t, "(More workloads in summary.csv.)");
            end_paragraph(&t);
            break;
        }
        say(&t, "== batch %d x %d tokens, %s", r[g].w.batch, r[g].w.seq,
            r[g].decode_tokens > 0 ? "" : "prefill");
        if (r[g].decode_tokens > 0) say(&t, "prefill then %d generated tokens", r[g].decode_tokens);
        say(&t, " ==");
        end_paragraph(&t);
        const struct point_result *single = find(r, n, g, "single", 0);
        const struct point_result *naive = find(r, n, g, "naive", 0), *autop = find(r, n, g, "auto", 0);
        placements(&t, naive, autop);
        one_at_a_time(&t, naive, single);
        one_at_a_time(&t, autop, single);
        if (naive && autop && naive->ok && autop->ok && same_time(autop->p50_ms, naive->p50_ms))
            say(&t, "Both are sequential: the activations walk from GPU to GPU. auto and naive take the same "
                    "time (%s p50 %.2f and %.2f ms, within %.1f%%).", t.pred[0] ? "predicted" : "measured",
                autop->p50_ms, naive->p50_ms, 100 * SAME_FRACTION);
        else if (naive && autop && naive->ok && autop->ok)
            say(&t, "Both are sequential: the activations walk from GPU to GPU. auto is %.2f ms %s than naive "
                    "(%s p50).", fabs(autop->p50_ms - naive->p50_ms),
                autop->p50_ms > naive->p50_ms ? "slower" : "faster", t.pred[0] ? "predicted" : "measured");
        char memory[1536];
        memory_sentence(naive, autop, memory, sizeof memory);
        if (memory[0]) say(&t, " %s", memory);
        end_paragraph(&t);
        pipeline(&t, r, n, g, naive, single);
        tensor_parallel(&t, find(r, n, g, "tp", 0), single);
        best(&t, r, n, g, single, model, gpus);
    }
}

int explain_print(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                  const char *dir)
{
    size_t len = 64 * 1024;
    char *buf = malloc(len);
    if (!buf) return pb_fail("out of host memory for --explain");
    explain_text(o, env, r, n, buf, len);
    printf("\n%s", buf);
    int rc = PB_OK;
    if (dir) {
        char path[4096];
        rc = path_join(path, sizeof path, dir, "explain.txt");
        if (rc == PB_OK) rc = atomic_write_text(path, buf);
    }
    free(buf);
    return rc;
}
