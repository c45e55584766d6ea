/* What every run (measured or simulated) writes after its summary and trace:
 * report.html always, the account in words with --explain, pictures with --plot. */
#ifndef PB_RUN_OUTPUTS_H
#define PB_RUN_OUTPUTS_H
#include "run.h"

int run_outputs_write(const struct options *o, const struct run_env *env, const struct point_result *r,
                      int n, const struct trace *const *traces, const char *dir);
/* The last line of a run: "wrote DIR: summary.csv, ..., report.html[, explain.txt]"
 * naming every file written; `extra` (or NULL) lists the executor's own, e.g. "ranks.csv". */
void run_outputs_announce(FILE *f, const struct options *o, const char *dir, const char *extra, int predicted);
#endif
