/* Pipeline stages cut into chunks: the balanced layer runs of pipeline and hybrid,
 * their assignment to stages (interleaved when a stage holds several chunks, as in
 * Megatron-LM's virtual pipeline stages) and the order microbatches are issued in. */
#include <float.h>
#include <stdlib.h>
#include "../base/check.h"
#include "strategy.h"

static double kind_work(const struct model_spec *m, const struct workload *w, enum module_kind kind)
{
    struct module mods[PB_MAX_MODULES];
    int n = model_modules(m, w->dtype, mods);
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (mods[i].kind == kind) sum += module_work(m, &mods[i], w);
    return sum;
}

int layer_chunks(const struct model_spec *m, const struct workload *w, int chunks, int *first,
                 const char *strategy)
{
    int L = m->layers;
    if (chunks < 1 || chunks > L)
        return pb_fail("%s: %d chunks of layers but %s has %d layers: every chunk needs at least one; "
                       "use fewer stages or --virtual-stages", strategy, chunks, m->name, L);
    struct module layer = {.kind = MODULE_LAYER};
    double per_layer = module_work(m, &layer, w);
    double embed = kind_work(m, w, MODULE_EMBED);
    double tail = kind_work(m, w, MODULE_NORM) + kind_work(m, w, MODULE_HEAD);
    /* best[k * (L + 1) + j]: least possible largest run cutting layers [0, j) into runs 0..k. */
    double *best = malloc(sizeof(double) * (size_t)chunks * (L + 1));
    int *from = malloc(sizeof(int) * (size_t)chunks * (L + 1));
    if (!best || !from) {
        free(best);
        free(from);
        return pb_fail("%s: out of host memory", strategy);
    }
    for (int k = 0; k < chunks; k++)
        for (int j = 0; j <= L; j++) {
            double *b = &best[k * (L + 1) + j];
            *b = DBL_MAX;
            for (int i = k == 0 ? 0 : k; i < j && (k > 0 || i == 0); i++) {
                double prev = k == 0 ? 0 : best[(k - 1) * (L + 1) + i];
                if (prev == DBL_MAX) continue;
                double run = (j - i) * per_layer + (k == 0 ? embed : 0) + (k == chunks - 1 ? tail : 0);
                double cost = prev > run ? prev : run;
                if (cost < *b) {
                    *b = cost;
                    from[k * (L + 1) + j] = i;
                }
            }
        }
    for (int k = chunks - 1, j = L; k >= 0; k--) {
        first[k] = from[k * (L + 1) + j];
        j = first[k];
    }
    free(best);
    free(from);
    return PB_OK;
}

void placement_assign_chunks(struct placement *p, const int *first, int chunks, int stages)
{
    int chunk = 0;
    for (int i = 0; i < p->n_modules; i++) {
        const struct module *mod = &p->modules[i];
        if (mod->kind == MODULE_LAYER) {
            while (chunk + 1 < chunks && mod->layer >= first[chunk + 1]) chunk++;
            p->device[i] = chunk % stages;
        } else {
            p->device[i] = mod->kind == MODULE_EMBED || mod->kind == MODULE_ROTARY ? 0 : (chunks - 1) % stages;
        }
    }
}

/* Stage g issues its k-th unit at about time k + g when every unit takes as long: the
 * unit it waits for (the previous virtual stage) has a smaller key, so sorting by the
 * key gives an order in which inputs always come first. */
struct keyed_unit {
    int key;
    struct pipeline_unit u;
};

static int by_key(const void *a, const void *b)
{
    const struct keyed_unit *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->u.stage < y->u.stage ? -1 : x->u.stage > y->u.stage;
}

int pipeline_order(int stages, int virtual_stages, int microbatches, struct pipeline_unit *out)
{
    int p = stages, v = virtual_stages, n = microbatches * v * p, at = 0;
    struct keyed_unit *ku = malloc((size_t)n * sizeof *ku);
    if (!ku) return pb_fail("out of host memory ordering %d pipeline units", n);
    for (int mb = 0; mb < microbatches; mb++)
        for (int c = 0; c < v; c++)
            for (int g = 0; g < p; g++) {
                /* Megatron's interleaved forward order: groups of p microbatches pass
                 * chunk 0, then chunk 1, ... before the next group starts. */
                int k = (mb / p) * p * v + c * p + mb % p;
                ku[at++] = (struct keyed_unit){.key = k + g, .u = {.microbatch = mb, .chunk = c, .stage = g}};
            }
    qsort(ku, (size_t)n, sizeof *ku, by_key);
    for (int i = 0; i < n; i++) out[i] = ku[i].u;
    free(ku);
    return PB_OK;
}
