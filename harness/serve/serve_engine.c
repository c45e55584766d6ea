/* The engine loop: a discrete-event walk over step boundaries. Each group has at
 * most one step in flight; the group whose boundary comes first decides next.
 * Sequences that finish in a step give back their batch slot and KV room at that
 * step's end, not when the step is decided. */
#include "serve_engine.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"

struct group {
    int *running;          /* request indices in its decode batch */
    int n_running;
    double ready_ms;       /* its next boundary; INFINITY while parked */
    int parked;            /* waiting for another group's step to free room */
    double release_ms;     /* end of its step in flight, when its finished sequences leave */
    int64_t release_kv;
    int release_seqs;
};

struct engine {
    const struct serve_executor *ex;
    const struct serve_policy *pol;
    const struct serve_request *req;
    struct serve_request_result *res;
    struct serve_totals *tot;
    int n, head;           /* head: first request not yet admitted (FCFS) */
    int group_cap;
    int *tokens_done;      /* per request */
    int64_t kv_used;
    int in_flight;
    double device_free[PB_MAX_DEVICES];   /* per GPU (ordinal): when its last step there ends */
    struct group *g;
    int *admitted;         /* scratch: the requests of one prefill */
};

static int64_t kv_need(const struct serve_request *r)
{
    return (int64_t)r->prompt_tokens + r->output_tokens;
}

/* A request that could never run is refused before serving starts, with the reason. */
static int refuse_impossible(struct engine *e)
{
    int refused = 0;
    for (int i = 0; i < e->n; i++) {
        struct serve_request_result *r = &e->res[i];
        int64_t need = kv_need(&e->req[i]);
        if (need > e->pol->kv_capacity_tokens)
            snprintf(r->reason, sizeof r->reason, "needs %lld KV cache positions, the placement holds %lld "
                     "beside its weights", (long long)need, (long long)e->pol->kv_capacity_tokens);
        else if (e->pol->max_context > 0 && need > e->pol->max_context)
            snprintf(r->reason, sizeof r->reason, "needs %lld positions, the model's max_position_embeddings "
                     "is %d", (long long)need, e->pol->max_context);
        else continue;
        r->status = SERVE_REFUSED;
        r->first_token_ms = r->finish_ms = NAN;
        refused++;
    }
    return refused;
}

static void apply_releases(struct engine *e, double now)
{
    for (int h = 0; h < e->pol->groups; h++) {
        struct group *g = &e->g[h];
        if (g->release_ms > now || (!g->release_kv && !g->release_seqs)) continue;
        e->kv_used -= g->release_kv;
        e->in_flight -= g->release_seqs;
        g->release_kv = g->release_seqs = 0;
    }
}

static void skip_refused(struct engine *e)
{
    while (e->head < e->n && e->res[e->head].status == SERVE_REFUSED) e->head++;
}

/* Admit waiting requests into group gi at time now: FCFS, while slots and KV allow. */
static int admit(struct engine *e, int gi, double now)
{
    int k = 0;
    for (skip_refused(e); e->head < e->n; skip_refused(e)) {
        const struct serve_request *r = &e->req[e->head];
        if (r->arrival_ms > now || e->in_flight >= e->pol->max_batch ||
            e->g[gi].n_running + k >= e->group_cap)
            break;
        if (e->kv_used + kv_need(r) > e->pol->kv_capacity_tokens) {
            e->tot->kv_waits++;
            break;
        }
        e->kv_used += kv_need(r);
        e->in_flight++;
        e->admitted[k++] = e->head++;
    }
    if (e->in_flight > e->tot->max_in_flight) e->tot->max_in_flight = e->in_flight;
    return k;
}

/* Cost the step, start it when its group and the GPUs it uses allow (logical
 * devices on one GPU share it: its span is theirs together), account busy time. */
static int run_step(struct engine *e, const struct serve_step_shape *shape, double now, double *end_ms)
{
    struct serve_step_cost c;
    PB_TRY(e->ex->step_cost(e->ex->ctx, shape, &c));
    if (c.n_devices > PB_MAX_DEVICES) c.n_devices = PB_MAX_DEVICES;
    double first[PB_MAX_DEVICES], last[PB_MAX_DEVICES];
    for (int g = 0; g < PB_MAX_DEVICES; g++) first[g] = last[g] = NAN;
    for (int d = 0; d < c.n_devices; d++) {
        int g = e->ex->ordinal ? e->ex->ordinal[d] : d;
        if (isnan(c.first_ms[d]) || g < 0 || g >= PB_MAX_DEVICES) continue;
        first[g] = isnan(first[g]) ? c.first_ms[d] : fmin(first[g], c.first_ms[d]);
        last[g] = isnan(last[g]) ? c.last_ms[d] : fmax(last[g], c.last_ms[d]);
    }
    double start = now;
    for (int g = 0; g < PB_MAX_DEVICES; g++)
        if (!isnan(first[g]) && e->device_free[g] - first[g] > start) start = e->device_free[g] - first[g];
    for (int g = 0; g < PB_MAX_DEVICES; g++)
        if (!isnan(first[g])) e->device_free[g] = start + last[g];
    for (int d = 0; d < c.n_devices; d++) {
        if (isnan(c.first_ms[d])) continue;
        e->tot->compute_ms[d] += c.compute_ms[d];
        e->tot->comm_ms[d] += c.comm_ms[d];
        e->tot->copy_ms[d] += c.copy_ms[d];
        e->tot->busy_ms[d] += c.busy_ms[d];
    }
    if (c.n_devices > e->tot->n_devices) e->tot->n_devices = c.n_devices;
    *end_ms = start + c.latency_ms;
    return PB_OK;
}

/* Request i has produced a token at t; returns 1 if that was its last. */
static int emit_token(struct engine *e, int i, double t)
{
    struct serve_request_result *r = &e->res[i];
    r->token_ms[e->tokens_done[i]++] = t;
    if (e->tokens_done[i] == 1) r->first_token_ms = t;
    if (e->tokens_done[i] < e->req[i].output_tokens) return 0;
    r->finish_ms = t;
    r->status = SERVE_DONE;
    return 1;
}

static void leave(struct engine *e, struct group *g, int i, double t)
{
    g->release_ms = t;
    g->release_kv += kv_need(&e->req[i]);
    g->release_seqs++;
}

static int prefill(struct engine *e, int gi, int k, double now, int *finished)
{
    struct group *g = &e->g[gi];
    struct serve_step_shape shape = {.mode = MODE_PREFILL, .batch = k, .group = gi, .req = e->admitted};
    for (int j = 0; j < k; j++)
        if (e->req[e->admitted[j]].prompt_tokens > shape.seq) shape.seq = e->req[e->admitted[j]].prompt_tokens;
    shape.context = shape.seq;
    double end;
    PB_TRY(run_step(e, &shape, now, &end));
    e->tot->prefill_steps++;
    for (int j = 0; j < k; j++) {
        int i = e->admitted[j];
        if (emit_token(e, i, end)) {
            leave(e, g, i, end);
            (*finished)++;
        } else {
            g->running[g->n_running++] = i;
        }
    }
    g->ready_ms = end;
    return PB_OK;
}

static int decode(struct engine *e, int gi, double now, int *finished)
{
    struct group *g = &e->g[gi];
    /* Each sequence attends to its prompt and the tokens so far (the last one is fed now). */
    double positions = 0;
    for (int j = 0; j < g->n_running; j++) {
        int i = g->running[j];
        positions += e->req[i].prompt_tokens + e->tokens_done[i];
    }
    struct serve_step_shape shape = {.mode = MODE_DECODE, .batch = g->n_running, .seq = 1,
                                     .context = (int)ceil(positions / g->n_running), .group = gi,
                                     .req = g->running};
    double end;
    PB_TRY(run_step(e, &shape, now, &end));
    e->tot->decode_steps++;
    e->tot->decode_batch_sum += g->n_running;
    e->tot->decode_context_sum += shape.context;
    int kept = 0;
    for (int j = 0; j < g->n_running; j++) {
        int i = g->running[j];
        if (emit_token(e, i, end)) {
            leave(e, g, i, end);
            (*finished)++;
        } else {
            g->running[kept++] = i;
        }
    }
    g->n_running = kept;
    g->ready_ms = end;
    return PB_OK;
}

static int earliest_group(const struct engine *e)
{
    int best = -1;
    for (int h = 0; h < e->pol->groups; h++)
        if (!e->g[h].parked && (best < 0 || e->g[h].ready_ms < e->g[best].ready_ms)) best = h;
    return best;
}

/* A group with nothing to run: wait for the next arrival, or, if the next request
 * has arrived but has no room, park until some step ends. */
static void idle_group(struct engine *e, int gi, double now)
{
    skip_refused(e);
    struct group *g = &e->g[gi];
    if (e->head < e->n && e->req[e->head].arrival_ms > now) {
        g->ready_ms = e->req[e->head].arrival_ms;
        return;
    }
    g->parked = 1;
    g->ready_ms = INFINITY;
}

static void unpark(struct engine *e, double at)
{
    for (int h = 0; h < e->pol->groups; h++)
        if (e->g[h].parked) {
            e->g[h].parked = 0;
            e->g[h].ready_ms = at;
        }
}

static int engine_loop(struct engine *e, int remaining)
{
    while (remaining > 0) {
        int gi = earliest_group(e);
        if (gi < 0) return pb_fail("serving stalled with %d requests left (every group waits for room)", remaining);
        struct group *g = &e->g[gi];
        double now = g->ready_ms;
        apply_releases(e, now);
        int finished = 0, k = admit(e, gi, now);
        if (k > 0) PB_TRY(prefill(e, gi, k, now, &finished));
        else if (g->n_running > 0) PB_TRY(decode(e, gi, now, &finished));
        else {
            idle_group(e, gi, now);
            continue;
        }
        remaining -= finished;
        unpark(e, g->ready_ms);
    }
    return PB_OK;
}

void serve_results_free(struct serve_request_result *res, int n)
{
    for (int i = 0; res && i < n; i++) {
        free(res[i].token_ms);
        res[i].token_ms = NULL;
    }
}

int serve_engine_run(const struct serve_executor *ex, const struct serve_policy *pol,
                     const struct serve_request *req, int n, struct serve_request_result *res,
                     struct serve_totals *tot)
{
    if (pol->groups < 1 || pol->max_batch < 1) return pb_fail("serving needs max_batch >= 1 and groups >= 1");
    memset(tot, 0, sizeof *tot);
    memset(res, 0, (size_t)n * sizeof *res);
    struct engine e = {.ex = ex, .pol = pol, .req = req, .res = res, .tot = tot, .n = n,
                       .group_cap = (pol->max_batch + pol->groups - 1) / pol->groups};
    e.tokens_done = calloc((size_t)n + 1, sizeof *e.tokens_done);
    e.admitted = calloc((size_t)n + 1, sizeof *e.admitted);
    e.g = calloc((size_t)pol->groups, sizeof *e.g);
    int rc = e.tokens_done && e.admitted && e.g ? PB_OK : pb_fail("out of host memory serving %d requests", n);
    for (int h = 0; rc == PB_OK && h < pol->groups; h++)
        if (!(e.g[h].running = calloc((size_t)e.group_cap, sizeof *e.g[h].running)))
            rc = pb_fail("out of host memory for %d batch slots", e.group_cap);
    for (int i = 0; rc == PB_OK && i < n; i++) {
        res[i] = (struct serve_request_result){.req = req[i], .first_token_ms = NAN, .finish_ms = NAN};
        if (!(res[i].token_ms = calloc((size_t)req[i].output_tokens, sizeof *res[i].token_ms)))
            rc = pb_fail("out of host memory for request %d's %d token times", i, req[i].output_tokens);
    }
    if (rc == PB_OK) rc = engine_loop(&e, n - refuse_impossible(&e));
    for (int h = 0; e.g && h < pol->groups; h++) free(e.g[h].running);
    free(e.g);
    free(e.admitted);
    free(e.tokens_done);
    if (rc != PB_OK) serve_results_free(res, n);
    return rc;
}
