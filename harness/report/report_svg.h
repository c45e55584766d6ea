/* Inline SVG for report.html, drawn from the same timeline layout and metrics as
 * the gnuplot pictures, so the report needs no image files, scripts or network. */
#ifndef PB_REPORT_SVG_H
#define PB_REPORT_SVG_H
#include <stdio.h>
#include "../run/run.h"
#include "timeline.h"

/* Text with &, <, >, " escaped for HTML and SVG. */
void html_escape(FILE *f, const char *s);
/* A per-GPU timeline: a lane per (GPU, stream), boxes coloured by kind with a
 * tooltip each, microbatch labels, a time axis in ms and a legend. */
void svg_timeline(FILE *f, const struct timeline *tl);
/* Stacked bars, a row per GPU of every ok point with known busy time:
 * compute / comm / copy / idle in % of the shared window. Returns the rows drawn. */
int svg_utilisation(FILE *f, const struct point_result *r, int n);
#endif
