/* Options for, and results of, one configuration's measured run. */
#include "search_measured.h"
#include <math.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../../base/csv_read.h"

void search_measured_options(const struct options *o, const struct search_row *row, const char *dir,
                             struct options *out)
{
    *out = *o;
    out->strategies[0] = row->c.strategy;
    out->n_strategies = 1;
    out->gpus = row->c.gpus;
    out->machine.gpus = row->c.gpus;
    out->n_microbatches = 1;
    out->microbatches[0] = strategy_takes_microbatches(row->c.strategy) ? row->c.microbatches : 0;
    out->machine.tp = strcmp(row->c.strategy, "hybrid") ? 0 : row->c.tp;
    out->machine.virtual_stages = row->c.virtual_stages;
    out->search.enabled = 0;
    out->search.measure_top = 0;
    out->out_dir = dir;
}

int search_read_measured_p50(const char *dir, const char *strategy, double *ms)
{
    char path[4200];
    struct csv_table t;
    PB_TRY(path_join(path, sizeof path, dir, "summary.csv"));
    PB_TRY(csv_read_file(path, &t));
    int found = -1;
    for (int i = 0; i < t.n_rows && found < 0; i++)
        if (!strcmp(csv_get(&t, i, "strategy"), strategy)) found = i;
    int rc;
    if (found < 0) rc = pb_fail("%s has no row of %s", path, strategy);
    else if (strcmp(csv_get(&t, found, "status"), "ok"))
        rc = pb_fail("%s failed: %s", strategy, csv_get(&t, found, "reason"));
    else if (isnan(*ms = csv_get_num(&t, found, "latency_p50_ms")))
        rc = pb_fail("%s: %s's latency_p50_ms is empty", path, strategy);
    else rc = PB_OK;
    csv_table_free(&t);
    return rc;
}
