/* --explain for --serve: per offered rate, which placement serves best and why,
 * every number taken from the points. "Best" is the most goodput when --slo was
 * given, else the most requests/s achieved; within 2% of that, the lower E2E p99. */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "serve_report.h"

struct text {
    char *buf;
    size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void say(struct text *t, const char *fmt, ...)
{
    if (t->used + 1 >= t->len) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
    va_end(ap);
    if (k > 0) t->used += (size_t)k;
    if (t->used >= t->len) {
        t->used = t->len - 1;
        if (t->len > 4) memcpy(t->buf + t->len - 4, "...", 4);
    }
}

static double score(const struct serve_point *p, int slo_given)
{
    return slo_given ? p->met.goodput_requests_per_s : p->met.requests_per_s;
}

static int better(const struct serve_point *a, const struct serve_point *b, int slo_given)
{
    double sa = score(a, slo_given), sb = score(b, slo_given);
    if (fabs(sa - sb) <= 0.02 * fmax(sa, sb)) return a->met.e2e_p99_ms < b->met.e2e_p99_ms;
    return sa > sb;
}

/* Why a placement serves as it does: the mechanism, in one clause. */
static void mechanism(struct text *t, const struct serve_point *p)
{
    if (!strcmp(p->strategy, "tp"))
        say(t, "every GPU works on every layer and reads its share of the weights each step, paying two "
               "all-reduces per layer");
    else if (!strcmp(p->strategy, "pipeline"))
        say(t, "%d groups in flight keep its %d stages busy on different groups at once", p->groups, p->n_devices);
    else if (!strcmp(p->strategy, "single"))
        say(t, "one GPU runs every step with no copies, and its KV cache is what the weights leave of one GPU");
    else say(t, "one GPU works at a time: each step walks the GPUs in turn, the others wait");
}

static void utilisation(struct text *t, const struct serve_point *p)
{
    say(t, "busy ");
    for (int d = 0; d < p->tot.n_devices; d++) {
        double u = serve_point_utilisation(p, d);
        if (isnan(u)) say(t, "%sunknown", d ? "/" : "");   /* no CUPTI records */
        else say(t, "%s%.0f%%", d ? "/" : "", 100 * u);
    }
}

static void describe(struct text *t, const struct serve_point *p, int slo_given)
{
    say(t, "%s: %.3g requests/s achieved", p->strategy, p->met.requests_per_s);
    if (slo_given) say(t, ", goodput %.3g/s", p->met.goodput_requests_per_s);
    say(t, ", TTFT p99 %.4g ms, TPOT p99 %.4g ms (", p->met.ttft_p99_ms, p->met.tpot_p99_ms);
    utilisation(t, p);
    say(t, "; a decode step at its mean batch %.1f takes %.4g ms)", p->tot.decode_steps ? p->tot.decode_batch_sum / p->tot.decode_steps : 0,
        p->decode_step_ms);
}

static void rate_paragraph(struct text *t, const struct serve_point *p, int n, double rate, int slo_given)
{
    const struct serve_point *best = NULL, *second = NULL;
    for (int i = 0; i < n; i++) {
        if (p[i].rate != rate || !p[i].ok || !(p[i].met.completed > 0)) continue;
        if (!best || better(&p[i], best, slo_given)) second = best, best = &p[i];
        else if (!second || better(&p[i], second, slo_given)) second = &p[i];
    }
    if (isinf(rate)) say(t, "All %d requests at once: ", best ? best->met.requests : 0);
    else say(t, "At %g requests/s offered: ", rate);
    if (!best) {
        say(t, "no placement served a request.\n\n");
        return;
    }
    say(t, "%s serves best (%s). ", best->strategy, serve_point_kind(best));
    describe(t, best, slo_given);
    say(t, ": ");
    mechanism(t, best);
    say(t, ".");
    if (!isinf(rate) && best->met.requests_per_s < 0.9 * rate)
        say(t, " Even it cannot keep up with the offered rate: requests queue and TTFT grows with the stream.");
    if (best->tot.kv_waits) say(t, " Its KV cache (%lld positions) made new requests wait at %d step boundaries.",
                                (long long)best->kv_capacity_tokens, best->tot.kv_waits);
    if (second) {
        say(t, " Next, ");
        describe(t, second, slo_given);
        say(t, ": ");
        mechanism(t, second);
        say(t, ".");
        if (second->tot.kv_waits)
            say(t, " Its KV cache (%lld positions) made new requests wait at %d step boundaries.",
                (long long)second->kv_capacity_tokens, second->tot.kv_waits);
    }
    say(t, "\n\n");
}

void serve_explain_text(const struct options *o, const struct serve_point *p, int n, char *buf, size_t len)
{
    struct text t = {.buf = buf, .len = len};
    if (len) buf[0] = 0;
    const struct serve_options *so = &o->serve;
    if (n > 0 && p[0].measured)
        say(&t, "Serving %d requests, at most %d sequences in flight, through the CUDA executor (every step "
                "timed on the GPUs). ", so->requests, so->max_batch);
    else
        say(&t, "Serving %d requests, at most %d sequences in flight, on the cost model (every number is "
                "predicted, none measured). ", so->requests, so->max_batch);
    if (so->slo_given) {
        say(&t, "Best means the most goodput: requests within ");
        if (isfinite(so->slo_ttft_ms)) say(&t, "TTFT %g ms%s", so->slo_ttft_ms, isfinite(so->slo_tpot_ms) ? " and " : "");
        if (isfinite(so->slo_tpot_ms)) say(&t, "TPOT %g ms", so->slo_tpot_ms);
        say(&t, " per second.\n\n");
    } else {
        say(&t, "Without --slo, best means the most requests/s achieved, then the lower E2E p99.\n\n");
    }
    for (int r = 0; r < so->n_rates; r++) rate_paragraph(&t, p, n, so->rates[r], so->slo_given);
    int refused = 0;
    for (int i = 0; i < n; i++) refused += p[i].ok ? p[i].met.refused : 0;
    if (refused) say(&t, "%d request(s) were refused over all points: they cannot fit the KV cache of that "
                         "placement even alone (requests.csv says why).\n", refused);
    for (int i = 0; i < n; i++)
        if (!p[i].ok && (i == 0 || strcmp(p[i].strategy, p[i - 1].strategy)))
            say(&t, "%s was not served: %s\n", p[i].strategy, p[i].reason);
}

int serve_explain_print(const struct options *o, const struct serve_point *p, int n, const char *dir)
{
    static char text[32768];
    serve_explain_text(o, p, n, text, sizeof text);
    fputs(text, stdout);
    char path[4200];
    PB_TRY(path_join(path, sizeof path, dir, "explain.txt"));
    return atomic_write_text(path, text);
}
