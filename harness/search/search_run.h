/* bench --search: price every configuration (search_space.h) on the cost model,
 * rank them by the objective, write search.csv and print the ten best with why the
 * winner wins; with --measure-top K, measure the best K through a measurer and put
 * measured rank beside predicted rank. */
#ifndef PB_SEARCH_RUN_H
#define PB_SEARCH_RUN_H
#include "../cli/options.h"
#include "search_price.h"

/* Measures one configuration (row->c on the workload of o) with its reports under
 * dir (a new folder); *ms gets the measured p50 latency of the whole workload.
 * -1 with a message when it could not be measured. The GPU one is
 * search_measure_on_gpus (cuda_search_measure.h); tests put the cost model here. */
typedef int (*search_measure_fn)(const struct options *o, const struct model_spec *m,
                                 const struct search_row *row, const char *dir, double *ms);

/* Enumerate for pb's GPUs and batch over the strategies names[0..n_names), price
 * each, rank by objective. *rows (the caller frees it) gets *n rows in rank order. */
int search_configurations(const struct search_problem *pb, const char *const *names, int n_names,
                          enum search_objective objective, struct search_row **rows, int *n);
/* Measure rows[0..k) (k capped at the rows that fit) with measure, each into
 * dir/measure-<rank>, and give them measured ranks. Returns how many were
 * measured in *measured; PB_ERR only when a folder could not be made. */
int search_measure_top(const struct options *o, const struct model_spec *m, struct search_row *rows, int n,
                       int k, enum search_objective objective, search_measure_fn measure, const char *dir,
                       int *measured, int *asked);
/* The whole job. measure: what --measure-top uses (NULL: refused). 0 when some
 * configuration fits and every asked-for measurement was made; -1 otherwise
 * (search.csv is written either way). */
int search_run(const struct options *o, const struct model_spec *m, search_measure_fn measure);
#endif
