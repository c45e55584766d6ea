/* The cost model as the serving engine's executor: a step's shape becomes the
 * workload the strategy plans (the very schedule --simulate replays), replayed on
 * a device profile. Costs are cached per (mode, batch, seq bucket, context bucket)
 * so a stream of hundreds of requests replays a few hundred schedules, not tens of
 * thousands. */
#ifndef PB_SERVE_COST_H
#define PB_SERVE_COST_H
#include <stdint.h>
#include "../exec/model/device_profile.h"
#include "serve_engine.h"
#include "../measure/trace.h"
#include "../../strategies/memory_model.h"

struct serve_cost_entry;

struct serve_cost_model {
    const struct device_profile *prof;
    const struct model_spec *m;
    const struct strategy *st;
    const struct placement *p;
    enum dtype dtype;
    const int *ordinal;                /* logical device -> simulated GPU (NULL: one each) */
    struct serve_cost_entry *table;    /* open addressing, power-of-two size */
    int size, used;
    long lookups, evaluations;         /* evaluations: schedules planned and replayed */
};

/* Token counts are rounded up to a grid of 16 steps per power of two (exact up to
 * 32): at most 6.25% more tokens than asked. docs/METRICS.md states the cost
 * error this gives (test_serve_bucketed_step_cost_is_within_the_stated_error). */
int serve_bucket(int tokens);

void serve_cost_model_init(struct serve_cost_model *c, const struct device_profile *prof,
                           const struct model_spec *m, const struct strategy *st, const struct placement *p,
                           enum dtype dtype, const int *ordinal);
void serve_cost_model_free(struct serve_cost_model *c);
/* The serve_executor step_cost callback (ctx = struct serve_cost_model *). */
int serve_cost_model_step(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out);
/* The same without the buckets or the cache (for the bucketing error test). */
int serve_cost_model_step_exact(struct serve_cost_model *c, const struct serve_step_shape *shape,
                                struct serve_step_cost *out);
struct serve_executor serve_cost_model_executor(struct serve_cost_model *c);
/* A step's cost from its trace: latency_ms, and per device its first and last
 * activity (ms after origin_ns) and busy time by kind (metrics_iteration). */
int serve_cost_from_trace(const struct trace *t, double latency_ms, uint64_t origin_ns, struct serve_step_cost *out);

/* Positions of KV cache the placement holds: the smallest, over devices with
 * layers, of (budget - parameters) / memory_kv_bytes_per_position (the memory
 * model's KV bytes per position). Activations are not held back. -1 with a
 * message if weights leave no room. */
int serve_kv_capacity(const struct model_spec *m, const struct placement *p, const struct machine *mc,
                      enum dtype dt, int64_t *tokens);
#endif
