/* Parses the search flags. Every error names the flag, the text and what is
 * accepted, so cli.c maps it to exit status 2. */
#include "search_cli.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../cli/options.h"

#define MAX_MEASURE_TOP 1000

void search_cli_usage(FILE *f)
{
    fputs("Search (which placement serves this model, these GPUs and this workload best):\n"
          "      --search              price every strategy x tp degree x microbatches x virtual stages\n"
          "                            that fits, on the cost model (--gpu-profile); writes search.csv\n"
          "                            and prints the ten best (one --batch, one --seq; --strategy limits it)\n"
          "      --objective NAME      latency (default: the workload's wall time), throughput (tokens/s\n"
          "                            of all --gpus, a configuration on fewer GPUs running side by side), or\n"
          "                            goodput (requests/s within --slo of a --serve --simulate stream at one\n"
          "                            --rate; m is then the groups in flight, every divisor of --max-batch)\n"
          "      --measure-top K       then measure the best K on the GPUs (the measured run) and put\n"
          "                            measured rank beside predicted rank (search_measured.csv)\n"
          "\n",
          f);
}

const char *search_objective_name(enum search_objective o)
{
    return o == OBJECTIVE_THROUGHPUT ? "throughput" : o == OBJECTIVE_GOODPUT ? "goodput" : "latency";
}

static int parse_objective(const char *arg, enum search_objective *out)
{
    if (!strcmp(arg, "latency")) *out = OBJECTIVE_LATENCY;
    else if (!strcmp(arg, "throughput")) *out = OBJECTIVE_THROUGHPUT;
    else if (!strcmp(arg, "goodput")) *out = OBJECTIVE_GOODPUT;
    else return pb_fail("--objective: unknown objective \"%s\"; valid: latency, throughput, goodput", arg);
    return PB_OK;
}

static int parse_top(const char *arg, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || errno || v < 1 || v > MAX_MEASURE_TOP)
        return pb_fail("--measure-top: \"%s\" is not a count of configurations (1..%d)", arg, MAX_MEASURE_TOP);
    *out = (int)v;
    return PB_OK;
}

int search_cli_apply(int c, const char *arg, struct search_options *s)
{
    s->any_flag |= c != SEARCH_OPT_SEARCH;
    switch (c) {
    case SEARCH_OPT_SEARCH: s->enabled = 1; return PB_OK;
    case SEARCH_OPT_OBJECTIVE: return parse_objective(arg, &s->objective);
    case SEARCH_OPT_MEASURE_TOP: return parse_top(arg, &s->measure_top);
    default: return pb_fail("internal: search flag %d not handled", c);
    }
}

/* The other jobs, and the flags that fix an axis the search enumerates itself. */
static int refuse_other_jobs(const struct options *o)
{
    if (o->plan_only) return pb_fail("--search and --plan: choose one");
    if (o->calibrate) return pb_fail("--search and --calibrate: choose one");
    if (o->predict)
        return pb_fail("--search already ranks on the cost model; --measure-top K puts prediction beside "
                       "measurement, --predict is not used with it");
    if (o->simulate && o->search.measure_top)
        return pb_fail("--measure-top measures on the GPUs, --simulate asks for none: choose one");
    if (o->n_devices_listed)
        return pb_fail("--search places on --gpus N distinct GPUs; --devices is not searched");
    return PB_OK;
}

/* Goodput is a request stream's: --serve's flags give it, at one rate, within an SLO. */
static int check_goodput(const struct options *o)
{
    int goodput = o->search.objective == OBJECTIVE_GOODPUT;
    if (!goodput && o->serve.enabled)
        return pb_fail("--search with --serve ranks by goodput: add --objective goodput (or drop --serve)");
    if (!goodput) return PB_OK;
    if (!o->serve.enabled)
        return pb_fail("--objective goodput needs a request stream: add --serve --simulate --rate R "
                       "--slo ttft=MS,tpot=MS");
    if (o->search.measure_top)
        return pb_fail("--measure-top measures fixed batches; the search serves streams on the cost model "
                       "only, so --objective goodput cannot be measured yet");
    if (o->serve.n_rates != 1)
        return pb_fail("--objective goodput ranks at one offered rate: give one --rate (%d given%s)",
                       o->serve.n_rates, o->serve.n_rates ? "" : "; the default is a sweep of 4");
    if (!o->serve.slo_given)
        return pb_fail("--objective goodput counts requests within an SLO: give --slo ttft=MS,tpot=MS");
    return PB_OK;
}

static int refuse_fixed_axes(const struct options *o)
{
    if (o->n_batches != 1 || o->n_seqs != 1)
        return pb_fail("--search ranks one workload: give one --batch and one --seq (%d and %d given)",
                       o->n_batches, o->n_seqs);
    if (o->n_microbatches != 1 || o->microbatches[0] != 0)
        return pb_fail("--search enumerates microbatch counts itself (every divisor of --batch); drop "
                       "--microbatches");
    if (o->machine.tp) return pb_fail("--search enumerates tp degrees itself; drop --tp");
    if (o->machine.virtual_stages)
        return pb_fail("--search enumerates virtual stages itself; drop --virtual-stages");
    return PB_OK;
}

int search_cli_check(struct options *o)
{
    if (!o->search.enabled)
        return o->search.any_flag ? pb_fail("--objective and --measure-top belong to --search") : PB_OK;
    PB_TRY(refuse_other_jobs(o));
    PB_TRY(check_goodput(o));
    return refuse_fixed_axes(o);
}
