/* The command line: parsing into struct options and the --help text. */
#ifndef PB_CLI_H
#define PB_CLI_H
#include <stdio.h>
#include "options.h"

#define CLI_OK 0
#define CLI_EXIT_HELP 3   /* --help/--version printed: exit 0 */
#define CLI_USAGE 2       /* bad usage: message printed, exit 2 */

int cli_parse(int argc, char **argv, struct options *o);
/* Load --model (a config, a model folder or a shipped name) and settle the weights:
 * a folder's own safetensors unless --weights says otherwise; a measured run's
 * safetensors headers are checked here, before any GPU work. */
int cli_load_model(struct options *o, struct model_spec *m);
void cli_usage(FILE *f);
/* "placebench 0.1.0 (git commit 93424a1)": the commit is the build's, when known. */
void cli_version(FILE *f);
/* Parse "1,8,32" into at most max positive integers; -1 with a message if malformed. */
/* An --allreduce value (auto, nccl, oneshot, twoshot); PB_ERR, no message, if unknown. */
int cli_allreduce_parse(const char *s, enum allreduce_algo *out);
int cli_int_list(const char *opt, const char *s, int *out, int max, int allow_zero);
/* What the options name, checked once the model is known and before any work, so
 * a bad flag is a usage error (exit 2) with no folder half-written: positions
 * against max_position_embeddings, --decode under --simulate, --gpu-profile,
 * --weights (also under --simulate and --plan) and --out. */
int cli_check_inputs(const struct options *o, const struct model_spec *m);
#endif
