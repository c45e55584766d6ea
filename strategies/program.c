/* A program: the prompt schedule, the decode template and the pass table (see
 * strategy.h). Planned here once, so every executor runs the same passes at the
 * same contexts. */
#include <stdlib.h>
#include <string.h>
#include "../base/check.h"
#include "strategy.h"

static void stamp(struct schedule *s, int seq, int context)
{
    for (int i = 0; i < s->n_steps; i++) {
        s->steps[i].seq = seq;
        s->steps[i].context = context;
    }
}

int schedule_plan(const struct strategy *st, const struct model_spec *m, const struct placement *p,
                  const struct workload *w, struct schedule *out)
{
    PB_TRY(st->plan(m, p, w, out));
    stamp(out, w->seq, w->context);
    return PB_OK;
}

/* The template's work at pass 1 and its growth per position, from a second plan one
 * position further on (the strategies' formulas are linear in the context at seq 1). */
static int plan_decode(const struct strategy *st, const struct model_spec *m, const struct placement *p,
                       const struct workload *w, struct schedule *out)
{
    struct workload d = *w;
    d.mode = MODE_DECODE;
    d.seq = 1;
    d.context = w->seq + 1;
    PB_TRY(schedule_plan(st, m, p, &d, out));
    d.context++;
    struct schedule next;
    if (schedule_plan(st, m, p, &d, &next) != PB_OK) return PB_ERR;
    int same = next.n_steps == out->n_steps;
    for (int i = 0; same && i < out->n_steps; i++) {
        struct step *a = &out->steps[i];
        same = a->kind == next.steps[i].kind && a->device == next.steps[i].device;
        a->flops_per_position = next.steps[i].flops - a->flops;
        a->bytes_per_position = next.steps[i].mem_bytes - a->mem_bytes;
    }
    schedule_free(&next);
    if (!same) return pb_fail("%s: the decode schedule changes shape with the context length", st->name);
    return PB_OK;
}

/* Each decode embed waits for the steps of the previous pass that produced its
 * sequences' tokens: a head, or tp's all-gather (every rank picks the tokens). */
static int plan_feed(const struct schedule *prev, const struct schedule *dec, struct token_feed **out, int *n)
{
    int cap = 0;
    *out = NULL;
    *n = 0;
    for (int i = 0; i < dec->n_steps; i++) {
        const struct step *e = &dec->steps[i];
        if (e->kind != STEP_EMBED) continue;
        for (int k = 0; k < prev->n_steps; k++) {
            const struct step *h = &prev->steps[k];
            if (h->kind != STEP_HEAD && h->kind != STEP_ALLGATHER) continue;
            if (!(h->batch_offset < e->batch_offset + e->batch && e->batch_offset < h->batch_offset + h->batch))
                continue;
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                struct token_feed *grown = realloc(*out, (size_t)cap * sizeof **out);
                if (!grown) return pb_fail("out of host memory planning token feeds");
                *out = grown;
            }
            (*out)[(*n)++] = (struct token_feed){.embed = i, .from = k};
        }
    }
    return PB_OK;
}

int program_plan(const struct strategy *st, const struct model_spec *m, const struct placement *p,
                 const struct workload *w, int tokens, struct program *out)
{
    memset(out, 0, sizeof *out);
    out->batch = w->batch;
    out->seq = w->seq;
    out->tokens = tokens > 0 ? tokens : 0;
    out->greedy = out->tokens > 0;
    out->n_passes = 1 + out->tokens;
    PB_TRY(schedule_plan(st, m, p, w, &out->prompt));
    int rc = PB_OK;
    if (out->tokens) {
        rc = plan_decode(st, m, p, w, &out->decode);
        if (rc == PB_OK) rc = plan_feed(&out->prompt, &out->decode, &out->feed[0], &out->n_feed[0]);
        if (rc == PB_OK) rc = plan_feed(&out->decode, &out->decode, &out->feed[1], &out->n_feed[1]);
    }
    if (rc == PB_OK && !(out->passes = calloc((size_t)out->n_passes, sizeof *out->passes)))
        rc = pb_fail("out of host memory for %d passes", out->n_passes);
    if (rc != PB_OK) {
        program_free(out);
        return PB_ERR;
    }
    out->passes[0] = (struct pass){.decode = 0, .pos = 0, .context = w->context};
    for (int k = 1; k < out->n_passes; k++)
        out->passes[k] = (struct pass){.decode = 1, .pos = w->seq + k - 1, .context = w->seq + k};
    return PB_OK;
}

void program_free(struct program *g)
{
    schedule_free(&g->prompt);
    schedule_free(&g->decode);
    free(g->passes);
    free(g->feed[0]);
    free(g->feed[1]);
    memset(g, 0, sizeof *g);
}

const struct schedule *program_pass_schedule(const struct program *g, int k)
{
    return g->passes[k].decode ? &g->decode : &g->prompt;
}

const struct token_feed *program_pass_feed(const struct program *g, int k, int *n)
{
    if (k == 0) {
        *n = 0;
        return NULL;
    }
    int after_decode = g->passes[k - 1].decode;
    *n = g->n_feed[after_decode];
    return g->feed[after_decode];
}

int program_step_context(const struct program *g, int k, const struct step *st)
{
    return g->passes[k].decode ? st->context + (g->passes[k].context - g->passes[1].context) : st->context;
}

int program_streams_per_device(const struct program *g)
{
    int n = g->prompt.streams_per_device;
    if (g->tokens && g->decode.streams_per_device > n) n = g->decode.streams_per_device;
    return n;
}

int program_has_collectives(const struct program *g)
{
    const struct schedule *s[2] = {&g->prompt, &g->decode};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < s[k]->n_steps; i++)
            if (step_is_collective(&s[k]->steps[i])) return 1;
    return 0;
}
