/* The CUDA executor: runs a schedule of strategies/strategy.h on logical devices
 * (logical device -> CUDA ordinal, so two logical devices may share one GPU).
 * Opaque so that host code sees no CUDA types. */
#ifndef PB_EXECUTOR_H
#define PB_EXECUTOR_H
#include <stdint.h>
#include "../../models/model_spec.h"
#include "../../strategies/strategy.h"
#include "../measure/trace.h"
#include "../../kernels/allreduce_algo.h"

struct exec_config {
    const struct model_spec *m;
    const struct placement *p;
    const struct schedule *prefill;   /* the pass over the prompt */
    const struct schedule *decode;    /* one greedy token (seq 1), NULL for prefill-only runs */
    int n_devices;
    int ordinal[PB_MAX_DEVICES];      /* logical device -> CUDA ordinal */
    int batch, seq, decode_tokens;
    uint64_t seed;                    /* weights and prompt tokens */
    const char *weights;              /* safetensors folder, or NULL for random weights */
    int use_graph;                    /* replay prefill and decode passes from CUDA graphs where possible */
    const char *label;                /* strategy name, for NVTX ranges */
    enum allreduce_algo allreduce;    /* tp sums: --allreduce (auto picks by size from the table) */
    struct allreduce_table allreduce_table;
};

struct executor;

/* Check memory, allocate parts, streams, events and communicators, load weights.
 * Prints why and returns PB_ERR when the schedule cannot run here. */
int executor_create(const struct exec_config *c, struct executor **out);
void executor_destroy(struct executor *e);
/* One iteration (a prefill, or a prefill and decode_tokens greedy tokens), timed
 * with CUDA events; host ranges (tagged `iteration`) go to t when t is not NULL. */
int executor_run(struct executor *e, int iteration, struct trace *t, double *ms);
/* Logits of the last pass, gathered to the host as bf16 bits [rows][vocab];
 * *out is malloc'ed. Generated tokens [batch][decode_tokens] likewise (may be NULL). */
int executor_logits(struct executor *e, uint16_t **out, int *rows, int *vocab);
int executor_tokens(struct executor *e, int **out, int *count);
/* 1 when prefill or decode passes ran from a CUDA graph. */
int executor_used_graph(const struct executor *e);
#endif
