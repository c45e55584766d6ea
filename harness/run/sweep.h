/* The one sweep: every strategy x workload point enumerated once, placed and planned
 * once (a program, strategies/strategy.h), then driven through any executor
 * (exec/executor.h): warm-up, timed iterations, profiled iterations, outputs checked
 * against `single`, metrics, one table. --plan is the sweep with no executor;
 * --simulate drives the cost model; --predict runs the cost model on the very
 * program each point measured. Under MPI the world makes every rank take part. */
#ifndef PB_SWEEP_H
#define PB_SWEEP_H
#include "../exec/executor.h"
#include "plan.h"
#include "run.h"

/* One point: a strategy (NULL: an unknown name, which fails) at a workload as asked. */
struct sweep_point {
    const char *strategy;
    struct workload w;
};

/* The points in the order they run: per batch x seq x microbatch count, `single`
 * first (its outputs are the reference), then the others as given. A strategy that
 * takes no microbatch count (strategy_takes_microbatches) runs once per batch x seq.
 * Returns the count (at most cap), or -1 when out of memory. */
int sweep_points(const struct options *o, struct sweep_point *out, int cap);
/* Upper bound of sweep_points' count. */
int sweep_points_cap(const struct options *o);

struct sweep {
    const struct options *o;
    const struct model_spec *m;
    struct machine mc;                      /* budgets to place with */
    struct device_map map;                  /* logical device -> GPU ordinal */
    const struct executor_ops *ex;          /* NULL: --plan, place and plan only */
    const struct device_profile *profile;   /* the cost model's when ex predicts; --plan's roofline */
    const struct device_profile *predict;   /* --predict: the cost model beside every point */
    const struct device_profile *ceilings;  /* MBU / MFU's copy and GEMM rates (NULL: the cost model's
                                               profile when ex predicts, else unknown) */
    const struct exec_world *world;         /* exec_world_single() for one process */
    int cupti_on;                           /* profiled iterations possible */
    const char *banner;                     /* printed above each table (NULL: none) */
    const char *weights;                    /* where the weights come from, for the table (NULL: not said) */
    struct allreduce_table allreduce_table; /* --allreduce auto's crossovers for the GPUs measured */
};

struct sweep_out {
    int n;
    struct point_result *res;               /* [n], filled on rank 0 */
    struct trace *traces;                   /* [n] */
    struct plan_entry *plans;               /* --plan: [n] */
    int failed;                             /* points that failed or whose outputs differ; 1 when
                                             * every point was skipped (nothing ran) */
    int skipped;                            /* points that cannot run (point_result.skipped) */
};

/* Run every point; a point's failure is recorded in its row, not fatal. */
int sweep_run(const struct sweep *s, struct sweep_out *out);
void sweep_out_free(struct sweep_out *out);
/* One point whose placement r->placement is made: plan, drive s->ex, summarise into r
 * and t (initialised here). What sweep_run does for each point after placing. */
int sweep_point_run(const struct sweep *s, const struct strategy *st, struct point_result *r, struct trace *t);
/* The table, as sweep_run prints it. */
void sweep_print_header(const struct sweep *s, const struct point_result *r);
void sweep_print_row(const struct sweep *s, const struct point_result *r);
#endif
