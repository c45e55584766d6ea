/* Parses the serving flags. Every error names the flag, the text and what is
 * accepted, so cli.c maps it to exit status 2. */
#include "serve_cli.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../../base/csv_read.h"
#include "../cli/options.h"

#define DEFAULT_REQUESTS 256
#define DEFAULT_MAX_BATCH 32
#define DEFAULT_PROMPT 512
#define DEFAULT_OUTPUT 128
#define MAX_TOKENS (1 << 24)

void serve_cli_usage(FILE *f)
{
    fputs("Serving (a stream of requests per placement; on the GPUs, or the cost model with --simulate):\n"
          "      --serve               serve requests with continuous batching instead of one fixed batch\n"
          "      --requests N          requests in the stream (default 256; a length file's rows otherwise)\n"
          "      --rate LIST           offered requests/s, Poisson arrivals seeded by --seed; inf = all at\n"
          "                            time 0; a list makes a sweep (default 2,8,32,inf)\n"
          "      --prompt-len SPEC     N, uniform:A-B, or file:PATH.csv (column prompt_tokens) (default 512)\n"
          "      --output-len SPEC     the same for generated tokens (column output_tokens) (default 128)\n"
          "      --max-batch N         sequences in flight at most (default 32)\n"
          "      --slo LIMITS          ttft=MS,tpot=MS (units ms, s, us; plain = ms): goodput counts the\n"
          "                            requests within them\n"
          "\n",
          f);
}

/* 1..MAX_TOKENS, the whole text; -1 without a message. */
static int to_positive(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > MAX_TOKENS) return PB_ERR;
    *out = (int)v;
    return PB_OK;
}

static int parse_positive(const char *opt, const char *s, int *out)
{
    if (to_positive(s, out) != PB_OK)
        return pb_fail("%s: \"%s\" is not a positive integer (1..%d)", opt, s, MAX_TOKENS);
    return PB_OK;
}

int serve_parse_length(const char *opt, const char *arg, struct length_spec *out)
{
    memset(out, 0, sizeof *out);
    if (!strncmp(arg, "file:", 5)) {
        if (!arg[5]) return pb_fail("%s: \"file:\" needs a path, e.g. file:lengths.csv", opt);
        out->kind = LENGTH_FILE;
        out->path = arg + 5;
        return PB_OK;
    }
    if (!strncmp(arg, "uniform:", 8)) {
        char lo[32], hi[32];
        const char *dash = strchr(arg + 8, '-');
        size_t nlo = dash ? (size_t)(dash - (arg + 8)) : 0;
        if (!dash || nlo == 0 || nlo >= sizeof lo || strlen(dash + 1) >= sizeof hi)
            return pb_fail("%s: \"%s\" is not uniform:A-B (two positive integers, A <= B)", opt, arg);
        memcpy(lo, arg + 8, nlo);
        lo[nlo] = 0;
        snprintf(hi, sizeof hi, "%s", dash + 1);
        if (to_positive(lo, &out->lo) || to_positive(hi, &out->hi))
            return pb_fail("%s: \"%s\" is not uniform:A-B (two positive integers, A <= B)", opt, arg);
        if (out->lo > out->hi)
            return pb_fail("%s: \"%s\": the lower bound %d is above the upper %d", opt, arg, out->lo, out->hi);
        out->kind = LENGTH_UNIFORM;
        return PB_OK;
    }
    if (to_positive(arg, &out->fixed) != PB_OK)
        return pb_fail("%s: \"%s\" is not a length: N, uniform:A-B or file:PATH.csv", opt, arg);
    out->kind = LENGTH_FIXED;
    return PB_OK;
}

int serve_parse_rates(const char *arg, double *rates, int max)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = 0;
    char *save;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) return pb_fail("--rate: at most %d rates", max);
        if (!strcmp(tok, "inf")) {
            rates[n++] = INFINITY;
            continue;
        }
        char *end;
        errno = 0;
        double v = strtod(tok, &end);
        if (end == tok || *end || errno || !(v > 0) || isinf(v))
            return pb_fail("--rate: \"%s\" is not a positive number of requests per second or inf", tok);
        rates[n++] = v;
    }
    if (!n || arg[strlen(arg) - 1] == ',' || arg[0] == ',' || strstr(arg, ",,")) return pb_fail("--rate: \"%s\" is not a comma list", arg);
    return n;
}

/* "200", "200ms", "0.2s", "200000us" -> milliseconds. */
static int parse_duration_ms(const char *key, const char *text, double *ms)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !(v > 0) || isinf(v))
        return pb_fail("--slo: %s=\"%s\" is not a positive duration", key, text);
    double scale;
    if (!*end || !strcmp(end, "ms")) scale = 1;
    else if (!strcmp(end, "s")) scale = 1e3;
    else if (!strcmp(end, "us")) scale = 1e-3;
    else return pb_fail("--slo: %s=\"%s\": unknown unit \"%s\"; use ms, s or us", key, text, end);
    *ms = v * scale;
    return PB_OK;
}

int serve_parse_slo(const char *arg, double *ttft_ms, double *tpot_ms)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    *ttft_ms = *tpot_ms = INFINITY;
    int n = 0;
    char *save;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
        char *eq = strchr(tok, '=');
        if (!eq) return pb_fail("--slo: \"%s\" is not KEY=DURATION (keys ttft, tpot)", tok);
        *eq = 0;
        double *slot = !strcmp(tok, "ttft") ? ttft_ms : !strcmp(tok, "tpot") ? tpot_ms : NULL;
        if (!slot) return pb_fail("--slo: unknown limit \"%s\"; valid: ttft, tpot", tok);
        PB_TRY(parse_duration_ms(tok, eq + 1, slot));
    }
    return n ? PB_OK : pb_fail("--slo: empty; e.g. --slo ttft=500ms,tpot=50ms");
}

int serve_cli_apply(int c, const char *arg, struct serve_options *s)
{
    s->any_flag |= c != SERVE_OPT_SERVE;
    switch (c) {
    case SERVE_OPT_SERVE: s->enabled = 1; return PB_OK;
    case SERVE_OPT_REQUESTS: return parse_positive("--requests", arg, &s->requests);
    case SERVE_OPT_RATE: return (s->n_rates = serve_parse_rates(arg, s->rates, SERVE_MAX_RATES)) < 0 ? PB_ERR : PB_OK;
    case SERVE_OPT_PROMPT_LEN: return serve_parse_length("--prompt-len", arg, &s->prompt);
    case SERVE_OPT_OUTPUT_LEN: return serve_parse_length("--output-len", arg, &s->output);
    case SERVE_OPT_MAX_BATCH: return parse_positive("--max-batch", arg, &s->max_batch);
    case SERVE_OPT_SLO:
        s->slo_given = 1;
        return serve_parse_slo(arg, &s->slo_ttft_ms, &s->slo_tpot_ms);
    default: return pb_fail("internal: serving flag %d not handled", c);
    }
}

void length_spec_free(struct length_spec *spec)
{
    free(spec->values);
    spec->values = NULL;
    spec->n_values = 0;
}

int serve_read_length_file(const char *opt, const char *column, struct length_spec *spec)
{
    struct csv_table t;
    if (csv_read_file(spec->path, &t) != PB_OK)
        return pb_fail("%s: cannot read %s (%s)", opt, spec->path, pb_last_error());
    int col = csv_column(&t, column);
    if (col < 0 && t.n_cols == 1) col = 0;
    int rc = PB_OK;
    if (col < 0) rc = pb_fail("%s: %s has no column \"%s\" (and more than one column)", opt, spec->path, column);
    else if (t.n_rows == 0) rc = pb_fail("%s: %s has a header but no rows", opt, spec->path);
    else if (!(spec->values = malloc((size_t)t.n_rows * sizeof *spec->values)))
        rc = pb_fail("%s: out of host memory for %d rows of %s", opt, t.n_rows, spec->path);
    for (int i = 0; rc == PB_OK && i < t.n_rows; i++) {
        const char *field = t.rows[i][col];
        /* Row numbers as a text editor shows them: the header is line 1. */
        if (to_positive(field, &spec->values[i]) != PB_OK)
            rc = pb_fail("%s: %s line %d, column %s: \"%s\" is not a positive integer (1..%d)", opt,
                         spec->path, i + 2, t.header[col], field, MAX_TOKENS);
    }
    if (rc == PB_OK) spec->n_values = t.n_rows;
    else length_spec_free(spec);
    csv_table_free(&t);
    return rc;
}

/* The request count: --requests, else the rows of a length file (both files must
 * then agree), else the default. A file shorter than --requests is an error. */
static int resolve_requests(struct serve_options *s)
{
    const struct length_spec *files[2] = {&s->prompt, &s->output};
    const char *flags[2] = {"--prompt-len", "--output-len"};
    int from_file = 0;
    for (int i = 0; i < 2; i++) {
        if (files[i]->kind != LENGTH_FILE) continue;
        int rows = files[i]->n_values;
        if (s->requests && rows < s->requests)
            return pb_fail("%s: %s has %d rows but --requests asks for %d", flags[i], files[i]->path, rows,
                           s->requests);
        if (!s->requests && from_file && rows != from_file)
            return pb_fail("--prompt-len and --output-len files have %d and %d rows; give --requests N "
                           "to use the first N of each", from_file, rows);
        if (!s->requests) from_file = rows;
    }
    if (!s->requests) s->requests = from_file ? from_file : DEFAULT_REQUESTS;
    return PB_OK;
}

int serve_cli_check(struct options *o)
{
    struct serve_options *s = &o->serve;
    if (!s->enabled) {
        return s->any_flag ? pb_fail("--requests, --rate, --prompt-len, --output-len, --max-batch and "
                                     "--slo belong to --serve")
                           : PB_OK;
    }
    if (o->plan_only) return pb_fail("--serve and --plan: choose one");
    if (o->decode_tokens) return pb_fail("--serve takes --output-len instead of --decode");
    if (o->predict)
        return pb_fail("--serve does not take --predict: run the same stream with --serve --simulate for the cost "
                       "model's prediction (the same requests, policy and seed)");
    if (!s->n_rates) {
        const double dflt[] = {2, 8, 32, INFINITY};
        for (int i = 0; i < 4; i++) s->rates[i] = dflt[i];
        s->n_rates = 4;
    }
    if (!s->slo_given) s->slo_ttft_ms = s->slo_tpot_ms = INFINITY;
    if (!s->max_batch) s->max_batch = DEFAULT_MAX_BATCH;
    if (s->prompt.kind == LENGTH_UNSET) s->prompt = (struct length_spec){.kind = LENGTH_FIXED, .fixed = DEFAULT_PROMPT};
    if (s->output.kind == LENGTH_UNSET) s->output = (struct length_spec){.kind = LENGTH_FIXED, .fixed = DEFAULT_OUTPUT};
    if (s->prompt.kind == LENGTH_FILE && !s->prompt.values)
        PB_TRY(serve_read_length_file("--prompt-len", "prompt_tokens", &s->prompt));
    if (s->output.kind == LENGTH_FILE && !s->output.values)
        PB_TRY(serve_read_length_file("--output-len", "output_tokens", &s->output));
    return resolve_requests(s);
}
