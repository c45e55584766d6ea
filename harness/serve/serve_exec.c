/* Serving through an executor's step op (serve_exec.h): slots, the step
 * schedules (the strategy's plan for each step's shape, moved to its slots) and
 * each step's cost from what the executor measured or predicted. */
#include "serve_exec.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "serve_cost.h"

/* The strategy's one-pass schedule for a step of `batch` sequences from slot0 on. */
static int plan_step(const struct serve_exec *x, enum run_mode mode, int batch, int seq, int context, int slot0,
                     struct program *g)
{
    struct workload w = {.batch = batch, .seq = seq, .context = context, .microbatches = 1, .mode = mode,
                         .dtype = x->c.dtype};
    PB_TRY(program_plan(x->c.st, x->c.m, x->c.p, &w, 0, g));
    for (int i = 0; i < g->prompt.n_steps; i++) g->prompt.steps[i].batch_offset += slot0;
    return PB_OK;
}

/* Where the executor wrote no device records (no CUPTI): the step's latency on
 * every device it uses, busy time unknown. */
static void cost_without_records(const struct schedule *s, double ms, struct serve_step_cost *out)
{
    memset(out, 0, sizeof *out);
    out->latency_ms = ms;
    out->n_devices = s->n_devices < PB_MAX_DEVICES ? s->n_devices : PB_MAX_DEVICES;
    for (int d = 0; d < out->n_devices; d++) out->first_ms[d] = out->last_ms[d] = NAN;
    for (int i = 0; i < s->n_steps; i++) {
        int d = s->steps[i].device;
        if (d < 0 || d >= out->n_devices) continue;
        out->first_ms[d] = 0;
        out->last_ms[d] = ms;
        out->compute_ms[d] = out->comm_ms[d] = out->copy_ms[d] = out->busy_ms[d] = NAN;
    }
}

/* One executor step and its cost, device times from its first device record. */
static int run_step(struct serve_exec *x, const struct exec_step *es, struct serve_step_cost *out)
{
    struct trace t;
    trace_init(&t, es->s->n_devices);
    double ms = 0;
    int rc = x->c.ops->step(x->state, es, &t, &ms);
    if (rc == PB_OK && x->c.records && x->c.ops->collect) rc = x->c.ops->collect(x->state, &t, 0);
    uint64_t origin = UINT64_MAX;
    for (int i = 0; i < t.n; i++)
        if (t.rec[i].kind != REC_RANGE && t.rec[i].device >= 0 && t.rec[i].start_ns < origin) origin = t.rec[i].start_ns;
    if (rc == PB_OK && origin != UINT64_MAX) rc = serve_cost_from_trace(&t, ms, origin, out);
    else if (rc == PB_OK) cost_without_records(es->s, ms, out);
    trace_free(&t);
    x->passes++;
    return rc;
}

/* Passes of one engine step run one after another: b starts where a ends. */
static void append_cost(struct serve_step_cost *a, const struct serve_step_cost *b)
{
    double offset = a->latency_ms;
    if (b->n_devices > a->n_devices) {
        for (int d = a->n_devices; d < b->n_devices; d++) a->first_ms[d] = a->last_ms[d] = NAN;
        a->n_devices = b->n_devices;
    }
    for (int d = 0; d < b->n_devices; d++) {
        if (isnan(b->first_ms[d])) continue;
        double f = offset + b->first_ms[d], l = offset + b->last_ms[d];
        a->first_ms[d] = isnan(a->first_ms[d]) ? f : fmin(a->first_ms[d], f);
        a->last_ms[d] = isnan(a->last_ms[d]) ? l : fmax(a->last_ms[d], l);
        a->compute_ms[d] += b->compute_ms[d];
        a->comm_ms[d] += b->comm_ms[d];
        a->copy_ms[d] += b->copy_ms[d];
        a->busy_ms[d] += b->busy_ms[d];
    }
    a->latency_ms = offset + b->latency_ms;
}

static int take_slot(struct serve_exec *x, int group)
{
    for (int s = group * x->group_cap; s < (group + 1) * x->group_cap; s++)
        if (!x->slot_used[s]) {
            x->slot_used[s] = 1;
            return s;
        }
    return -1;
}

/* Request r's next token is out; with its last it gives its slot back. */
static void deliver(struct serve_exec *x, int r, int token)
{
    x->tokens[r][x->done[r]++] = token;
    if (x->done[r] < x->req[r].output_tokens) return;
    x->slot_used[x->slot_of[r]] = 0;
    x->slot_of[r] = -1;
}

static int prefill_one(struct serve_exec *x, int r, int slot, struct serve_step_cost *out)
{
    int len = x->req[r].prompt_tokens, next = -1;
    serve_prompt_tokens(x->c.seed, x->req[r].id, len, x->c.m->vocab, x->scratch);
    struct program g;
    PB_TRY(plan_step(x, MODE_PREFILL, 1, len, len, slot, &g));
    struct exec_step es = {.s = &g.prompt, .slot0 = slot, .batch = 1, .seq = len, .tokens = x->scratch,
                           .next = &next};
    int rc = run_step(x, &es, out);
    program_free(&g);
    if (rc != PB_OK) return rc;
    x->prefill_ms += out->latency_ms;
    x->prefills++;
    deliver(x, r, next);
    return rc;
}

static int prefill(struct serve_exec *x, const struct serve_step_shape *shape, struct serve_step_cost *out)
{
    for (int j = 0; j < shape->batch; j++) {
        int r = shape->req[j], slot = take_slot(x, shape->group);
        if (slot < 0) return pb_fail("internal: group %d has no free slot of %d for request %d", shape->group,
                                     x->group_cap, x->req[r].id);
        x->slot_of[r] = slot;
        struct serve_step_cost one;
        PB_TRY(prefill_one(x, r, slot, &one));
        if (j == 0) *out = one;
        else append_cost(out, &one);
    }
    return PB_OK;
}

/* One token for every member of the group: slots [lo, hi) with each member's
 * position and last token, the group's empty slots at -1. */
static int decode(struct serve_exec *x, const struct serve_step_shape *shape, struct serve_step_cost *out)
{
    int lo = shape->group * x->group_cap, hi = lo;
    for (int j = 0; j < shape->batch; j++)
        if (x->slot_of[shape->req[j]] + 1 > hi) hi = x->slot_of[shape->req[j]] + 1;
    int n = hi - lo, *pos = x->scratch, *tok = pos + n, *next = tok + n, top = 0;
    for (int k = 0; k < n; k++) pos[k] = -1, tok[k] = 0, next[k] = -1;
    for (int j = 0; j < shape->batch; j++) {
        int r = shape->req[j], k = x->slot_of[r] - lo;
        if (k < 0 || x->done[r] < 1) return pb_fail("internal: request %d decodes before its prefill", x->req[r].id);
        pos[k] = x->req[r].prompt_tokens + x->done[r] - 1;   /* where its last token goes */
        tok[k] = x->tokens[r][x->done[r] - 1];
        if (pos[k] > top) top = pos[k];
    }
    struct program g;
    PB_TRY(plan_step(x, MODE_DECODE, n, 1, shape->context, lo, &g));
    struct exec_step es = {.s = &g.prompt, .slot0 = lo, .batch = n, .seq = 1, .pos = top, .tokens = tok,
                           .slot_pos = pos, .next = next};
    int rc = run_step(x, &es, out);
    program_free(&g);
    if (rc == PB_OK) {
        x->decode_ms += out->latency_ms;
        x->decodes++;
    }
    for (int j = 0; rc == PB_OK && j < shape->batch; j++) deliver(x, shape->req[j], next[x->slot_of[shape->req[j]] - lo]);
    return rc;
}

int serve_exec_step(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out)
{
    struct serve_exec *x = ctx;
    if (!shape->req || shape->group < 0 || shape->group >= x->groups)
        return pb_fail("internal: a serving step without its requests or group");
    x->steps++;
    return shape->mode == MODE_PREFILL ? prefill(x, shape, out) : decode(x, shape, out);
}

struct serve_executor serve_exec_executor(struct serve_exec *x)
{
    return (struct serve_executor){.ctx = x, .ordinal = x->c.map->ordinal, .step_cost = serve_exec_step};
}

const int *serve_exec_tokens(const struct serve_exec *x, int i)
{
    return x->tokens && i >= 0 && i < x->n_req ? x->tokens[i] : NULL;
}

static void free_stream(struct serve_exec *x)
{
    for (int i = 0; x->tokens && i < x->n_req; i++) free(x->tokens[i]);
    free(x->tokens);
    free(x->slot_of);
    free(x->done);
    x->tokens = NULL;
    x->slot_of = x->done = NULL;
    x->n_req = 0;
}

int serve_exec_reset(struct serve_exec *x, const struct serve_request *req, int n)
{
    free_stream(x);
    memset(x->slot_used, 0, (size_t)x->slots);
    x->decode_ms = x->prefill_ms = 0;
    x->decodes = x->prefills = 0;
    x->req = req;
    x->tokens = calloc((size_t)n + 1, sizeof *x->tokens);
    x->slot_of = malloc(((size_t)n + 1) * sizeof *x->slot_of);
    x->done = calloc((size_t)n + 1, sizeof *x->done);
    if (!x->tokens || !x->slot_of || !x->done) return pb_fail("out of host memory for %d requests' tokens", n);
    x->n_req = n;
    for (int i = 0; i < n; i++) {
        int fits = req[i].prompt_tokens <= x->max_prompt && req[i].prompt_tokens + req[i].output_tokens <= x->max_context;
        if (!fits && (int64_t)req[i].prompt_tokens + req[i].output_tokens <= x->max_positions)
            return pb_fail("internal: request %d is longer than the executor was sized for", req[i].id);
        x->slot_of[i] = -1;
        if (!(x->tokens[i] = malloc((size_t)req[i].output_tokens * sizeof(int))))
            return pb_fail("out of host memory for request %d's tokens", req[i].id);
        for (int k = 0; k < req[i].output_tokens; k++) x->tokens[i][k] = -1;
    }
    return PB_OK;
}

/* One prefill and one decode step of the first request that fits, in slot 0 before anything is timed
 * (first launches, GEMM algorithm choice), their records dropped. */
static int warm_up(struct serve_exec *x, const struct serve_request *req, int n)
{
    int w = 0;
    while (w + 1 < n && req[w].prompt_tokens > x->max_prompt) w++;
    struct serve_request one = req[w];
    one.prompt_tokens = one.prompt_tokens < x->max_prompt ? one.prompt_tokens : x->max_prompt;
    if (one.output_tokens < 2) one.output_tokens = 2;
    if (one.prompt_tokens + one.output_tokens > x->max_context) one.output_tokens = 1;
    PB_TRY(serve_exec_reset(x, &one, 1));
    int r = 0;
    struct serve_step_shape pre = {.mode = MODE_PREFILL, .batch = 1, .seq = one.prompt_tokens,
                                   .context = one.prompt_tokens, .req = &r};
    struct serve_step_cost cost;
    PB_TRY(serve_exec_step(x, &pre, &cost));
    if (one.output_tokens > 1) {
        struct serve_step_shape dec = {.mode = MODE_DECODE, .batch = 1, .seq = 1, .context = one.prompt_tokens + 1,
                                       .req = &r};
        PB_TRY(serve_exec_step(x, &dec, &cost));
    }
    free_stream(x);
    x->steps = x->passes = 0;
    return PB_OK;
}

static int sizes(struct serve_exec *x, const struct serve_request *req, int n, int max_batch, int groups)
{
    if (n < 1 || max_batch < 1 || groups < 1) return pb_fail("internal: serving %d requests, max batch %d, %d groups",
                                                             n, max_batch, groups);
    x->groups = groups;
    x->group_cap = (max_batch + groups - 1) / groups;
    x->slots = groups * x->group_cap;
    for (int i = 0; i < n; i++) {
        if ((int64_t)req[i].prompt_tokens + req[i].output_tokens > x->max_positions) continue;
        if (req[i].prompt_tokens > x->max_prompt) x->max_prompt = req[i].prompt_tokens;
        if (req[i].prompt_tokens + req[i].output_tokens > x->max_context)
            x->max_context = req[i].prompt_tokens + req[i].output_tokens;
    }
    if (!x->max_prompt) return pb_fail("every request needs more than the %lld positions the placement holds",
                                       (long long)x->max_positions);
    x->slot_used = calloc((size_t)x->slots, 1);
    /* a step's prompt, or decode's positions, tokens and next tokens of a group */
    size_t scratch = (size_t)x->max_prompt > 3 * (size_t)x->group_cap ? (size_t)x->max_prompt : 3 * (size_t)x->group_cap;
    x->scratch = malloc(scratch * sizeof(int));
    return x->slot_used && x->scratch ? PB_OK : pb_fail("out of host memory for %d serving slots", x->slots);
}

int serve_exec_open(struct serve_exec *x, const struct serve_exec_config *c, const struct serve_request *req, int n,
                    int max_batch, int groups, int64_t max_positions)
{
    memset(x, 0, sizeof *x);
    x->c = *c;
    x->max_positions = max_positions;
    if (!c->ops->step) return pb_fail("the %s executor cannot run serving steps", c->ops->name);
    PB_TRY(sizes(x, req, n, max_batch, groups));
    /* The program the executor is sized by: every slot, the longest prompt, and
     * decode passes up to the longest prompt + output. */
    struct workload w = {.batch = x->slots, .seq = x->max_prompt, .context = x->max_prompt, .microbatches = 1,
                         .mode = MODE_PREFILL, .dtype = c->dtype};
    int tokens = x->max_context - x->max_prompt;
    struct program g;
    PB_TRY(program_plan(c->st, c->m, c->p, &w, tokens < 1 ? 1 : tokens, &g));
    x->g = g;
    x->have_program = 1;
    struct exec_config xc = {.m = c->m, .p = c->p, .g = &x->g, .map = c->map, .world = exec_world_single(),
                             .seed = c->seed, .weights = c->weights, .label = c->st->name, .profile = c->profile,
                             .allreduce = c->allreduce, .allreduce_table = c->allreduce_table};
    PB_TRY(c->ops->create(&xc, &x->state));
    if (c->records && c->ops->profiling) PB_TRY(c->ops->profiling(x->state, 1));
    PB_TRY(warm_up(x, req, n));
    if (c->records && c->ops->collect) PB_TRY(c->ops->collect(x->state, NULL, -1));
    return PB_OK;
}

void serve_exec_close(struct serve_exec *x)
{
    if (x->state) {
        if (x->c.records && x->c.ops->profiling) x->c.ops->profiling(x->state, 0);
        x->c.ops->destroy(x->state);
    }
    x->state = NULL;
    if (x->have_program) program_free(&x->g);
    x->have_program = 0;
    free_stream(x);
    free(x->slot_used);
    free(x->scratch);
    x->slot_used = NULL;
    x->scratch = NULL;
}
