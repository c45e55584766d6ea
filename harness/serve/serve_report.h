/* What bench --serve writes: serve.csv and serve.json (a row per strategy x rate),
 * requests.csv (a row per request per point), serve.svg (TTFT p99 and TPOT p99
 * against the achieved rate, a curve per strategy) and, with --explain, the
 * account in words (explain.txt). Columns: docs/METRICS.md, "Serving". */
#ifndef PB_SERVE_REPORT_H
#define PB_SERVE_REPORT_H
#include <stddef.h>
#include <stdio.h>
#include "../exec/model/device_profile.h"
#include "serve_run.h"

extern const char *const serve_csv_columns[];

int serve_write_csv(const char *path, const struct serve_point *p, int n);
int serve_write_requests_csv(const char *path, const struct options *o, const struct serve_point *p, int n);
/* prof: the cost model's profile (predicted); NULL for a measured run on `device`. */
int serve_write_json(const char *path, const struct options *o, const struct model_spec *m,
                     const struct device_profile *prof, const char *device, const struct serve_point *p, int n);
/* The latency-against-throughput picture; strategy names are escaped. */
void serve_svg(FILE *f, const struct serve_point *p, int n);
/* All of the above into dir. */
int serve_write_reports(const char *dir, const struct options *o, const struct model_spec *m,
                        const struct device_profile *prof, const char *device, const struct serve_point *p, int n);

/* Which placement serves best at each offered rate, and why, from the points. */
void serve_explain_text(const struct options *o, const struct serve_point *p, int n, char *buf, size_t len);
int serve_explain_print(const struct options *o, const struct serve_point *p, int n, const char *dir);
#endif
