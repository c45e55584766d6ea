/* bench --plot: gnuplot pictures (PNG and SVG) beside a results folder's data. */
#ifndef PB_PLOTS_H
#define PB_PLOTS_H
#include <stddef.h>

/* Write DIR/plot-data (plot_data_write), then run scripts/plot.sh DIR, found beside
 * the executable (/proc/self/exe/../../scripts, i.e. build/bench -> scripts/) or in
 * the working directory. Without gnuplot it says how to install it and returns 0:
 * the run itself succeeded. Returns -1 only if the data cannot be written or the
 * script fails. */
int plots_write(const char *dir);
/* The path of scripts/plot.sh, or -1 if it cannot be found. */
int plots_find_script(char *buf, size_t len);
/* `bench plot DIR` (data and pictures) and `bench plot-data DIR` (data only, what
 * scripts/plot.sh calls when run by hand): argv[0] is "plot" or "plot-data".
 * Returns the exit status: 0, 1 failed, 2 bad usage. */
int plots_main(int argc, char **argv);
#endif
