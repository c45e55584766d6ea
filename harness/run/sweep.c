/* See sweep.h. The loop nccl-tests' common.cu owns once: every executor plugs in
 * through executor_ops, every job (--plan, --simulate, measured, MPI) is this loop. */
#include "sweep.h"
#include "../../base/interrupt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../report/memory_report.h"
#include "../report/placement_view.h"
#include "run_common.h"
#include "split_pricing.h"

int sweep_points_cap(const struct options *o)
{
    int nb = o->n_batches ? o->n_batches : 1, ns = o->n_seqs ? o->n_seqs : 1;
    int nm = o->n_microbatches ? o->n_microbatches : 1;
    return nb * ns * nm * (o->n_strategies > 0 ? o->n_strategies : 1);
}

int sweep_points(const struct options *o, struct sweep_point *out, int cap)
{
    const char *order[PB_MAX_LIST];
    int no = 0, n = 0;
    for (int i = 0; i < o->n_strategies; i++) if (!strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    for (int i = 0; i < o->n_strategies; i++) if (strcmp(o->strategies[i], "single")) order[no++] = o->strategies[i];
    int nb = o->n_batches ? o->n_batches : 1, ns = o->n_seqs ? o->n_seqs : 1;
    int nm = o->n_microbatches ? o->n_microbatches : 1;
    for (int bi = 0; bi < nb; bi++)
        for (int si = 0; si < ns; si++)
            for (int mi = 0; mi < nm; mi++)
                for (int k = 0; k < no; k++) {
                    if (mi > 0 && !strategy_takes_microbatches(order[k])) continue;
                    if (n == cap) return -1;
                    int b = o->n_batches ? o->batches[bi] : 1, s = o->n_seqs ? o->seqs[si] : 128;
                    out[n++] = (struct sweep_point){
                        .strategy = order[k],
                        .w = {.batch = b, .seq = s, .context = s, .mode = MODE_PREFILL, .dtype = o->dtype,
                              .microbatches = o->n_microbatches ? o->microbatches[mi] : 0}};
                }
    return n;
}

/* ---- one point ---------------------------------------------------------------- */

static int plan_program(const struct sweep *s, const struct strategy *st, struct point_result *r,
                        struct program *g)
{
    PB_TRY(program_plan(st, s->m, r->placement, &r->w, s->o->decode_tokens, g));
    r->n_devices = g->prompt.n_devices;
    r->stages = g->prompt.stages;
    r->microbatches = g->prompt.microbatches;
    r->steps = g->prompt.n_steps;
    for (int d = 0; d < g->prompt.n_devices && d < PB_MAX_DEVICES && d < s->map.n; d++)
        r->ordinal[d] = s->map.ordinal[d];
    if (g->prompt.n_devices > s->map.n)
        return pb_fail("%s uses %d devices but only %d are given", r->strategy, g->prompt.n_devices, s->map.n);
    return PB_OK;
}

/* A progress line for long points: a log file gets one every few seconds, a terminal a carriage return. */
static void progress(const struct sweep *s, const struct point_result *r, const char *what, int i, int n,
                     double ms, time_t began, time_t *shown)
{
    int tty = isatty(STDERR_FILENO);
    time_t now = time(NULL);
    if (s->world->rank != 0 || now - began < 3 || (!tty && now - *shown < 3)) return;
    fprintf(stderr, "%sbench: %s batch %d seq %d: %s %d/%d, %.2f ms%s", tty ? "\r" : "", r->strategy, r->w.batch,
            r->w.seq, what, i + 1, n, ms, tty ? "" : "\n");
    *shown = now;
}

/* One iteration on every rank, started together (the agreement is the barrier);
 * its latency is the longest of the ranks'. */
static int run_all(const struct sweep *s, void *e, int i, struct trace *t, double *ms, const char *phase)
{
    const struct executor_ops *x = s->ex;
    const struct exec_world *w = s->world;
    int rc = x->run(e, i, t, ms);
    if (rc == PB_OK && x->collect && t) rc = x->collect(e, t, i);
    PB_TRY(w->agree(w, rc, phase));
    return w->max(w, ms, "collecting latencies");
}

/* Warm-up, then the timed iterations with device activity recording paused (CUPTI's
 * per-kernel timestamps cost about 5 us a kernel, 25% of a 1x128 prefill), then
 * profiled iterations with it on, whose records give busy time, transfers and the
 * trace. A model runs once: that run stands for all. Returns the iterations t holds. */
static int iterate(const struct sweep *s, void *e, struct point_result *r, struct trace *t, int *trace_iters)
{
    const struct executor_ops *x = s->ex;
    const struct exec_world *w = s->world;
    const struct options *o = s->o;
    double ms = 0;
    *trace_iters = 0;
    if (x->predicts) {
        PB_TRY(run_all(s, e, 0, t, &r->latency_ms[0], "predicting"));
        r->iters = 1;
        *trace_iters = 1;
        return PB_OK;
    }
    PB_TRY(w->agree(w, x->profiling ? x->profiling(e, 0) : PB_OK, "pausing CUPTI"));
    for (int i = 0; i < o->warmup; i++) PB_TRY(run_all(s, e, -1, NULL, &ms, "warming up"));
    time_t began = time(NULL), shown = began;
    for (int i = 0; i < o->iters; i++) {
        PB_TRY(run_all(s, e, i, NULL, &r->latency_ms[i], "running a timed iteration"));
        r->iters = i + 1;
        progress(s, r, "iteration", i, o->iters, r->latency_ms[i], began, &shown);
    }
    int rc = x->profiling ? x->profiling(e, 1) : PB_OK;
    if (rc == PB_OK && x->collect) rc = x->collect(e, NULL, -1);
    PB_TRY(w->agree(w, rc, "resuming CUPTI"));
    t->busy_known = s->cupti_on;
    int n = s->cupti_on ? o->profile_iters : 0;
    /* One unrecorded pass first: re-enabling collection costs the first launch. */
    if (n > 0) {
        rc = x->run(e, -1, NULL, &ms);
        if (rc == PB_OK && x->collect) rc = x->collect(e, NULL, -1);
        PB_TRY(w->agree(w, rc, "running a profiled iteration"));
    }
    for (int i = 0; i < n; i++) {
        PB_TRY(run_all(s, e, i, t, &r->profiled_ms[i], "running a profiled iteration"));
        r->profile_iters = i + 1;
        progress(s, r, "profiled iteration", i, n, r->profiled_ms[i], began, &shown);
    }
    if (w->rank == 0 && isatty(STDERR_FILENO) && time(NULL) - began >= 3) fputc('\n', stderr);
    *trace_iters = r->profile_iters;
    return PB_OK;
}

/* The outputs to rank 0 (they live on one rank each), where they are compared with single's. */
static int outputs_to_rank0(const struct sweep *s, const struct program *g, struct exec_outputs *out)
{
    const struct exec_world *w = s->world;
    if (w->size == 1) return PB_OK;
    int rows = g->greedy ? g->batch : g->batch * g->seq, vocab = s->m->vocab, rc = PB_OK;
    if (w->rank == 0 && !out->logits && !(out->logits = malloc((size_t)rows * vocab * 2))) rc = pb_fail("out of host memory");
    if (rc == PB_OK && w->rank == 0 && g->greedy && !out->tokens && !(out->tokens = malloc((size_t)g->batch * sizeof(int))))
        rc = pb_fail("out of host memory");
    PB_TRY(w->agree(w, rc, "reading logits"));
    PB_TRY(w->to_rank0(w, out->logits_rank, out->logits, (size_t)rows * vocab * 2, "gathering logits"));
    if (g->greedy) PB_TRY(w->to_rank0(w, out->tokens_rank, out->tokens, (size_t)g->batch * sizeof(int), "gathering tokens"));
    out->rows = rows;
    out->vocab = vocab;
    out->count = g->greedy ? g->batch : 0;
    return PB_OK;
}

/* Copies that run as NCCL kernels are comm time, not memcpy records: their bytes come
 * from the program and their time is not split out. */
static void transfers_from_program(struct point_result *r, const struct program *g)
{
    r->transfer_bytes = 0;
    for (int i = 0; i < g->prompt.n_steps; i++)
        if (g->prompt.steps[i].kind == STEP_COPY) r->transfer_bytes += (double)g->prompt.steps[i].bytes;
    for (int i = 0; i < g->decode.n_steps; i++)
        if (g->decode.steps[i].kind == STEP_COPY) r->transfer_bytes += (double)g->decode.steps[i].bytes * g->tokens;
    r->transfer_ms = NAN;
}

/* --predict: the cost model on the very program this point ran. */
static void predict(const struct sweep *s, const struct program *g, struct point_result *r)
{
    struct exec_config c = {.m = s->m, .p = r->placement, .g = g, .map = &s->map, .world = exec_world_single(),
                            .label = r->strategy, .profile = s->predict, .allreduce = s->o->allreduce};
    void *e = NULL;
    double ms = 0;
    int rc = model_executor_ops.create(&c, &e);
    if (rc == PB_OK) rc = model_executor_ops.run(e, 0, NULL, &ms);
    if (e) model_executor_ops.destroy(e);
    if (rc == PB_OK) r->predicted_ms = ms;
    else fprintf(stderr, "bench: note: %s: no prediction (%s)\n", r->strategy, pb_last_error());
}

/* What the executor holds beyond `before` on each logical device's GPU, at the fullest
 * of the moments sampled (after setup, after the iterations): every buffer is allocated
 * at setup and kept, so that is its peak; cuBLAS, NCCL and graphs count too, unlike in
 * the prediction. A rank samples its own device; rank 0 gathers them. */
static int sample_memory(const struct sweep *s, const struct exec_config *c, const uint64_t *before,
                         struct point_result *r)
{
    uint64_t now[PB_MAX_DEVICES] = {0};
    PB_TRY(s->ex->memory_in_use(c, now));
    for (int d = 0; d < c->g->prompt.n_devices; d++) {
        uint64_t grew = now[d] > before[d] ? now[d] - before[d] : 0;
        if (grew > r->measured_peak[d]) r->measured_peak[d] = grew;
    }
    return PB_OK;
}

static int gather_memory(const struct sweep *s, const struct program *g, struct point_result *r)
{
    const struct exec_world *w = s->world;
    for (int d = 1; w->size > 1 && d < g->prompt.n_devices; d++)
        PB_TRY(w->to_rank0(w, d, &r->measured_peak[d], sizeof r->measured_peak[d], "gathering memory peaks"));
    r->memory_measured = 1;
    return PB_OK;
}

/* Drive the executor through one point; t gets the point's trace (rank 0: every rank's). */
static int drive(const struct sweep *s, const struct program *g, struct point_result *r, struct trace *t,
                 struct reference *ref)
{
    const struct executor_ops *x = s->ex;
    const struct exec_world *w = s->world;
    const struct options *o = s->o;
    struct exec_config c = {.m = s->m, .p = r->placement, .g = g, .map = &s->map, .world = w, .seed = o->seed,
                            .weights = o->weights, .use_graph = o->use_graph, .label = r->strategy,
                            .profile = s->profile, .allreduce = o->allreduce, .allreduce_table = s->allreduce_table};
    struct trace local;
    int gathered = w->size > 1, trace_iters = 0;
    struct trace *rec = gathered ? &local : t;
    if (gathered) trace_init(&local, s->map.n);
    void *e = NULL;
    struct exec_outputs out = {0};
    uint64_t before[PB_MAX_DEVICES] = {0};
    int rc = x->memory_in_use ? x->memory_in_use(&c, before) : PB_OK;
    if (rc == PB_OK) rc = x->create(&c, &e);
    if (rc == PB_OK && x->memory_in_use) rc = sample_memory(s, &c, before, r);
    if (rc == PB_OK && x->collect) rc = x->collect(e, NULL, -1);   /* weight init and uploads are not measured */
    rc = w->agree(w, rc, "setting up the executor");
    if (rc == PB_OK) rc = iterate(s, e, r, rec, &trace_iters);
    if (rc == PB_OK && x->memory_in_use) rc = w->agree(w, sample_memory(s, &c, before, r), "reading GPU memory");
    if (rc == PB_OK && x->memory_in_use) rc = w->agree(w, gather_memory(s, g, r), "gathering memory peaks");
    if (rc == PB_OK) rc = w->agree(w, x->outputs(e, &out), "reading outputs");
    if (rc == PB_OK) rc = outputs_to_rank0(s, g, &out);
    if (e) x->destroy(e);
    if (rc == PB_OK && gathered) rc = w->agree(w, w->gather(w, &local, t), "gathering traces");
    if (rc == PB_OK && w->rank == 0) {
        run_summarise(r, t, r->placement, trace_iters);
        run_attribute(r, t, g, trace_iters, s->ceilings ? s->ceilings : x->predicts ? s->profile : NULL);
        if (x->copies_are_kernels) transfers_from_program(r, g);
        run_collectives(r, g, x->copies_are_kernels);
        r->graph = out.graph;
        r->predicted = x->predicts;
        if (x->predicts) r->predicted_ms = r->p50_ms;
        run_reference_or_check(r, ref, &out.logits, out.rows, out.vocab, &out.tokens);
        if (s->predict) predict(s, g, r);
    }
    free(out.logits);
    free(out.tokens);
    if (gathered) trace_free(&local);
    return rc;
}

static int alloc_point(const struct sweep *s, struct point_result *r)
{
    r->latency_ms = calloc((size_t)s->o->iters + 2, sizeof(double));
    r->profiled_ms = calloc((size_t)s->o->profile_iters + 1, sizeof(double));
    return r->latency_ms && r->profiled_ms ? PB_OK : pb_fail("out of host memory");
}

int sweep_point_run(const struct sweep *s, const struct strategy *st, struct point_result *r, struct trace *t)
{
    struct reference ref = {0};
    struct program g;
    trace_init(t, s->map.n);
    int rc = alloc_point(s, r);
    if (rc == PB_OK) rc = plan_program(s, st, r, &g);
    if (rc == PB_OK) {
        rc = drive(s, &g, r, t, &ref);
        program_free(&g);
    }
    run_reference_free(&ref);
    r->ok = rc == PB_OK;
    return rc;
}

/* Place with splits priced by the cost model at the run's device profile (--simulate,
 * --plan; a measured run's --predict profile), which optimal minimises. */
static int sweep_place(const struct sweep *s, const struct strategy *st, const struct workload *w,
                       struct placement *out)
{
    const struct device_profile *prof = s->profile ? s->profile : s->predict;
    return place_priced(prof, s->m, st, w, &s->mc, s->map.ordinal, s->map.n, out);
}

/* hybrid in the default list (nobody asked for it, nor for a --tp) where its default
 * degree makes a placement these GPUs refuse (one stage and --virtual-stages V,
 * parameters over a budget): skipped with the reason. Every rank decides the same
 * from the options and the machine. */
static int default_hybrid_cannot_run(const struct sweep *s, const struct sweep_point *pt, char *reason, size_t len)
{
    if (s->o->strategies_named || s->mc.tp > 0 || strcmp(pt->strategy, "hybrid")) return 0;
    struct placement *p = calloc(1, sizeof *p);
    if (!p) return 0;   /* run_point reports the shortage */
    int placed = sweep_place(s, strategy_find("hybrid"), &pt->w, p) == PB_OK;
    if (!placed)
        snprintf(reason, len, "not run in the default list: %s (--tp D picks another degree)", pb_last_error());
    free(p);
    return !placed;
}

/* A combination that cannot run (asked microbatches that do not split the batch) is
 * skipped, not failed: every rank decides the same from the options alone. */
static int point_cannot_run(const struct sweep *s, const struct sweep_point *pt, char *reason, size_t len)
{
    if (default_hybrid_cannot_run(s, pt, reason, len)) return 1;
    if (!strategy_takes_microbatches(pt->strategy) || pt->w.microbatches <= 0) return 0;
    if (plan_check_microbatches(&pt->w, pt->w.microbatches) == PB_OK) return 0;
    snprintf(reason, len, "%s", pb_last_error());
    return 1;
}

/* Place, plan, drive; a failure anywhere fails the point on every rank with one message. */
static int run_point(const struct sweep *s, struct point_result *r, struct trace *t, struct plan_entry *plan,
                     struct reference *ref)
{
    const struct strategy *st = strategy_find(r->strategy);
    const struct exec_world *w = s->world;
    r->microbatches = r->w.microbatches;   /* what was asked, for a row that fails before planning */
    r->placement = calloc(1, sizeof *r->placement);
    int rc = r->placement ? alloc_point(s, r) : pb_fail("out of host memory");
    if (rc == PB_OK) rc = st ? sweep_place(s, st, &r->w, r->placement) : pb_fail("unknown strategy \"%s\"", r->strategy);
    if (rc == PB_OK) placement_summary(r->placement, r->placement_summary, sizeof r->placement_summary);
    if (rc == PB_OK) rc = memory_fill_point(s->m, &s->mc, r);   /* refuses what does not fit */
    struct program g = {0};
    if (rc == PB_OK) rc = plan_program(s, st, r, &g);
    rc = w->agree(w, rc, "placing and planning");
    if (plan) {
        plan_entry_fill(plan, s->m, st, &r->w, rc == PB_OK ? r->placement : NULL, rc == PB_OK ? &g.prompt : NULL,
                        s->profile);
        plan->memory = r->memory;
        plan->capacity = r->capacity;
        plan->decode_tokens = r->decode_tokens;
        program_free(&g);
        return rc;
    }
    if (rc == PB_OK) rc = drive(s, &g, r, t, ref);
    program_free(&g);
    return rc;
}

/* ---- the table ------------------------------------------------------------------ */

void sweep_print_header(const struct sweep *s, const struct point_result *r)
{
    if (s->banner) printf("\n%s", s->banner);
    printf("\n%s", s->m->name);
    if (s->weights) printf(" (weights: %s)", s->weights);
    printf(", batch %d x seq %d", r->w.batch, r->w.seq);
    if (r->w.microbatches > 0) printf(", %d microbatches (pipeline)", r->w.microbatches);
    if (r->decode_tokens) printf(", generate (%d greedy tokens after the prefill)", r->decode_tokens);
    if (s->world->size > 1) printf(", %d ranks", s->world->size);
    printf("\n%-9s %-34s %9s %10s %7s %-15s %8s %8s %8s ", "strategy", "placement", "p50 ms", "tok/s", "speedup",
           "util/GPU", "xfer GB", "xfer ms", "AR ms");
    if (s->predict) printf("%9s %7s ", "pred ms", "err %");
    printf("%8s logits vs single\n", "cupti +%");
}

void sweep_print_row(const struct sweep *s, const struct point_result *r)
{
    if (!r->ok) {
        printf("%-9s %s: %s\n", r->strategy, point_status(r), r->reason);
        return;
    }
    char util[64] = "unknown";
    if (r->busy_known) {
        size_t used = 0;
        for (int d = 0; d < r->n_devices && used < sizeof util; d++)
            used += (size_t)snprintf(util + used, sizeof util - used, "%s%.0f%%", d ? "/" : "",
                                     100 * r->metrics.gpu[d].utilisation);
    }
    char check[96];
    if (r->predicted) snprintf(check, sizeof check, "predicted");
    else if (r->tokens_parted) snprintf(check, sizeof check, "tokens part from single's (not judged)");
    else if (!r->logits_checked) snprintf(check, sizeof check, "not checked");
    else if (r->tolerance == 0) snprintf(check, sizeof check, "%s (max diff %g)", r->logits_match ? "identical" : "DIFFER", r->max_abs_diff);
    else snprintf(check, sizeof check, "%s (rel error %.2g, bar %g; max diff %g)", r->logits_match ? "within tol" : "DIFFER", r->rel_error, r->tolerance, r->max_abs_diff);
    printf("%-9s %-34.34s %9.3f %10.0f %6.2fx %-15s %8.3f %8.3f %8.3f ", r->strategy, r->placement_summary,
           r->p50_ms, r->tokens_per_s, r->speedup, util, r->busy_known ? r->transfer_bytes / 1e9 : NAN,
           r->busy_known ? r->transfer_ms : NAN, r->busy_known ? r->metrics.allreduce_ms : NAN);
    if (s->predict) printf("%9.3f %+6.1f%% ", r->predicted_ms, r->prediction_error_pct);
    if (isnan(r->cupti_overhead_pct)) printf("%8s %s\n", "-", check);
    else printf("%+7.1f%% %s\n", r->cupti_overhead_pct, check);
}

/* ---- the sweep ------------------------------------------------------------------- */

int sweep_run(const struct sweep *s, struct sweep_out *out)
{
    memset(out, 0, sizeof *out);
    if (!s->ex && !s->profile) return pb_fail("internal: --plan prices work at a device profile, and none was given");
    int cap = sweep_points_cap(s->o);
    struct sweep_point *pts = calloc((size_t)cap, sizeof *pts);
    out->res = calloc((size_t)cap, sizeof *out->res);
    out->traces = calloc((size_t)cap, sizeof *out->traces);
    if (!s->ex) out->plans = calloc((size_t)cap, sizeof *out->plans);
    int n = pts ? sweep_points(s->o, pts, cap) : -1;
    if (n < 0 || !out->res || !out->traces || (!s->ex && !out->plans)) {
        free(pts);
        sweep_out_free(out);
        return pb_fail("out of host memory for %d points", cap);
    }
    const struct exec_world *w = s->world;
    struct reference ref = {0};
    double single_p50 = 0;
    for (int k = 0; k < n; k++) {
        struct point_result *r = &out->res[k];
        snprintf(r->strategy, sizeof r->strategy, "%s", pts[k].strategy);
        r->w = pts[k].w;
        r->decode_tokens = s->o->decode_tokens;
        r->speedup = r->predicted_ms = r->prediction_error_pct = r->gpipe_bound = NAN;
        trace_init(&out->traces[k], s->map.n);
        int new_workload = k == 0 || r->w.batch != pts[k - 1].w.batch || r->w.seq != pts[k - 1].w.seq;
        if (new_workload) {   /* one single run per batch x seq serves every microbatch count */
            run_reference_free(&ref);
            single_p50 = 0;
        }
        if (s->ex && w->rank == 0 && (k == 0 || new_workload || r->w.microbatches != pts[k - 1].w.microbatches))
            sweep_print_header(s, r);
        if (s->ex && !s->ex->predicts && n > 1 && w->rank == 0)
            fprintf(stderr, "bench: point %d/%d: %s, batch %d x seq %d, microbatches %d\n", k + 1, n, r->strategy,
                    r->w.batch, r->w.seq, strategy_takes_microbatches(r->strategy) ? r->w.microbatches : 1);
        double stop = interrupt_signal();   /* every rank skips the same points */
        if (w->max(w, &stop, "checking for an interrupt") == PB_OK && stop > 0) {
            point_result_interrupted(r, r->strategy, &r->w, r->decode_tokens);
            if (out->plans) plan_entry_interrupted(strategy_find(r->strategy), &r->w, &out->plans[k]);
            out->n = k + 1;
            continue;
        }
        if ((s->ex || out->plans) && point_cannot_run(s, &pts[k], r->reason, sizeof r->reason)) {
            r->skipped = 1;
            r->microbatches = r->w.microbatches;   /* the value asked */
            out->n = k + 1;
            out->skipped++;
            if (out->plans) {
                plan_entry_skipped(strategy_find(r->strategy), &r->w, r->reason, &out->plans[k]);
                if (w->rank == 0) plan_print(stdout, &out->plans[k]);
                continue;
            }
            if (w->rank == 0) {
                sweep_print_row(s, r);
                if (w->point_done) w->point_done(w, r);
            }
            continue;
        }
        r->ok = run_point(s, r, &out->traces[k], out->plans ? &out->plans[k] : NULL, &ref) == PB_OK;
        out->n = k + 1;
        if (!r->ok) snprintf(r->reason, sizeof r->reason, "%s", pb_last_error());
        if (out->plans) {
            if (w->rank == 0) plan_print(stdout, &out->plans[k]);
            out->failed += !r->ok;
            continue;
        }
        if (r->ok && !strcmp(r->strategy, "single") && single_p50 == 0) single_p50 = r->p50_ms;
        if (r->ok && single_p50 > 0) r->speedup = single_p50 / r->p50_ms;
        if (r->ok && !isnan(r->predicted_ms) && !r->predicted && r->p50_ms > 0)
            r->prediction_error_pct = (r->predicted_ms - r->p50_ms) / r->p50_ms * 100;
        if (!r->ok || (r->logits_checked && !r->logits_match)) out->failed++;
        if (w->rank == 0) {
            sweep_print_row(s, r);
            if (w->point_done) w->point_done(w, r);
        }
        fflush(stdout);
    }
    if (s->ex && w->rank == 0) memory_print(stdout, out->res, out->n);
    run_reference_free(&ref);
    free(pts);
    /* Nothing ran at all is a failed job, though no point failed. */
    if (out->n > 0 && out->skipped == out->n) out->failed++;
    return PB_OK;
}

void sweep_out_free(struct sweep_out *out)
{
    for (int i = 0; out->res && i < out->n; i++) point_result_free(&out->res[i]);
    for (int i = 0; out->traces && i < out->n; i++) trace_free(&out->traces[i]);
    for (int i = 0; out->plans && i < out->n; i++) plan_entry_free(&out->plans[i]);
    free(out->res);
    free(out->traces);
    free(out->plans);
    memset(out, 0, sizeof *out);
}
