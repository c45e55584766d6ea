/* bench --explain: a short plain-language account of a run, computed from its
 * point results: where naive and auto put the layers, that both keep one GPU busy
 * at a time, what transfers cost, what pipeline and tp gain and why, and which
 * strategy is best for this model, workload and machine. Every number comes from
 * the results; missing data (a strategy not run, busy time unknown) is said, and
 * cost-model numbers are called predicted. */
#ifndef PB_EXPLAIN_H
#define PB_EXPLAIN_H
#include <stddef.h>
#include "../run/run.h"

/* The account as text, wrapped at about 90 columns (always NUL-terminated; cut
 * with "..." if len is too small). o->simulate marks every number predicted;
 * o and env may be NULL. */
void explain_text(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                  char *buf, size_t len);
/* Print it on stdout and write dir/explain.txt (skipped when dir is NULL). */
int explain_print(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                  const char *dir);
#endif
