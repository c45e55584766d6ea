/* gnuplot data for a results folder, written into DIR/plot-data/ for
 * scripts/plot.sh: timelines from trace.json, utilisation and sweep curves from
 * summary.csv, parameters and work per GPU from plan.csv. Each picture is a
 * <name>.dat (data) and <name>.gp (its title, axes and lanes as gnuplot commands),
 * listed in plot-data/plots.txt as "<type> <name>" with type timeline, util, sweep,
 * bubble or plan. Plain C, no CUDA. */
#ifndef PB_PLOT_DATA_H
#define PB_PLOT_DATA_H

/* Colours shared by the pictures and report.html: compute, communication, copy,
 * memset, idle (0xRRGGBB). */
extern const unsigned plot_kind_rgb[5];

/* Convert what DIR holds (missing files are skipped). *n_plots gets the number of
 * pictures listed. Returns -1 with a message when DIR holds nothing to draw or
 * plot-data cannot be written. */
int plot_data_write(const char *dir, int *n_plots);
#endif
