/* Which all-reduce a tensor-parallel sum uses, and the choice of `auto` by message
 * size. Plain C with no CUDA types, so the command line, the cost model and the
 * executors share one rule (kernels/allreduce.h implements the peer-memory ones). */
#ifndef PB_ALLREDUCE_ALGO_H
#define PB_ALLREDUCE_ALGO_H
#include <stdint.h>

enum allreduce_algo {
    ALLREDUCE_AUTO,      /* by size from the device profile's table (below) */
    ALLREDUCE_NCCL,      /* ncclAllReduce: needs distinct GPUs */
    ALLREDUCE_ONESHOT,   /* every rank reads every peer's buffer and sums them in rank order */
    ALLREDUCE_TWOSHOT    /* reduce-scatter then all-gather over peer buffers */
};

#define ALLREDUCE_ALGOS 4

/* The --allreduce spelling of each. */
static inline const char *allreduce_algo_name(enum allreduce_algo a)
{
    static const char *const names[ALLREDUCE_ALGOS] = {"auto", "nccl", "oneshot", "twoshot"};
    return (unsigned)a < ALLREDUCE_ALGOS ? names[a] : "?";
}

/* The crossover sizes `auto` uses: one-shot up to oneshot_max_bytes, two-shot up to
 * twoshot_max_bytes, NCCL above (profiles/<gpu>.json, "peer_allreduce"). known = 0:
 * no table, so auto takes NCCL where it can and one-shot where it cannot. */
struct allreduce_table {
    int known;
    uint64_t oneshot_max_bytes, twoshot_max_bytes;
};

/* What one call of `bytes` per rank runs. nccl_possible = 0 (logical devices
 * sharing a GPU, where NCCL cannot run): auto never answers NCCL. An explicit
 * algo is returned as it is. */
static inline enum allreduce_algo allreduce_choose(enum allreduce_algo asked, const struct allreduce_table *t,
                                                   uint64_t bytes, int nccl_possible)
{
    if (asked != ALLREDUCE_AUTO) return asked;
    if (!t->known) return nccl_possible ? ALLREDUCE_NCCL : ALLREDUCE_ONESHOT;
    if (bytes <= t->oneshot_max_bytes) return ALLREDUCE_ONESHOT;
    if (bytes <= t->twoshot_max_bytes || !nccl_possible) return ALLREDUCE_TWOSHOT;
    return ALLREDUCE_NCCL;
}
#endif
