#include "run_outputs.h"
#include "../report/explain.h"
#include "../report/plots.h"
#include "../report/report_html.h"

int run_outputs_write(const struct options *o, const struct run_env *env, const struct point_result *r,
                      int n, const struct trace *const *traces, const char *dir)
{
    PB_TRY(report_write(o, env, r, n, traces, dir));
    if (o->explain) PB_TRY(explain_print(o, env, r, n, dir));
    /* gnuplot is optional: plots_write says how to install it and still succeeds */
    if (o->plot) PB_TRY(plots_write(dir));
    return PB_OK;
}

void run_outputs_announce(FILE *f, const struct options *o, const char *dir, const char *extra, int predicted)
{
    fprintf(f, "wrote %s: summary.csv, summary.json, trace.json, %s%sreport.html%s%s%s\n", dir, extra ? extra : "",
            extra ? ", " : "", o->explain ? ", explain.txt" : "", o->plot ? ", pictures (*.png, *.svg)" : "",
            predicted ? " (predicted)" : "");
}
