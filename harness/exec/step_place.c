/* Step placement for the issue loop (see step_place.h). */
#include "step_place.h"

int exec_consumer(const struct schedule *s, int i)
{
    for (int k = i + 1; k < s->n_steps; k++)
        for (int d = 0; d < s->steps[k].n_deps; d++)
            if (s->steps[k].deps[d] == i) return k;
    return -1;
}

struct step_here step_place_all(const struct schedule *s, int i)
{
    return (struct step_here){s->steps[i].device, s->steps[i].stream, STEP_ISSUED};
}

void token_route_none(struct token_route *r)
{
    r->from = STEP_HEAD;
    for (int d = 0; d < PB_MAX_DEVICES; d++) r->to[d] = -1;
}

struct step_here step_place_rank(const struct schedule *s, int i, int rank, const struct token_route *tokens)
{
    const struct step *st = &s->steps[i];
    if (st->kind == STEP_COPY) {
        if (st->src == rank) return (struct step_here){rank, st->device == rank ? st->stream : 0, STEP_ISSUED};
        if (st->dst != rank) return (struct step_here){rank, 0, STEP_NOT_HERE};
        int c = exec_consumer(s, i);
        return (struct step_here){rank, c >= 0 && s->steps[c].device == rank ? s->steps[c].stream : 0, STEP_RECEIVED};
    }
    if (st->device == rank) return (struct step_here){rank, st->stream, STEP_ISSUED};
    if (tokens && st->kind == tokens->from && st->device >= 0 && st->device < PB_MAX_DEVICES &&
        tokens->to[st->device] == rank)
        return (struct step_here){rank, 0, STEP_RECEIVED};
    return (struct step_here){rank, 0, STEP_NOT_HERE};
}
