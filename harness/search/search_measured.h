/* The CPU half of --measure-top on the GPUs: the measured run's options for one
 * configuration, and reading back what it measured. cuda_search_measure.c runs it. */
#ifndef PB_SEARCH_MEASURED_H
#define PB_SEARCH_MEASURED_H
#include "../cli/options.h"
#include "search_price.h"

/* o narrowed to row's configuration: its strategy alone, its GPU count, --tp (hybrid),
 * --microbatches (pipeline, hybrid), --virtual-stages, reports into dir. out points
 * into row (its strategy name): row must outlive out. */
void search_measured_options(const struct options *o, const struct search_row *row, const char *dir,
                             struct options *out);
/* The measured p50 latency of strategy's row in dir/summary.csv; -1 with a message
 * when the file or the row is missing, or the row says the point failed (its reason). */
int search_read_measured_p50(const char *dir, const char *strategy, double *ms);
#endif
