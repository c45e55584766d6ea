/* The configurations bench --search prices: every strategy x tensor-parallel degree
 * x microbatch count x virtual stages that the counts allow (docs/METRICS.md,
 * "Search"). Whether one can be placed and fits in memory is the pricer's question
 * (search_price.h); this file only lists the candidates, each exactly once. */
#ifndef PB_SEARCH_SPACE_H
#define PB_SEARCH_SPACE_H
#include "../../base/limits.h"
#include "../../models/model_spec.h"

struct search_config {
    char strategy[PB_STRATEGY_NAME_LEN];
    int tp;                  /* GPUs per tensor-parallel group (1: no tensor parallelism) */
    int gpus;                /* GPUs it uses: tp on D < N GPUs and single leave the rest free */
    int stages;              /* pipeline stages as configured (sequential splits: one per GPU) */
    int microbatches;        /* m: pipeline and hybrid; 1 elsewhere */
    int virtual_stages;      /* V: pipeline and hybrid; 1 elsewhere */
};

/* Candidates for `gpus` GPUs, a batch of `batch` sequences and model m, for the
 * strategies named in names[0..n_names) (registry names):
 *   single                 1 GPU
 *   naive, auto, optimal   all GPUs, one pass (so is any other strategy: it has no axes here)
 *   pipeline               all GPUs; m every divisor of batch; V 1, and on 2+ GPUs every V > 1
 *                          with layers divisible by gpus x V (equal chunks, Megatron-LM's rule)
 *   tp                     D = 2..gpus, on the first D GPUs (whether D splits the heads is a refusal;
 *                          tp 1 would be single again)
 *   hybrid                 D every divisor of gpus from 2, gpus/D stages; m every divisor of batch;
 *                          V as pipeline's over the stages (hybrid tp 1 would be pipeline again)
 * Writes at most cap into out; returns how many there are (more than cap: the
 * caller's array was short), or -1 with a message. */
int search_enumerate(const struct model_spec *m, int gpus, int batch, const char *const *names, int n_names,
                     struct search_config *out, int cap);
/* "tp 2", "pipeline m=8 V=2", "hybrid tp 2 x 2 stages m=4": how reports name one. */
void search_config_label(const struct search_config *c, char *buf, size_t len);
#endif
