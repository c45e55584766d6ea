/* bench --serve's flags: their getopt entries, parsing, the checks across them and
 * their --help lines. cli.c only forwards to these. */
#ifndef PB_SERVE_CLI_H
#define PB_SERVE_CLI_H
#include <stdio.h>
#include "serve_options.h"

struct options;

/* getopt_long values of the serving flags, above cli.c's own. */
enum serve_opt {
    SERVE_OPT_SERVE = 512, SERVE_OPT_REQUESTS, SERVE_OPT_RATE, SERVE_OPT_PROMPT_LEN,
    SERVE_OPT_OUTPUT_LEN, SERVE_OPT_MAX_BATCH, SERVE_OPT_SLO, SERVE_OPT_LAST = SERVE_OPT_SLO,
};

/* Entries for cli.c's `struct option` table. */
#define SERVE_CLI_LONG_OPTIONS                                                                   \
    {"serve", no_argument, 0, SERVE_OPT_SERVE},                                                  \
    {"requests", required_argument, 0, SERVE_OPT_REQUESTS},                                      \
    {"rate", required_argument, 0, SERVE_OPT_RATE},                                              \
    {"prompt-len", required_argument, 0, SERVE_OPT_PROMPT_LEN},                                  \
    {"output-len", required_argument, 0, SERVE_OPT_OUTPUT_LEN},                                  \
    {"max-batch", required_argument, 0, SERVE_OPT_MAX_BATCH},                                    \
    {"slo", required_argument, 0, SERVE_OPT_SLO}

static inline int serve_cli_owns(int c) { return c >= SERVE_OPT_SERVE && c <= SERVE_OPT_LAST; }
/* One flag into s; -1 with a message naming the flag and the problem. */
int serve_cli_apply(int c, const char *arg, struct serve_options *s);
/* After every flag: defaults, length files read, and the flags' agreement with the
 * rest of the command line (--decode, --plan and --predict are refused). -1 with a message. */
int serve_cli_check(struct options *o);
void serve_cli_usage(FILE *f);

/* The parsers, for tests. */
int serve_parse_length(const char *opt, const char *arg, struct length_spec *out);
int serve_parse_rates(const char *arg, double *rates, int max);
int serve_parse_slo(const char *arg, double *ttft_ms, double *tpot_ms);
/* Read a length file's rows: column `column` ("prompt_tokens" / "output_tokens"),
 * or the only column of a one-column file; every row a positive integer. */
int serve_read_length_file(const char *opt, const char *column, struct length_spec *spec);
void length_spec_free(struct length_spec *spec);
#endif
