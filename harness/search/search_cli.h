/* bench --search's flags: their getopt entries, parsing, the checks across them and
 * their --help lines. cli.c only forwards to these, as it does for --serve. */
#ifndef PB_SEARCH_CLI_H
#define PB_SEARCH_CLI_H
#include <stdio.h>
#include "search_options.h"

struct options;

/* getopt_long values of the search flags, above cli.c's and serve_cli.h's. */
enum search_opt {
    SEARCH_OPT_SEARCH = 640, SEARCH_OPT_OBJECTIVE, SEARCH_OPT_MEASURE_TOP,
    SEARCH_OPT_LAST = SEARCH_OPT_MEASURE_TOP,
};

#define SEARCH_CLI_LONG_OPTIONS                                                                  \
    {"search", no_argument, 0, SEARCH_OPT_SEARCH},                                               \
    {"objective", required_argument, 0, SEARCH_OPT_OBJECTIVE},                                   \
    {"measure-top", required_argument, 0, SEARCH_OPT_MEASURE_TOP}

static inline int search_cli_owns(int c) { return c >= SEARCH_OPT_SEARCH && c <= SEARCH_OPT_LAST; }
/* One flag into s; -1 with a message naming the flag and the problem. */
int search_cli_apply(int c, const char *arg, struct search_options *s);
/* After every flag: the search flags' agreement with the rest of the command line
 * (one workload; the axes it enumerates not fixed by hand; no other job). -1 with a message. */
int search_cli_check(struct options *o);
void search_cli_usage(FILE *f);
/* "latency" / "throughput". */
const char *search_objective_name(enum search_objective o);
#endif
