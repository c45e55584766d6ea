/* The serving section of report.html: where a results folder holds bench
 * --serve's serve.csv, a table of its points (the latency percentiles, the
 * offered and achieved rates, goodput, utilisation per GPU) and its latency
 * against throughput picture (serve.svg, inline). Read from the folder's files,
 * so the section is the same whichever run wrote them. */
#ifndef PB_REPORT_SERVE_H
#define PB_REPORT_SERVE_H
#include <stdio.h>

/* 1 when dir holds serving results (serve.csv). */
int report_has_serving(const char *dir);
/* The section (h2 "Serving" and what follows); -1 with a message if serve.csv or
 * serve.svg is there but cannot be read. */
int report_serving_section(FILE *f, const char *dir);
/* dir/report.html for a serving run: the command, the answer (explain text, or
 * NULL), and the serving section; self-contained as the sweep's page. */
int report_write_serving(const char *dir, const char *model, const char *command, const char *answer);
#endif
