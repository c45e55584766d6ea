/* Hands one configuration to the measured sweep and reads back what it measured.
 * The sweep writes its usual folder (summary.csv, summary.json, trace.json), so a
 * measured configuration can be looked at like any measured run. */
#include "cuda_search_measure.h"
#include <cuda_runtime.h>
#include "../run/run.h"
#include "search_measured.h"

int search_measure_on_gpus(const struct options *o, const struct model_spec *m, const struct search_row *row,
                           const char *dir, double *ms)
{
    int present = 0;
    if (cudaGetDeviceCount(&present) != cudaSuccess || present == 0)
        return pb_fail("no GPU found (cudaGetDeviceCount reports none): --measure-top measures on GPUs");
    if (row->c.gpus > present)
        return pb_fail("it needs %d GPUs but %d %s visible", row->c.gpus, present, present == 1 ? "is" : "are");
    struct options narrowed;
    search_measured_options(o, row, dir, &narrowed);
    int ran = run_measured(&narrowed, m);
    char why[PB_ERROR_LEN];
    snprintf(why, sizeof why, "%s", pb_last_error());
    /* The point may have been measured although the run reports a failure (a check
     * after it); its summary.csv row says which. */
    if (search_read_measured_p50(dir, row->c.strategy, ms) == PB_OK) return PB_OK;
    if (ran != PB_OK) return pb_fail("the measured run failed: %s (folder %s)", why, dir);
    return PB_ERR;
}
