/* The --serve job on the cost model. The stream is made once per rate from the
 * seed and handed unchanged to every strategy; each strategy places once and
 * keeps one cost cache across its rates (a step's cost does not depend on the
 * rate, only on its shape). */
#include "serve_run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../report/placement_view.h"
#include "../report/report_serve.h"
#include "../run/results_dir.h"
#include "../run/simulate_run.h"
#include "serve_cost.h"
#include "serve_exec.h"
#include "serve_report.h"

#define DEFAULT_PROFILE "h200"

void serve_point_free(struct serve_point *p)
{
    serve_results_free(p->res, p->n_res);
    free(p->res);
    p->res = NULL;
}

double serve_point_utilisation(const struct serve_point *p, int device)
{
    if (!p->ok || device >= p->tot.n_devices || !(p->met.span_ms > 0)) return NAN;
    return p->tot.busy_ms[device] / p->met.span_ms;
}

/* The pipeline keeps one group per microbatch in flight: --microbatches, or one per
 * stage (what fills every stage once). Everything else serves one batch at a time. */
static int serve_groups(const struct options *o, const struct strategy *st, const struct placement *p)
{
    if (!st->takes_microbatches) return 1;
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int groups = o->n_microbatches && o->microbatches[0] > 0 ? o->microbatches[0] : placement_stages(p, sd, sf, sc);
    if (groups > o->serve.max_batch) groups = o->serve.max_batch;
    return groups < 1 ? 1 : groups;
}

static int mean_prompt(const struct serve_request *req, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += req[i].prompt_tokens;
    return n ? (int)ceil(sum / n) : 1;
}

/* Reference step costs for --explain: what one decode step and one prefill cost. */
static void reference_steps(struct serve_cost_model *c, int prompt, struct serve_point *pt)
{
    struct serve_step_cost cost;
    pt->decode_step_ms = pt->prefill_step_ms = NAN;
    if (pt->tot.decode_steps > 0) {
        struct serve_step_shape d = {.mode = MODE_DECODE, .seq = 1,
                                     .batch = (int)lround(pt->tot.decode_batch_sum / pt->tot.decode_steps),
                                     .context = (int)lround(pt->tot.decode_context_sum / pt->tot.decode_steps)};
        if (d.batch < 1) d.batch = 1;
        if (serve_cost_model_step(c, &d, &cost) == PB_OK) pt->decode_step_ms = cost.latency_ms;
    }
    struct serve_step_shape f = {.mode = MODE_PREFILL, .batch = 1, .seq = prompt, .context = prompt};
    if (serve_cost_model_step(c, &f, &cost) == PB_OK) pt->prefill_step_ms = cost.latency_ms;
}

static void mark_failed(struct serve_point *pt, const char *why)
{
    pt->ok = 0;
    snprintf(pt->reason, sizeof pt->reason, "%s", why);
}

/* The points of one strategy, before serving: names, rates, limits. */
static void init_points(const struct options *o, const struct strategy *st, struct serve_point *pts)
{
    const struct serve_options *so = &o->serve;
    for (int r = 0; r < so->n_rates; r++) {
        memset(&pts[r], 0, sizeof pts[r]);
        snprintf(pts[r].strategy, sizeof pts[r].strategy, "%s", st->name);
        pts[r].rate = so->rates[r];
        pts[r].max_batch = so->max_batch;
        pts[r].slo = (struct serve_slo){so->slo_ttft_ms, so->slo_tpot_ms};
    }
}

/* Serve one stream on ex into pt; its results, totals and metrics. */
static int serve_point(const struct options *o, const struct serve_executor *ex, const struct serve_policy *pol,
                       const struct serve_request *stream, struct serve_point *pt)
{
    int n_req = o->serve.requests;
    pt->res = calloc((size_t)n_req, sizeof *pt->res);
    if (!pt->res) return pb_fail("out of host memory for %d request results", n_req);
    PB_TRY(serve_engine_run(ex, pol, stream, n_req, pt->res, &pt->tot));
    pt->n_res = n_req;
    return serve_metrics_compute(pt->res, n_req, &pt->slo, o->serve.slo_given, &pt->met);
}

static void describe_point(struct serve_point *pt, const struct placement *p, const struct serve_policy *pol)
{
    placement_summary(p, pt->placement_summary, sizeof pt->placement_summary);
    pt->n_devices = p->n_devices;
    pt->groups = pol->groups;
    pt->kv_capacity_tokens = pol->kv_capacity_tokens;
}

/* Every rate on the cost model, one cost cache across them (a step's cost depends
 * on its shape, not the rate). */
static void serve_on_cost_model(const struct options *o, const struct model_spec *m,
                                const struct device_profile *prof, const struct strategy *st,
                                const struct placement *p, const struct serve_policy *pol,
                                struct serve_request *const *streams, struct serve_point *pts)
{
    const struct serve_options *so = &o->serve;
    struct serve_cost_model cost;
    serve_cost_model_init(&cost, prof, m, st, p, o->dtype, o->n_devices_listed > 0 ? o->devices : NULL);
    struct serve_executor ex = serve_cost_model_executor(&cost);
    int prompt = mean_prompt(streams[0], so->requests);
    for (int r = 0; r < so->n_rates; r++) {
        struct serve_point *pt = &pts[r];
        describe_point(pt, p, pol);
        long lookups = cost.lookups, evals = cost.evaluations;
        int rc = serve_point(o, &ex, pol, streams[r], pt);
        pt->cost_lookups = cost.lookups - lookups;
        pt->cost_evaluations = cost.evaluations - evals;
        if (rc != PB_OK) {
            mark_failed(pt, pb_last_error());
            serve_point_free(pt);
            continue;
        }
        pt->ok = 1;
        reference_steps(&cost, prompt, pt);
    }
    serve_cost_model_free(&cost);
}

/* Every rate through the target's executor: one executor for the strategy (its
 * weights loaded once), every slot free again at each rate. */
static void serve_on_target(const struct options *o, const struct model_spec *m, const struct serve_target *t,
                            const struct strategy *st, const struct placement *p, const struct serve_policy *pol,
                            struct serve_request *const *streams, struct serve_point *pts)
{
    const struct serve_options *so = &o->serve;
    struct serve_exec_config c = {.ops = t->ops, .m = m, .st = st, .p = p, .map = &t->map, .dtype = o->dtype,
                                  .seed = o->seed, .weights = t->weights, .allreduce = o->allreduce,
                                  .allreduce_table = t->allreduce_table, .profile = t->profile,
                                  .records = t->records};
    struct serve_exec x;
    /* what the engine refuses (serve_engine.c) does not size the executor's KV cache */
    int64_t longest = pol->kv_capacity_tokens;
    if (pol->max_context > 0 && pol->max_context < longest) longest = pol->max_context;
    int rc = serve_exec_open(&x, &c, streams[0], so->requests, pol->max_batch, pol->groups, longest);
    for (int r = 0; r < so->n_rates; r++) {
        struct serve_point *pt = &pts[r];
        pt->measured = !t->ops->predicts;
        describe_point(pt, p, pol);
        if (rc != PB_OK) {
            mark_failed(pt, pb_last_error());
            continue;
        }
        struct serve_executor ex = serve_exec_executor(&x);
        int prc = serve_exec_reset(&x, streams[r], so->requests);
        if (prc == PB_OK) prc = serve_point(o, &ex, pol, streams[r], pt);
        pt->cost_lookups = pt->cost_evaluations = x.passes;
        x.passes = 0;
        if (prc != PB_OK) {
            mark_failed(pt, pb_last_error());
            serve_point_free(pt);
            continue;
        }
        pt->ok = 1;
        pt->decode_step_ms = x.decodes ? x.decode_ms / x.decodes : NAN;
        pt->prefill_step_ms = x.prefills ? x.prefill_ms / x.prefills : NAN;
    }
    serve_exec_close(&x);
}

/* One strategy at every rate: place, size the KV cache, serve each stream. */
static void serve_strategy(const struct options *o, const struct model_spec *m, const struct device_profile *prof,
                           const struct machine *mc, const struct strategy *st, struct serve_request *const *streams,
                           const struct serve_target *target, struct serve_point *pts)
{
    const struct serve_options *so = &o->serve;
    init_points(o, st, pts);
    int prompt = mean_prompt(streams[0], so->requests);
    struct placement *p = malloc(sizeof *p);
    struct workload w = {.batch = so->max_batch, .seq = prompt, .context = prompt, .mode = MODE_PREFILL,
                         .dtype = o->dtype};
    int64_t kv = 0;
    int rc = p ? st->place(m, &w, mc, p) : pb_fail("out of host memory placing %s", st->name);
    if (rc == PB_OK) rc = serve_kv_capacity(m, p, mc, o->dtype, &kv);
    if (rc != PB_OK) {
        for (int r = 0; r < so->n_rates; r++) {
            pts[r].measured = target && !target->ops->predicts;
            mark_failed(&pts[r], pb_last_error());
        }
        free(p);
        return;
    }
    struct serve_policy pol = {.max_batch = so->max_batch, .groups = serve_groups(o, st, p),
                               .kv_capacity_tokens = kv, .max_context = m->max_position};
    if (target) serve_on_target(o, m, target, st, p, &pol, streams, pts);
    else serve_on_cost_model(o, m, prof, st, p, &pol, streams, pts);
    free(p);
}

static void print_table(FILE *f, const struct options *o, const struct model_spec *m,
                        const struct device_profile *prof, const struct serve_target *t,
                        const struct serve_point *pts, int n)
{
    const struct serve_options *so = &o->serve;
    if (t)
        fprintf(f, "%s serving through the %s executor: %s on %s, %d requests, max batch %d%s\n",
                t->ops->predicts ? "PREDICTED" : "MEASURED", t->ops->name, m->name, t->device, so->requests,
                so->max_batch, t->records ? "" : " (no device records: busy time unknown)");
    else
        fprintf(f, "PREDICTED serving by the cost model (not measured): %s on %d x %s (profile %s), %d requests, "
                   "max batch %d\n", m->name, o->gpus, prof->gpu, prof->name, so->requests, so->max_batch);
    fprintf(f, "%-9s %7s %8s %10s %10s %9s %9s %9s %9s  %s\n", "strategy", "rate", "req/s", "ttft_p50", "ttft_p99",
            "tpot_p50", "tpot_p99", "tok/s", "goodput", "utilisation per GPU");
    for (int i = 0; i < n; i++) {
        const struct serve_point *p = &pts[i];
        char rate[16];
        snprintf(rate, sizeof rate, isinf(p->rate) ? "inf" : "%.3g", p->rate);
        if (!p->ok) {
            fprintf(f, "%-9s %7s  not served: %s\n", p->strategy, rate, p->reason);
            continue;
        }
        char util[256] = "";
        size_t used = 0;
        for (int d = 0; d < p->tot.n_devices && used + 8 < sizeof util; d++)
        {
            double u = serve_point_utilisation(p, d);   /* unknown without CUPTI: a dash */
            used += (size_t)(isnan(u) ? snprintf(util + used, sizeof util - used, "%s-", d ? " " : "")
                                      : snprintf(util + used, sizeof util - used, "%s%.2f", d ? " " : "", u));
        }
        char goodput[16] = "-";   /* unknown without --slo */
        if (!isnan(p->met.goodput_requests_per_s)) snprintf(goodput, sizeof goodput, "%.2f", p->met.goodput_requests_per_s);
        fprintf(f, "%-9s %7s %8.2f %10.1f %10.1f %9.2f %9.2f %9.0f %9s  %s%s\n", p->strategy, rate,
                p->met.requests_per_s, p->met.ttft_p50_ms, p->met.ttft_p99_ms, p->met.tpot_p50_ms,
                p->met.tpot_p99_ms, p->met.output_tokens_per_s, goodput, util,
                p->met.refused ? "  (some refused)" : "");
    }
}

static int make_streams(const struct options *o, struct serve_request ***out)
{
    const struct serve_options *so = &o->serve;
    struct serve_request **s = calloc((size_t)so->n_rates, sizeof *s);
    if (!s) return pb_fail("out of host memory for %d request streams", so->n_rates);
    for (int r = 0; r < so->n_rates; r++) {
        if (!(s[r] = malloc((size_t)so->requests * sizeof *s[r]))) {
            for (int k = 0; k < r; k++) free(s[k]);
            free(s);
            return pb_fail("out of host memory for %d requests", so->requests);
        }
        serve_stream_make(so, so->rates[r], o->seed, s[r], so->requests);
    }
    *out = s;
    return PB_OK;
}

/* report.html: the answer in words and the serving section, from the files just written. */
static int write_page(const struct options *o, const struct model_spec *m, const struct serve_point *pts, int n,
                      const char *dir)
{
    static char answer[32768];
    serve_explain_text(o, pts, n, answer, sizeof answer);
    return report_write_serving(dir, m->name, o->command, answer);
}

const char *serve_point_kind(const struct serve_point *p) { return p->measured ? "measured" : "predicted"; }

int serve_run(const struct options *o, const struct model_spec *m) { return serve_run_on(o, m, NULL); }

int serve_run_on(const struct options *o, const struct model_spec *m, const struct serve_target *t)
{
    static struct device_profile prof;   /* large; one per run */
    struct machine mc;
    if (t) {
        mc = t->mc;
    } else {
        const char *name = o->gpu_profile ? o->gpu_profile : DEFAULT_PROFILE;
        if (!o->gpu_profile) fprintf(stderr, "bench: --serve without --gpu-profile: using %s\n", DEFAULT_PROFILE);
        PB_TRY(device_profile_load(name, &prof));
        PB_TRY(simulated_machine(o, &prof, &mc));
    }
    struct serve_request **streams = NULL;
    PB_TRY(make_streams(o, &streams));
    int n_rates = o->serve.n_rates, n = o->n_strategies * n_rates;
    struct serve_point *pts = calloc((size_t)n, sizeof *pts);
    int rc = pts ? PB_OK : pb_fail("out of host memory for %d serving points", n);
    int failed = 0;
    for (int s = 0; rc == PB_OK && s < o->n_strategies; s++) {
        serve_strategy(o, m, &prof, &mc, strategy_find(o->strategies[s]), streams, t, &pts[s * n_rates]);
        for (int r = 0; r < n_rates; r++) failed += !pts[s * n_rates + r].ok;
    }
    char dir[4096];
    if (rc == PB_OK) {
        print_table(stdout, o, m, &prof, t, pts, n);
        rc = results_dir_create(o->out_dir, m->name, "-serve", dir, sizeof dir);
    }
    const struct device_profile *shown = t ? t->profile : &prof;   /* NULL: measured */
    if (rc == PB_OK) rc = serve_write_reports(dir, o, m, shown, t ? t->device : NULL, pts, n);
    if (rc == PB_OK && o->explain) rc = serve_explain_print(o, pts, n, dir);
    if (rc == PB_OK) rc = write_page(o, m, pts, n, dir);
    if (rc == PB_OK)
        printf("wrote %s/serve.csv, serve.json, requests.csv, serve.svg, report.html (%s)\n", dir,
               t && !t->ops->predicts ? "measured" : "predicted");
    for (int i = 0; pts && i < n; i++) serve_point_free(&pts[i]);
    free(pts);
    for (int r = 0; r < n_rates; r++) free(streams[r]);
    free(streams);
    if (rc == PB_OK && failed)
        return pb_fail("%d of %d serving points could not be served (reasons above and in serve.json)", failed, n);
    return rc;
}
