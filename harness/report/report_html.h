/* report.html: one self-contained page per results folder (no network, no
 * scripts, no fonts to fetch): the answer in words, the summary table, per-GPU
 * timelines and utilisation as inline SVG, the environment and the command. */
#ifndef PB_REPORT_HTML_H
#define PB_REPORT_HTML_H
#include "../run/run.h"

/* Write dir/report.html (temporary name, then renamed). traces[i] is point i's
 * trace or NULL (then that point has no timeline); traces itself may be NULL.
 * o->simulate marks the page predicted. */
int report_write(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                 const struct trace *const *traces, const char *dir);
/* The page's style sheet, shared by the serving page (report_serve.c). */
const char *report_css(void);
#endif
