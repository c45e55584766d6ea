/* --measure-top on the GPUs: one search configuration through the measured run. */
#ifndef PB_CUDA_SEARCH_MEASURE_H
#define PB_CUDA_SEARCH_MEASURE_H
#include "search_run.h"

/* A search_measure_fn: run_measured (harness/run/run.h) on a copy of o narrowed to
 * row's strategy, GPU count, --tp, --microbatches and --virtual-stages, its reports
 * in dir; *ms is the p50 latency its summary.csv records. */
int search_measure_on_gpus(const struct options *o, const struct model_spec *m, const struct search_row *row,
                           const char *dir, double *ms);
#endif
