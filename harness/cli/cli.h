/* The command line: parsing into struct options and the --help text. */
#ifndef PB_CLI_H
#define PB_CLI_H
#include <stdio.h>
#include "options.h"

#define CLI_OK 0
#define CLI_EXIT_HELP 3   /* --help/--version printed: exit 0 */
#define CLI_USAGE 2       /* bad usage: message printed, exit 2 */

int cli_parse(int argc, char **argv, struct options *o);
void cli_usage(FILE *f);
/* Parse "1,8,32" into at most max positive integers; -1 with a message if malformed. */
int cli_int_list(const char *opt, const char *s, int *out, int max, int allow_zero);
#endif
