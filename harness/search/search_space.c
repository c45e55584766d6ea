/* Lists bench --search's candidates; the ranges are in search_space.h. */
#include "search_space.h"
#include <stdio.h>
#include <string.h>
#include "../../base/check.h"

struct collector {
    struct search_config *out;
    int cap, n;
};

static void add(struct collector *c, const char *name, int tp, int gpus, int stages, int mb, int v)
{
    if (c->n < c->cap) {
        struct search_config *s = &c->out[c->n];
        snprintf(s->strategy, sizeof s->strategy, "%s", name);
        s->tp = tp;
        s->gpus = gpus;
        s->stages = stages;
        s->microbatches = mb;
        s->virtual_stages = v;
    }
    c->n++;
}

/* Microbatch counts x virtual stages of a pipeline of `stages` stages, each group of
 * tp GPUs. V > 1 only where the layers cut into stages x V equal chunks, as
 * Megatron-LM's interleaved schedule requires: uneven chunks add nothing but noise. */
static void add_pipelined(struct collector *c, const char *name, int tp, int gpus, int stages, int batch,
                          int layers)
{
    for (int v = 1; v <= layers; v++) {
        if (v > 1 && (stages < 2 || layers % (stages * v))) continue;
        for (int mb = 1; mb <= batch; mb++)
            if (batch % mb == 0) add(c, name, tp, gpus, stages, mb, v);
    }
}

static void add_strategy(struct collector *c, const char *name, const struct model_spec *m, int gpus, int batch)
{
    if (!strcmp(name, "single")) {
        add(c, name, 1, 1, 1, 1, 1);
    } else if (!strcmp(name, "pipeline")) {
        add_pipelined(c, name, 1, gpus, gpus, batch, m->layers);
    } else if (!strcmp(name, "tp")) {
        for (int d = 2; d <= gpus; d++) add(c, name, d, d, 1, 1, 1);   /* tp 1 is single */
    } else if (!strcmp(name, "hybrid")) {
        for (int d = 2; d <= gpus; d++)   /* hybrid tp 1 is pipeline */
            if (gpus % d == 0) add_pipelined(c, name, d, gpus, gpus / d, batch, m->layers);
    } else {
        /* naive, auto, optimal, and any strategy without axes of its own: one pass on all GPUs */
        add(c, name, 1, gpus, gpus, 1, 1);
    }
}

int search_enumerate(const struct model_spec *m, int gpus, int batch, const char *const *names, int n_names,
                     struct search_config *out, int cap)
{
    if (gpus < 1 || gpus > PB_MAX_DEVICES) return pb_fail("--search: --gpus %d is not 1..%d", gpus, PB_MAX_DEVICES);
    if (batch < 1) return pb_fail("--search: --batch %d is not a positive count of sequences", batch);
    struct collector c = {.out = out, .cap = cap};
    for (int i = 0; i < n_names; i++) add_strategy(&c, names[i], m, gpus, batch);
    return c.n;
}

void search_config_label(const struct search_config *c, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s", c->strategy);
    if (!strcmp(c->strategy, "tp")) n += (size_t)snprintf(buf + n, n < len ? len - n : 0, " %d", c->tp);
    if (!strcmp(c->strategy, "hybrid"))
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, " tp %d x %d stage%s", c->tp, c->stages,
                              c->stages == 1 ? "" : "s");
    if (!strcmp(c->strategy, "pipeline") || !strcmp(c->strategy, "hybrid")) {
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, " m=%d", c->microbatches);
        if (c->virtual_stages > 1) snprintf(buf + n, n < len ? len - n : 0, " V=%d", c->virtual_stages);
    }
}
