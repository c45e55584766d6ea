/* The cost-model executor behind executor.h: every pass of the program replayed on
 * a device profile (simulate.c), one after the other as the GPU runs them, into the
 * same trace records a measured run writes (marked predicted). Deterministic: one
 * run stands for every iteration. No outputs: it computes no logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../executor.h"
#include "simulate.h"
#include "sim_kernels.h"
#include "../../measure/idle_cause.h"
#include "../../measure/metrics.h"

struct model_exec {
    struct exec_config c;
};

static int model_create(const struct exec_config *c, void **state)
{
    *state = NULL;
    if (!c->profile) return pb_fail("internal: the cost-model executor needs a device profile");
    if (c->g->prompt.n_devices > c->map->n)
        return pb_fail("%s uses %d devices but only %d are given", c->label, c->g->prompt.n_devices, c->map->n);
    struct model_exec *x = malloc(sizeof *x);
    if (!x) return pb_fail("out of host memory for the cost model");
    x->c = *c;
    *state = x;
    return PB_OK;
}

/* Passes whose records a trace keeps: all of a short program; of a long one the prompt
 * and the first and last decode passes always, then the second, the last but one and
 * passes evenly between while the sample stays within SAMPLE_RECORDS records (a 70B tp
 * pass over 8 GPUs is ~2600 records, ~0.5 MB of trace.json and report.html). Every pass
 * is still simulated and counted in the totals: the sample bounds memory and files only. */
#define SAMPLE_DECODE_PASSES 8
#define SAMPLE_RECORDS 4096

/* Records a pass of s writes: one per step, one more per offloaded weight transfer. */
static long pass_records(const struct schedule *s)
{
    long n = s->n_steps;
    for (int i = 0; i < s->n_steps; i++) n += s->steps[i].offloaded && s->steps[i].bytes;
    return n;
}

static int int_cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void choose_sample(const struct program *g, int every_pass, struct trace_sample *s)
{
    int decode = g->n_passes - 1;
    *s = (struct trace_sample){.passes = g->n_passes};
    if (every_pass || decode <= SAMPLE_DECODE_PASSES) {
        s->passes = 0;   /* nothing left out */
        return;
    }
    int want[SAMPLE_DECODE_PASSES + 1] = {0, 1, decode, 2, decode - 1}, n_want = 5;
    int between = SAMPLE_DECODE_PASSES - 4;
    for (int i = 1; i <= between; i++) want[n_want++] = 2 + (int)((long long)i * (decode - 3) / (between + 1));
    long records = 0, prompt = pass_records(&g->prompt), each = pass_records(&g->decode);
    for (int i = 0; i < n_want; i++) {
        long more = want[i] == 0 ? prompt : each;
        if (i >= 3 && records + more > SAMPLE_RECORDS) break;
        int dup = 0;
        for (int j = 0; j < s->n_shown; j++) dup |= s->shown[j] == want[i];
        if (dup) continue;
        s->shown[s->n_shown++] = want[i];
        records += more;
    }
    qsort(s->shown, (size_t)s->n_shown, sizeof s->shown[0], int_cmp);
}

static int shown(const struct trace_sample *s, int k)
{
    if (s->passes == 0) return 1;
    for (int i = 0; i < s->n_shown; i++)
        if (s->shown[i] == k) return 1;
    return 0;
}

/* src's device records shifted by `offset` ns into dst as `iteration`; its ranges are
 * dropped (one range covers the whole iteration). */
static int append(struct trace *dst, const struct trace *src, uint64_t offset, int iteration)
{
    for (int i = 0; i < src->n; i++) {
        struct record r = src->rec[i];
        if (r.kind == REC_RANGE) continue;
        r.start_ns += offset;
        r.end_ns += offset;
        r.iteration = iteration;
        PB_TRY(trace_add(dst, &r));
    }
    return PB_OK;
}

/* Where a pass's clock ends: its last record (the pass's range ends at its length). */
static uint64_t pass_end_ns(const struct trace *piece)
{
    uint64_t end = 0;
    for (int i = 0; i < piece->n; i++)
        if (piece->rec[i].end_ns > end) end = piece->rec[i].end_ns;
    return end;
}

/* One pass into t at `offset`: its records where the sample shows it; with a sample,
 * its totals, its busy time by step kind (passes never overlap: unions add up) and
 * its intervals for the idle split of the whole iteration (finish_attribution). */
static int record_pass(struct trace *t, const struct trace *piece, int k, uint64_t offset, int iteration,
                       const struct schedule *explains, struct activity_totals *acc, struct idle_events *ev)
{
    if (shown(&t->sample, k)) PB_TRY(append(t, piece, offset, iteration));
    if (t->sample.passes == 0) return PB_OK;
    struct activity_totals pass;
    PB_TRY(metrics_totals(piece, -1, &pass));
    PB_TRY(metrics_totals_append(acc, &pass, offset));
    struct iteration_metrics kinds;
    memset(&kinds, 0, sizeof kinds);
    kinds.n_devices = piece->n_devices < PB_MAX_DEVICES ? piece->n_devices : PB_MAX_DEVICES;
    PB_TRY(work_kinds_mean(piece, -1, explains, &kinds));
    for (int d = 0; d < kinds.n_devices; d++)
        for (int w = 0; w < PB_WORK_KINDS; w++) acc->work_ms[d][w] += kinds.gpu[d].work_ms[w];
    return idle_events_add(ev, piece, -1, offset);
}

/* Idle time by cause over every pass's intervals: the split idle_causes_iteration
 * makes of a trace that keeps every record, on the same intervals. */
static int finish_attribution(struct activity_totals *acc, struct idle_events *ev, const struct schedule *explains,
                              int n_devices)
{
    struct iteration_metrics causes;
    memset(&causes, 0, sizeof causes);
    causes.n_devices = n_devices < PB_MAX_DEVICES ? n_devices : PB_MAX_DEVICES;
    PB_TRY(idle_causes_of_events(ev->e, ev->n, explains, &causes));
    for (int d = 0; d < causes.n_devices; d++) {
        acc->idle_cause_ms[d][0] = causes.gpu[d].idle_peer_wait_ms;
        acc->idle_cause_ms[d][1] = causes.gpu[d].idle_host_ms;
        acc->idle_cause_ms[d][2] = causes.gpu[d].idle_other_ms;
    }
    acc->attributed = 1;
    return PB_OK;
}

static int model_run(void *state, int iteration, struct trace *t, double *ms)
{
    const struct model_exec *x = state;
    const struct exec_config *c = &x->c;
    double clock = 0;
    /* Trace time is whole nanoseconds, each pass from where the last one's records end,
     * so passes never overlap and per-pass totals add up to the iteration's exactly. */
    uint64_t offset = 0;
    struct activity_totals acc;
    memset(&acc, 0, sizeof acc);
    acc.iteration = iteration;
    struct idle_events ev = {0};
    const struct schedule *explains = idle_causes_schedule(c->g);
    if (t) choose_sample(c->g, c->every_pass, &t->sample);
    int rc = PB_OK;
    for (int k = 0; rc == PB_OK && k < c->g->n_passes; k++) {
        struct trace piece;
        double pass_ms;
        rc = simulate_pass(c->profile, c->m, c->g, k, c->map->ordinal, c->allreduce, &piece, &pass_ms);
        if (rc != PB_OK) break;
        rc = t ? record_pass(t, &piece, k, offset, iteration, explains, &acc, &ev) : PB_OK;
        offset += pass_end_ns(&piece);
        trace_free(&piece);
        clock += pass_ms;
    }
    if (rc == PB_OK && t && t->sample.passes) rc = finish_attribution(&acc, &ev, explains, c->g->prompt.n_devices);
    idle_events_free(&ev);
    PB_TRY(rc);
    *ms = clock;
    if (!t) return PB_OK;
    t->predicted = 1;
    t->busy_known = 1;
    if (t->sample.passes) PB_TRY(trace_add_totals(t, &acc));
    struct record range = {.kind = REC_RANGE, .device = -1, .src_device = -1, .dst_device = -1,
                           .iteration = iteration, .end_ns = offset};
    snprintf(range.name, sizeof range.name, "iteration %d (predicted)", iteration);
    return trace_add(t, &range);
}

static int model_outputs(void *state, struct exec_outputs *out)
{
    (void)state;
    *out = (struct exec_outputs){0};
    return PB_OK;
}

/* A serving step: its schedule replayed once, as the pass of a one-pass program, on
 * the parts the program for every slot sizes (their GEMMs tuned at its rows, as the
 * CUDA executor's parts are); it computes no tokens (x->next is left as it is). */
static int model_step(void *state, const struct exec_step *x, struct trace *t, double *ms)
{
    const struct exec_config *c = &((const struct model_exec *)state)->c;
    struct trace piece;
    int rc = simulate_step_on_parts(c->profile, c->m, x->s, c->map->ordinal, c->allreduce,
                                    sim_schedule_part_rows(&c->g->prompt), &piece, ms);
    if (rc == PB_OK && t) rc = append(t, &piece, 0, 0);
    trace_free(&piece);
    if (t) t->predicted = t->busy_known = 1;
    return rc;
}

static void model_destroy(void *state) { free(state); }

const struct executor_ops model_executor_ops = {
    .name = "model",
    .predicts = 1,
    .create = model_create,
    .run = model_run,
    .outputs = model_outputs,
    .destroy = model_destroy,
    .step = model_step,
};
