/* See diff.h. A point is read into a flat struct of numbers (NAN where
 * summary.json has null or nothing), so old folders compare with what they hold. */
#include "diff.h"
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../../base/text_file.h"
#include "../measure/metrics.h"

/* Per-GPU figures in the order they are printed. */
static const struct {
    const char *key, *label;
    int percent;   /* a fraction, shown in % */
} gpu_fields[] = {
    {"window_ms", "window ms", 0},
    {"compute_ms", "compute ms", 0},
    {"comm_ms", "comm ms", 0},
    {"copy_ms", "copy ms", 0},
    {"idle_ms", "idle ms", 0},
    {"idle_peer_wait_ms", "  waiting on another GPU", 0},
    {"idle_host_ms", "  host (launch gaps)", 0},
    {"idle_other_ms", "  other", 0},
    {"mbu", "MBU", 1},
    {"mfu", "MFU", 1},
};
#define N_FIELDS (sizeof gpu_fields / sizeof gpu_fields[0])
#define IDLE_FIELD 4

static const char *const work_names[PB_WORK_KINDS] = {"embed", "layers", "attention", "mlp", "head",
                                                      "copy", "allreduce", "allgather", "untagged"};

struct diff_point {
    char strategy[PB_STRATEGY_NAME_LEN];
    char mode[16];
    int batch, seq, decode, microbatches, ok;
    double p50, tokens_per_s;
    int n_gpus;
    double v[PB_MAX_DEVICES][N_FIELDS];
    double work[PB_MAX_DEVICES][PB_WORK_KINDS];
};

struct side {
    char dir[1024];
    struct diff_point *p;
    int n;
};

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void str(const cJSON *o, const char *key, char *out, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(out, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static void read_point(const cJSON *j, struct diff_point *p)
{
    memset(p, 0, sizeof *p);
    str(j, "strategy", p->strategy, sizeof p->strategy);
    str(j, "mode", p->mode, sizeof p->mode);
    p->batch = (int)num(j, "batch");
    p->seq = (int)num(j, "seq");
    p->decode = (int)num(j, "decode_tokens");
    p->microbatches = (int)num(j, "microbatches");
    char status[16];
    str(j, "status", status, sizeof status);
    p->ok = !strcmp(status, "ok");
    p->p50 = num(j, "latency_p50_ms");
    p->tokens_per_s = num(j, "tokens_per_s");
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(j, "per_gpu")) {
        if (p->n_gpus == PB_MAX_DEVICES) break;
        int d = p->n_gpus++;
        for (size_t f = 0; f < N_FIELDS; f++) p->v[d][f] = num(g, gpu_fields[f].key);
        const cJSON *work = cJSON_GetObjectItemCaseSensitive(g, "work_ms");
        for (int k = 0; k < PB_WORK_KINDS; k++)
            p->work[d][k] = cJSON_IsObject(work) ? (isnan(num(work, work_names[k])) ? 0 : num(work, work_names[k]))
                                                 : NAN;
    }
}

static int read_side(const char *dir, struct side *s)
{
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = text_file_read(path);
    if (!text)
        return pb_fail("diff: %s: %s (give a results folder that bench wrote)", path, strerror(errno));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    if (!cJSON_IsArray(results)) {
        cJSON_Delete(root);
        return pb_fail("diff: %s: no \"results\" array (not a summary.json bench wrote)", path);
    }
    s->n = cJSON_GetArraySize(results);
    s->p = calloc((size_t)s->n + 1, sizeof *s->p);
    if (!s->p) {
        cJSON_Delete(root);
        return pb_fail("diff: out of host memory reading %s", path);
    }
    int i = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, results) read_point(j, &s->p[i++]);
    cJSON_Delete(root);
    return PB_OK;
}

static int same_workload(const struct diff_point *a, const struct diff_point *b)
{
    return !strcmp(a->mode, b->mode) && a->batch == b->batch && a->seq == b->seq && a->decode == b->decode;
}

static void cell(FILE *out, double v, int percent)
{
    if (isnan(v)) fprintf(out, " %10s", "-");
    else if (percent) fprintf(out, " %9.1f%%", 100 * v);
    else fprintf(out, " %10.3f", v);
}

static void row(FILE *out, const char *label, double a, double b, int percent)
{
    fprintf(out, "  %-26s", label);
    cell(out, a, percent);
    cell(out, b, percent);
    if (isnan(a) || isnan(b)) fprintf(out, " %10s\n", "-");
    else if (percent) fprintf(out, " %+9.1f%%\n", 100 * (b - a));
    else fprintf(out, " %+10.3f\n", b - a);
}

/* The largest change of one figure over the GPUs both sides have; its GPU in *gpu. */
static double largest_change(const struct diff_point *a, const struct diff_point *b, int field, int work,
                             int *gpu)
{
    double best = 0;
    *gpu = -1;
    int n = a->n_gpus < b->n_gpus ? a->n_gpus : b->n_gpus;
    for (int d = 0; d < n; d++) {
        double x = work >= 0 ? a->work[d][work] : a->v[d][field], y = work >= 0 ? b->work[d][work] : b->v[d][field];
        if (isnan(x) || isnan(y) || fabs(y - x) <= fabs(best)) continue;
        best = y - x;
        *gpu = d;
    }
    return best;
}

/* One sentence: where the time went, and where the idle time moved. */
static void verdict(FILE *out, const struct diff_point *a, const struct diff_point *b)
{
    if (isnan(a->p50) || isnan(b->p50)) return;
    fprintf(out, "  B is %.3f ms %s than A (p50).", fabs(b->p50 - a->p50), b->p50 >= a->p50 ? "slower" : "faster");
    int gpu, best_kind = -1, best_gpu = -1;
    double best = 0;
    for (int k = 0; k < PB_WORK_KINDS; k++) {
        double c = largest_change(a, b, 0, k, &gpu);
        if (gpu >= 0 && fabs(c) > fabs(best)) best = c, best_kind = k, best_gpu = gpu;
    }
    if (best_kind >= 0)
        fprintf(out, " Largest change in busy time: %s on GPU %d, %+.3f ms.", work_names[best_kind], best_gpu, best);
    double idle = largest_change(a, b, IDLE_FIELD, -1, &gpu);
    if (gpu >= 0) {
        fprintf(out, " Idle time moved most on GPU %d (%+.3f ms", gpu, idle);
        static const char *const causes[] = {"waiting on another GPU", "host", "other"};
        for (int c = 0; c < 3; c++) {
            double x = a->v[gpu][IDLE_FIELD + 1 + c], y = b->v[gpu][IDLE_FIELD + 1 + c];
            if (!isnan(x) && !isnan(y)) fprintf(out, "%s %s %+.3f", c ? "," : ":", causes[c], y - x);
        }
        fprintf(out, ").");
    }
    fputc('\n', out);
}

static void compare(FILE *out, const struct side *sa, const struct diff_point *a, const struct side *sb,
                    const struct diff_point *b)
{
    fprintf(out, "\n== %s %s batch %d x seq %d", a->mode, a->strategy, a->batch, a->seq);
    if (a->decode) fprintf(out, " + %d tokens", a->decode);
    if (a->microbatches > 1) fprintf(out, ", %d microbatches", a->microbatches);
    fprintf(out, " (A: %s) against %s", sa->dir, b->strategy);
    if (b->microbatches > 1) fprintf(out, ", %d microbatches", b->microbatches);
    fprintf(out, " (B: %s) ==\n", sb->dir);
    if (!a->ok || !b->ok) {
        fprintf(out, "  %s failed: nothing to compare\n", !a->ok ? "A" : "B");
        return;
    }
    fprintf(out, "  %-26s %10s %10s %10s\n", "", "A", "B", "B - A");
    row(out, "p50 ms", a->p50, b->p50, 0);
    row(out, "tokens/s", a->tokens_per_s, b->tokens_per_s, 0);
    int n = a->n_gpus > b->n_gpus ? a->n_gpus : b->n_gpus;
    for (int d = 0; d < n; d++) {
        fprintf(out, "  GPU %d%s\n", d, d >= a->n_gpus ? " (B only)" : d >= b->n_gpus ? " (A only)" : "");
        const double *va = d < a->n_gpus ? a->v[d] : NULL, *vb = d < b->n_gpus ? b->v[d] : NULL;
        for (size_t f = 0; f < N_FIELDS; f++) {
            row(out, gpu_fields[f].label, va ? va[f] : NAN, vb ? vb[f] : NAN, gpu_fields[f].percent);
            if (f != 3) continue;
            /* Busy time by step kind after the busy kinds: what took longer. */
            for (int k = 0; k < PB_WORK_KINDS; k++) {
                double x = va ? a->work[d][k] : NAN, y = vb ? b->work[d][k] : NAN;
                if ((isnan(x) || x == 0) && (isnan(y) || y == 0)) continue;
                char label[64];
                snprintf(label, sizeof label, "  %s steps ms", work_names[k]);
                row(out, label, x, y, 0);
            }
        }
    }
    verdict(out, a, b);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench diff DIR_A DIR_B [--strategies X,Y]\n"
                    "       bench diff DIR --strategies X,Y\n"
                    "  compares two results folders (or strategies X and Y of one) point by point: latency,\n"
                    "  per GPU busy time by step kind, idle time by cause, MBU and MFU\n");
    return 2;
}

static int parse_strategies(const char *list, char *x, char *y, size_t len)
{
    const char *comma = strchr(list, ',');
    if (!comma || comma == list || !comma[1] || strchr(comma + 1, ','))
        return pb_fail("diff: --strategies wants two names, X,Y (got \"%s\")", list);
    snprintf(x, len, "%.*s", (int)(comma - list), list);
    snprintf(y, len, "%s", comma + 1);
    return PB_OK;
}

int diff_main(int argc, char **argv, FILE *out)
{
    const char *dirs[2] = {NULL, NULL}, *strategies = NULL;
    int nd = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--strategies") && i + 1 < argc) strategies = argv[++i];
        else if (!strncmp(argv[i], "--strategies=", 13)) strategies = argv[i] + 13;
        else if (argv[i][0] == '-' || nd == 2) return usage();
        else dirs[nd++] = argv[i];
    }
    if (nd == 0 || (nd == 1 && !strategies)) return usage();
    char x[PB_STRATEGY_NAME_LEN] = "", y[PB_STRATEGY_NAME_LEN] = "";
    if (strategies && parse_strategies(strategies, x, y, sizeof x) != PB_OK) return 2;
    struct side a = {0}, b = {0};
    int rc = read_side(dirs[0], &a);
    if (rc == PB_OK) rc = nd == 2 ? read_side(dirs[1], &b) : read_side(dirs[0], &b);
    int pairs = 0;
    for (int i = 0; rc == PB_OK && i < a.n; i++) {
        const struct diff_point *p = &a.p[i];
        if (strategies ? strcmp(p->strategy, x) : 0) continue;
        for (int j = 0; j < b.n; j++) {
            const struct diff_point *q = &b.p[j];
            if (!same_workload(p, q)) continue;
            if (strategies ? strcmp(q->strategy, y) : (strcmp(p->strategy, q->strategy) || p->microbatches != q->microbatches))
                continue;
            compare(out, &a, p, &b, q);
            pairs++;
        }
    }
    if (rc == PB_OK && !pairs) {
        if (strategies)
            rc = pb_fail("diff: no workload has both %s (in %s) and %s (in %s)", x, a.dir, y, b.dir);
        else
            rc = pb_fail("diff: %s and %s have no point in common (same strategy, mode, batch, seq, decode "
                         "tokens and microbatches)", a.dir, b.dir);
    }
    free(a.p);
    free(b.p);
    return rc == PB_OK ? 0 : 2;
}
