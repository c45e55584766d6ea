/* bench --simulate: every strategy x workload placed, planned and replayed on the
 * cost model of a device profile, reported like a measured run but marked predicted. */
#ifndef PB_SIMULATE_RUN_H
#define PB_SIMULATE_RUN_H
#include "../exec/model/device_profile.h"
#include "../cli/options.h"
/* No cap of its own on --decode: the trace keeps a bounded sample of passes and
 * totals of all (exec/model/model_executor.c), so memory does not grow with the
 * tokens; max_position_embeddings bounds them (model_check_positions). */
#include "run.h"
#include "../measure/trace.h"
#include "../exec/executor.h"

/* Predict one point for a placement already made: plan the prefill (and, with
 * decode_tokens > 0, one greedy pass per generated token with a growing KV cache),
 * replay it, and fill r as run_measured fills it (one deterministic iteration;
 * r->placement is a copy the caller frees with point_result_free). *t receives the
 * predicted trace of that iteration (the caller frees it with trace_free).
 * Also what --predict uses beside a measured row. */
int simulate_point(const struct device_profile *prof, const struct model_spec *m,
                   const struct strategy *st, const struct placement *p, const struct workload *w,
                   int decode_tokens, struct point_result *r, struct trace *t);
/* The same with logical device d on CUDA ordinal ordinal[d] (NULL: one GPU each);
 * --predict passes the measured run's ordinals. */
int simulate_point_on(const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct placement *p, const struct workload *w,
                      int decode_tokens, const int *ordinal, struct point_result *r, struct trace *t);

/* Budgets for placing on simulated GPUs: --max-memory if given, else each GPU's
 * memory as the profile states it (bench --simulate and --serve). */
int simulated_machine(const struct options *o, const struct device_profile *prof, struct machine *mc);

/* The whole --simulate job: profile o->gpu_profile (default h200) on o->gpus GPUs
 * with the profile's memory as each GPU's budget unless --max-memory was given;
 * table on stdout "predicted"; summary.csv, summary.json, trace.json and the
 * profile used (profile.json) in a new results folder. 0 if every point could be
 * placed and predicted, -1 otherwise (reasons printed and recorded). */
int run_simulated(const struct options *o, const struct model_spec *m);
#endif
