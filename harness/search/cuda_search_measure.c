/* Hands one configuration to the measured sweep and reads back what it measured.
 * The sweep writes its usual folder (summary.csv, summary.json, trace.json), so a
 * measured configuration can be looked at like any measured run. */
#include "cuda_search_measure.h"
#include <cuda_runtime.h>
#include <math.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../../base/csv_read.h"
#include "../run/run.h"

/* The measured run's options for one configuration. */
static void narrow(const struct options *o, const struct search_row *row, const char *dir, struct options *out)
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
    out->out_dir = dir;
}

static int read_p50(const char *dir, const char *strategy, double *ms)
{
    char path[4200];
    struct csv_table t;
    PB_TRY(path_join(path, sizeof path, dir, "summary.csv"));
    PB_TRY(csv_read_file(path, &t));
    int rc = pb_fail("%s has no measured row of %s", path, strategy);
    for (int i = 0; i < t.n_rows; i++) {
        if (strcmp(csv_get(&t, i, "strategy"), strategy)) continue;
        if (strcmp(csv_get(&t, i, "status"), "ok")) {
            rc = pb_fail("%s failed: %s", strategy, csv_get(&t, i, "reason"));
            break;
        }
        *ms = csv_get_num(&t, i, "latency_p50_ms");
        rc = isnan(*ms) ? pb_fail("%s: %s's latency_p50_ms is empty", path, strategy) : PB_OK;
        break;
    }
    csv_table_free(&t);
    return rc;
}

int search_measure_on_gpus(const struct options *o, const struct model_spec *m, const struct search_row *row,
                           const char *dir, double *ms)
{
    int present = 0;
    if (cudaGetDeviceCount(&present) != cudaSuccess || present == 0)
        return pb_fail("no GPU found (cudaGetDeviceCount reports none): --measure-top measures on GPUs");
    if (row->c.gpus > present)
        return pb_fail("it needs %d GPUs but %d %s visible", row->c.gpus, present, present == 1 ? "is" : "are");
    struct options narrowed;
    narrow(o, row, dir, &narrowed);
    int ran = run_measured(&narrowed, m);
    char why[PB_ERROR_LEN];
    snprintf(why, sizeof why, "%s", pb_last_error());
    /* The point may have been measured although the run reports a failure (a check
     * after it); its summary.csv row says which. */
    if (read_p50(dir, row->c.strategy, ms) == PB_OK) return PB_OK;
    if (ran != PB_OK) return pb_fail("the measured run failed: %s (folder %s)", why, dir);
    return PB_ERR;
}
