/* Parses bench's command line with getopt_long. Every error names the option
 * and the accepted values, and maps to exit status 2. */
#include "cli.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../../base/parse_number.h"
#include "../exec/model/device_profile.h"
#include "memory_budget.h"
#include "../run/results_dir.h"
#include "../../models/safetensors.h"
#include "../run/simulate_run.h"
#include "../serve/serve_cli.h"
#include "../search/search_cli.h"

void cli_usage(FILE *f)
{
    fputs(
        "usage: bench --model CONFIG.json|MODEL_DIR [options]\n"
        "       bench plot RESULTS_DIR        draw a results folder's pictures (gnuplot)\n"
        "       bench plot-data RESULTS_DIR   write only the data gnuplot draws (plot-data/)\n"
        "\n"
        "Runs one Llama-family model under several placement strategies across GPUs and\n"
        "measures how they differ (latency, throughput, per-GPU busy/idle time with CUPTI,\n"
        "bytes and time moved between GPUs). Results go to a new folder under results/.\n"
        "\n"
        "What to run:\n"
        "  -m, --model PATH          Hugging Face config.json, a model folder (what save_pretrained writes:\n"
        "                            config.json + *.safetensors), or a name under models/, e.g. llama-2-7b\n"
        "  -s, --strategy LIST       comma list of: single,naive,auto,optimal,pipeline,tp,hybrid (default: all)\n"
        "  -g, --gpus N              use the first N visible GPUs (default: all; with --plan, --simulate,\n"
        "                            --search: 2)\n"
        "      --devices LIST        logical devices -> CUDA ordinals, e.g. 0,0 runs 2 devices on GPU 0\n"
        "  -b, --batch LIST          sequences per batch (default 8); a list makes a sweep\n"
        "  -q, --seq LIST            prompt tokens per sequence (default 512)\n"
        "      --microbatches LIST   pipeline microbatches; 0 = the default, 2 x stages\n"
        "      --tp D                hybrid: tensor parallel over D GPUs in each of N/D pipeline stages\n"
        "                            (default 2 where N is even, else 1)\n"
        "      --virtual-stages V    pipeline, hybrid: V interleaved chunks of layers per stage (default 1)\n"
        "      --decode T            generate: prefill, then T greedy tokens with the KV cache\n"
        "      --dtype NAME          bf16 (default), fp16, fp32: weight bytes for placement\n"
        "      --weights DIR|random  real weights (.safetensors folder) or random, seeded; default: the\n"
        "                            --model folder's safetensors if it has them, else random\n"
        "      --seed N              seed of the random weights and inputs (default 1234)\n"
        "\n"
        "Placement (auto, as transformers + accelerate choose it):\n"
        "      --device-map POLICY   auto (default), balanced, balanced_low_0, sequential\n"
        "      --max-memory SPEC     per-device budgets, e.g. 0=80GiB,1=80GiB,cpu=512GiB: placement's, and\n"
        "                            what weights + KV cache + activations must fit\n"
        "                            (GiB/MiB/KiB = 2^30/2^20/2^10, GB/MB/KB = 10^9/10^6/10^3, or bytes;\n"
        "                            default: each GPU's free memory; with --plan, 80GiB per GPU)\n"
        "\n"
        "Modes:\n"
        "      --plan                placements and schedules only, no GPU needed (plan.json, plan.csv)\n"
        "      --simulate            run the schedules on the cost model instead of GPUs\n"
        "      --gpu-profile NAME    device profile for --simulate and --plan's ms: h100, h200, a100, l40s,\n"
        "                            rtx4090, or a path (--plan: default the GPU found, else h200)\n"
        "      --predict             add the cost model's prediction beside each measured row\n"
        "      --calibrate           measure the present GPUs and write a device profile\n"
        "\n",
        f);
    serve_cli_usage(f);
    search_cli_usage(f);
    fputs(
        "Measurement and output:\n"
        "  -n, --iters N             timed iterations (default 20)\n"
        "  -w, --warmup N            warm-up iterations, not measured (default 5)\n"
        "      --profile-iters N     iterations traced with CUPTI after the timed ones, for busy time\n"
        "                            and trace.json (default 3); latency comes from untraced ones\n"
        "      --profile-detail D    kernel (default): a CUPTI record per kernel, busy time exact;\n"
        "                            step: a record per replayed CUDA graph and per copy, so the profiled\n"
        "                            iterations run nearly untraced (one GPU's graph span is its busy time;\n"
        "                            busy time unknown where a graph spans GPUs or a pass was not a graph)\n"
        "      --no-cupti            event timing only (for use under nsys or ncu); busy time unknown\n"
        "      --no-graph            launch every pass directly (no CUDA graph replay)\n"
        "      --allreduce ALGO      tp sums: auto (default: by size from the device profile's table;\n"
        "                            peer memory where logical devices share a GPU), nccl, oneshot\n"
        "                            (every GPU reads every peer's buffer), twoshot (reduce-scatter +\n"
        "                            all-gather over peer memory); --simulate prices the same choice\n"
        "      --plot                write gnuplot pictures (PNG, SVG) beside the data\n"
        "      --explain             end with a plain-language account of the numbers\n"
        "  -o, --out DIR             results folder (default results/<date>-<time>-<model>)\n"
        "  -h, --help                this text\n"
        "  -V, --version             name, version and the git commit it was built from\n"
        "\n"
        "Other commands:\n"
        "  bench plot DIR            gnuplot pictures of a results folder\n"
        "  bench diff A B            two results folders side by side: latency, per GPU busy time by\n"
        "                            step kind, idle time by cause, MBU and MFU\n"
        "  bench diff DIR --strategies naive,auto   the same for two strategies of one folder\n"
        "\n"
        "Examples:\n"
        "  bench --model models/llama-2-7b.json --gpus 2 --batch 8 --seq 512 --plan\n"
        "  bench --model llama-2-7b --strategy single,naive,auto,pipeline --gpus 2 --batch 8 --seq 512\n"
        "  bench --model llama-2-7b --strategy naive,pipeline --devices 0,0 --batch 8 --seq 128\n"
        "  bench --model llama-2-7b --decode 64 --batch 1,16\n"
        "  bench --model llama-2-70b --simulate --gpu-profile h200 --gpus 8 --batch 8 --seq 512\n"
        "  bench --model llama-2-7b --search --gpus 4 --batch 8 --seq 512 --decode 64 --objective latency\n"
        "\n"
        "Exit status: 0 done, 1 a run failed (reason printed and recorded), 2 bad usage.\n",
        f);
}

/* The Makefile passes both; a build outside it (or outside git) says so. */
#ifndef PB_VERSION
#define PB_VERSION "unknown"
#endif
#ifndef PB_GIT_COMMIT
#define PB_GIT_COMMIT ""
#endif

void cli_version(FILE *f)
{
    fprintf(f, "placebench %s (git commit %s)\n", PB_VERSION, PB_GIT_COMMIT[0] ? PB_GIT_COMMIT : "unknown");
}

int cli_int_list(const char *opt, const char *s, int *out, int max, int allow_zero)
{
    return parse_int_list(opt, s, allow_zero ? 0 : 1, 1 << 24, out, max);
}

static int parse_strategies(const char *s, struct options *o)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    o->n_strategies = 0;
    o->strategies_named = 1;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const struct strategy *st = strategy_find(tok);
        if (!st) {
            char valid[256] = "";
            for (int i = 0; strategies[i]; i++) {
                strcat(valid, i ? ", " : "");
                strcat(valid, strategies[i]->name);
            }
            return pb_fail("--strategy: unknown strategy \"%s\"; valid: %s", tok, valid);
        }
        if (o->n_strategies == PB_MAX_LIST) return pb_fail("--strategy: too many strategies");
        o->strategies[o->n_strategies++] = st->name;
    }
    return o->n_strategies ? PB_OK : pb_fail("--strategy: empty list");
}

static int parse_policy(const char *s, enum device_map_policy *out)
{
    static const char *names[] = {"auto", "balanced", "balanced_low_0", "sequential"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum device_map_policy)i;
            return PB_OK;
        }
    return pb_fail("--device-map: unknown policy \"%s\"; valid: auto, balanced, balanced_low_0, sequential", s);
}

static int parse_count(const char *opt, const char *s, int *out, int allow_zero)
{
    int v[1];
    if (cli_int_list(opt, s, v, 1, allow_zero) != 1) return PB_ERR;
    *out = v[0];
    return PB_OK;
}

int cli_allreduce_parse(const char *s, enum allreduce_algo *out)
{
    for (int a = 0; a < ALLREDUCE_ALGOS; a++)
        if (!strcmp(s, allreduce_algo_name((enum allreduce_algo)a))) {
            *out = (enum allreduce_algo)a;
            return PB_OK;
        }
    return PB_ERR;
}

static void set_defaults(struct options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; strategies[i]; i++) o->strategies[o->n_strategies++] = strategies[i]->name;
    o->batches[0] = 8;
    o->n_batches = 1;
    o->seqs[0] = 512;
    o->n_seqs = 1;
    o->n_microbatches = 1;   /* one entry 0: the strategy's default */
    o->dtype = DTYPE_BF16;
    o->machine.policy = MAP_AUTO;
    o->iters = 20;
    o->warmup = 5;
    o->profile_iters = 3;
    o->use_graph = 1;
    o->seed = 1234;
}

static void record_command(int argc, char **argv, struct options *o)
{
    size_t n = 0;
    for (int i = 0; i < argc && n + 1 < sizeof o->command; i++)
        n += (size_t)snprintf(o->command + n, sizeof o->command - n, "%s%s", i ? " " : "", argv[i]);
}

enum long_only {
    OPT_DEVICES = 256, OPT_MICROBATCHES, OPT_DECODE, OPT_DTYPE, OPT_WEIGHTS, OPT_SEED, OPT_DEVICE_MAP,
    OPT_MAX_MEMORY, OPT_PLAN, OPT_SIMULATE, OPT_GPU_PROFILE, OPT_PREDICT, OPT_CALIBRATE, OPT_NO_CUPTI,
    OPT_NO_GRAPH, OPT_PLOT, OPT_EXPLAIN, OPT_PROFILE_ITERS, OPT_TP, OPT_VIRTUAL_STAGES, OPT_ALLREDUCE,
    OPT_PROFILE_DETAIL,
};

static const struct option long_options[] = {
    {"model", required_argument, 0, 'm'},       {"strategy", required_argument, 0, 's'},
    {"gpus", required_argument, 0, 'g'},        {"devices", required_argument, 0, OPT_DEVICES},
    {"batch", required_argument, 0, 'b'},       {"seq", required_argument, 0, 'q'},
    {"microbatches", required_argument, 0, OPT_MICROBATCHES},
    {"tp", required_argument, 0, OPT_TP},       {"virtual-stages", required_argument, 0, OPT_VIRTUAL_STAGES},
    {"decode", required_argument, 0, OPT_DECODE}, {"dtype", required_argument, 0, OPT_DTYPE},
    {"weights", required_argument, 0, OPT_WEIGHTS}, {"seed", required_argument, 0, OPT_SEED},
    {"device-map", required_argument, 0, OPT_DEVICE_MAP},
    {"max-memory", required_argument, 0, OPT_MAX_MEMORY}, {"plan", no_argument, 0, OPT_PLAN},
    {"simulate", no_argument, 0, OPT_SIMULATE},  {"gpu-profile", required_argument, 0, OPT_GPU_PROFILE},
    {"predict", no_argument, 0, OPT_PREDICT},    {"calibrate", no_argument, 0, OPT_CALIBRATE},
    {"iters", required_argument, 0, 'n'},        {"warmup", required_argument, 0, 'w'},
    {"no-cupti", no_argument, 0, OPT_NO_CUPTI},  {"no-graph", no_argument, 0, OPT_NO_GRAPH},
    {"allreduce", required_argument, 0, OPT_ALLREDUCE},
    {"profile-iters", required_argument, 0, OPT_PROFILE_ITERS},
    {"profile-detail", required_argument, 0, OPT_PROFILE_DETAIL},
    {"plot", no_argument, 0, OPT_PLOT},          {"explain", no_argument, 0, OPT_EXPLAIN},
    {"out", required_argument, 0, 'o'},          {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    SERVE_CLI_LONG_OPTIONS,
    SEARCH_CLI_LONG_OPTIONS,
    {0, 0, 0, 0},
};

static int apply_option(int c, const char *arg, struct options *o)
{
    switch (c) {
    case 'm': o->model_path = arg; return PB_OK;
    case 's': return parse_strategies(arg, o);
    case 'g': return parse_count("--gpus", arg, &o->gpus, 0);
    case OPT_DEVICES: {
        int n = cli_int_list("--devices", arg, o->devices, PB_MAX_DEVICES, 1);
        if (n < 0) return PB_ERR;
        o->n_devices_listed = n;
        return PB_OK;
    }
    case 'b': return (o->n_batches = cli_int_list("--batch", arg, o->batches, PB_MAX_LIST, 0)) < 0 ? PB_ERR : PB_OK;
    case 'q': return (o->n_seqs = cli_int_list("--seq", arg, o->seqs, PB_MAX_LIST, 0)) < 0 ? PB_ERR : PB_OK;
    case OPT_MICROBATCHES:
        return (o->n_microbatches = cli_int_list("--microbatches", arg, o->microbatches, PB_MAX_LIST, 1)) < 0
                   ? PB_ERR : PB_OK;
    case OPT_TP: return parse_count("--tp", arg, &o->machine.tp, 0);
    case OPT_VIRTUAL_STAGES: return parse_count("--virtual-stages", arg, &o->machine.virtual_stages, 0);
    case OPT_DECODE: return parse_count("--decode", arg, &o->decode_tokens, 0);
    case OPT_DTYPE:
        if (dtype_parse(arg, &o->dtype))
            return pb_fail("--dtype: unknown dtype \"%s\"; valid: bf16, fp16, fp32", arg);
        return PB_OK;
    case OPT_WEIGHTS:
        o->weights_random = !strcmp(arg, "random");
        o->weights = o->weights_random ? NULL : arg;
        return PB_OK;
    case OPT_SEED: {
        int v;
        PB_TRY(parse_count("--seed", arg, &v, 1));
        o->seed = (uint64_t)v;
        return PB_OK;
    }
    case OPT_DEVICE_MAP: return parse_policy(arg, &o->machine.policy);
    case OPT_MAX_MEMORY:
        o->max_memory_given = 1;
        return memory_budget_parse(arg, &o->machine);
    case OPT_PLAN: o->plan_only = 1; return PB_OK;
    case OPT_SIMULATE: o->simulate = 1; return PB_OK;
    case OPT_GPU_PROFILE: o->gpu_profile = arg; return PB_OK;
    case OPT_PREDICT: o->predict = 1; return PB_OK;
    case OPT_CALIBRATE: o->calibrate = 1; return PB_OK;
    case 'n': return parse_count("--iters", arg, &o->iters, 0);
    case 'w': return parse_count("--warmup", arg, &o->warmup, 1);
    case OPT_NO_CUPTI: o->no_cupti = 1; return PB_OK;
    case OPT_PROFILE_ITERS: return parse_count("--profile-iters", arg, &o->profile_iters, 1);
    case OPT_PROFILE_DETAIL:
        if (strcmp(arg, "kernel") && strcmp(arg, "step"))
            return pb_fail("--profile-detail: \"%s\" is not kernel or step", arg);
        o->profile_steps = !strcmp(arg, "step");
        return PB_OK;
    case OPT_NO_GRAPH: o->use_graph = 0; return PB_OK;
    case OPT_ALLREDUCE:
        if (cli_allreduce_parse(arg, &o->allreduce) != PB_OK)
            return pb_fail("--allreduce: unknown algorithm \"%s\"; valid: auto, nccl, oneshot, twoshot", arg);
        return PB_OK;
    case OPT_PLOT: o->plot = 1; return PB_OK;
    case OPT_EXPLAIN: o->explain = 1; return PB_OK;
    case 'o': o->out_dir = arg; return PB_OK;
    default:
        if (serve_cli_owns(c)) return serve_cli_apply(c, arg, &o->serve);
        if (search_cli_owns(c)) return search_cli_apply(c, arg, &o->search);
        return pb_fail("unknown option; see bench --help");
    }
}

/* Checks across options, once all are known. */
static int check_combination(struct options *o)
{
    if (!o->model_path && !o->calibrate) return pb_fail("--model is required (see bench --help)");
    if (o->n_devices_listed && o->gpus && o->gpus != o->n_devices_listed)
        return pb_fail("--gpus %d disagrees with --devices, which lists %d devices", o->gpus,
                       o->n_devices_listed);
    if (o->n_devices_listed) o->gpus = o->n_devices_listed;
    if ((o->plan_only || o->simulate || o->search.enabled) && !o->gpus) o->gpus = 2;
    if (o->gpus > PB_MAX_DEVICES) return pb_fail("--gpus: at most %d", PB_MAX_DEVICES);
    if (o->plan_only && o->simulate) return pb_fail("--plan and --simulate: choose one");
    if (o->gpu_profile && !o->simulate && !o->predict && !o->plan_only && !o->search.enabled)
        return pb_fail("--gpu-profile is used with --simulate, --predict, --plan or --search");
    PB_TRY(search_cli_check(o));
    return serve_cli_check(o);
}

int cli_parse(int argc, char **argv, struct options *o)
{
    set_defaults(o);
    record_command(argc, argv, o);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:s:g:b:q:n:w:o:hV", long_options, NULL)) != -1) {
        if (c == 'h') {
            cli_usage(stdout);
            return CLI_EXIT_HELP;
        }
        if (c == 'V') {
            cli_version(stdout);
            return CLI_EXIT_HELP;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (optopt && strchr("msgbqnwo", optopt)) pb_fail("option -%c needs a value", optopt);
            else pb_fail("unknown or incomplete option \"%s\"; see bench --help", bad);
            return CLI_USAGE;
        }
        if (apply_option(c, optarg, o) != PB_OK) return CLI_USAGE;
    }
    if (optind < argc) {
        pb_fail("unexpected argument \"%s\"; see bench --help", argv[optind]);
        return CLI_USAGE;
    }
    return check_combination(o) == PB_OK ? CLI_OK : CLI_USAGE;
}

/* What the command line names, checked before any work so that a bad flag is a
 * usage error (exit 2) with no folder left half-written. */
int cli_check_inputs(const struct options *o, const struct model_spec *m)
{
    for (int q = 0; q < o->n_seqs; q++) PB_TRY(model_check_positions(m, o->seqs[q], o->decode_tokens));
    if (o->gpu_profile) {
        static struct device_profile prof;
        PB_TRY(device_profile_load(o->gpu_profile, &prof));
    }
    if (o->weights) {
        struct st_files f;
        PB_TRY(st_open(o->weights, &f));
        st_close(&f);
    }
    return o->out_dir ? results_dir_check(o->out_dir) : PB_OK;
}

int cli_load_model(struct options *o, struct model_spec *m)
{
    char path[4096];
    PB_TRY(model_spec_load(model_resolve_path(o->model_path, path, sizeof path), m));
    if (!o->weights && !o->weights_random && model_folder_has_weights(o->model_path)) o->weights = o->model_path;
    if (!o->weights || o->plan_only || o->simulate) return PB_OK;
    /* The GPUs read the tensors much later: a folder that is not safetensors is bad input now. */
    struct st_files f;
    if (st_open(o->weights, &f) != PB_OK) {
        char why[PB_ERROR_LEN];
        snprintf(why, sizeof why, "%s", pb_last_error());
        return pb_fail("weights %s: %s; --weights random runs without them", o->weights, why);
    }
    st_close(&f);
    return PB_OK;
}
