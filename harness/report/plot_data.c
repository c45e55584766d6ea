/* From a results folder's files to gnuplot data: the converter behind
 * scripts/plot.sh and bench --plot. Every number drawn comes from the files. */
#include "plot_data.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include "../../base/csv_read.h"
#include "timeline.h"
#include "trace_read.h"

const unsigned plot_kind_rgb[5] = {0x4C72B0, 0xDD8452, 0x55A868, 0x8C8C8C, 0xE8E8E8};

/* The output folder and the manifest being built. */
struct out {
    char dir[4096];
    FILE *manifest;
    int n_plots;
    char names[256][128];   /* picture names given so far: a repeated one gets -2, -3, ... */
    int n_names;
};

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A file name part from a strategy name: letters, digits, '-' and '_' only. */
static void safe_name(char *buf, size_t len, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < len; s++) buf[k++] = (isalnum((unsigned char)*s) || *s == '-' || *s == '_') ? *s : '_';
    buf[k] = 0;
}

/* Every string that reaches a .gp file goes through here: data (a model's file
 * name, a strategy, a CSV field) must never run as gnuplot code. A single-quoted
 * gnuplot string has no escapes but '' and no `command` or @macro substitution
 * (a double-quoted one runs backquotes); line breaks and control bytes, which
 * would end the command, become spaces. */
static void gp_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'') fputc('\'', f);
        fputc(c < 0x20 || c == 0x7f ? ' ' : c, f);
    }
    fputc('\'', f);
}

/* A picture's name that says its workload, from its summary row:
 * "<prefix>-pipeline-b8-s512-m8" (-gN: N generated tokens; no strategy: the workload
 * alone, "util-b8-s512"), or, without a row, "<prefix>-NN-<strategy>"; unique within
 * the folder. */
static void picture_name(struct out *o, char *buf, size_t len, const char *prefix, const char *strategy,
                         const struct csv_table *s, int row, int index)
{
    char safe[64];
    safe_name(safe, sizeof safe, strategy ? strategy : "");
    int n = strategy ? snprintf(buf, len, "%s-%s", prefix, safe) : snprintf(buf, len, "%s", prefix);
    if (row < 0 && strategy) {
        snprintf(buf, len, "%s-%02d-%s", prefix, index, safe);
    } else if (row >= 0 && n < (int)len) {
        /* Numbers, never the file's text: a name is a path. */
        n += snprintf(buf + n, len - (size_t)n, "-b%g-s%g", csv_get_num(s, row, "batch"), csv_get_num(s, row, "seq"));
        double dec = csv_get_num(s, row, "decode_tokens"), mb = csv_get_num(s, row, "microbatches");
        if (dec > 0 && n < (int)len) n += snprintf(buf + n, len - (size_t)n, "-g%g", dec);
        if (strategy && mb > 1 && n < (int)len) snprintf(buf + n, len - (size_t)n, "-m%g", mb);
    }
    int seen = 0;
    for (int i = 0; i < o->n_names; i++) {
        const char *nm = o->names[i];
        size_t k = strlen(buf);
        seen += !strncmp(nm, buf, k) && (nm[k] == 0 || (nm[k] == '-' && isdigit((unsigned char)nm[k + 1]) &&
                                                        strspn(nm + k + 1, "0123456789") == strlen(nm + k + 1)));
    }
    size_t k = strlen(buf);
    if (seen && k + 8 < len) snprintf(buf + k, len - k, "-%d", seen + 1);
    if (o->n_names < (int)(sizeof o->names / sizeof o->names[0]))
        snprintf(o->names[o->n_names++], sizeof o->names[0], "%s", buf);
}

static int open_pair(struct out *o, const char *name, struct atomic_file *dat, struct atomic_file *gp)
{
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/%s.dat", o->dir, name);
    PB_TRY(atomic_file_open(dat, path));
    snprintf(path, sizeof path, "%s/%s.gp", o->dir, name);
    if (atomic_file_open(gp, path) != PB_OK) {
        atomic_file_abort(dat);
        return PB_ERR;
    }
    return PB_OK;
}

static int close_pair(struct out *o, const char *type, const char *name, struct atomic_file *dat,
                      struct atomic_file *gp)
{
    int rc = atomic_file_commit(dat);
    if (rc == PB_OK) rc = atomic_file_commit(gp);
    else atomic_file_abort(gp);
    if (rc == PB_OK) {
        fprintf(o->manifest, "%s %s\n", type, name);
        o->n_plots++;
    }
    return rc;
}

/* The workload of the k-th trace point of a strategy, from the k-th ok summary row. */
static int summary_row_of(const struct csv_table *s, const char *strategy, int occurrence)
{
    for (int r = 0; s && r < s->n_rows; r++) {
        if (strcmp(csv_get(s, r, "strategy"), strategy) || strcmp(csv_get(s, r, "status"), "ok")) continue;
        if (occurrence-- == 0) return r;
    }
    return -1;
}

static void workload_text(char *buf, size_t len, const struct csv_table *s, int row)
{
    if (row < 0) {
        buf[0] = 0;
        return;
    }
    int n = snprintf(buf, len, ", batch %s x seq %s", csv_get(s, row, "batch"), csv_get(s, row, "seq"));
    double dec = csv_get_num(s, row, "decode_tokens"), mb = csv_get_num(s, row, "microbatches");
    if (dec > 0 && n < (int)len) n += snprintf(buf + n, len - (size_t)n, ", %g decode tokens", dec);
    if (mb > 1 && n < (int)len) snprintf(buf + n, len - (size_t)n, ", %g microbatches", mb);
}

static int write_timeline(struct out *o, const struct trace_point *p, int index, const struct csv_table *s,
                          int occurrence)
{
    struct timeline tl;
    PB_TRY(timeline_build(&p->t, -1, &tl));
    if (tl.n == 0) {
        timeline_free(&tl);
        return PB_OK;
    }
    char name[128], wl[160];
    int row = summary_row_of(s, p->strategy, occurrence);
    picture_name(o, name, sizeof name, "timeline", p->strategy, s, row, index);
    workload_text(wl, sizeof wl, s, row);
    struct atomic_file dat, gp;
    if (open_pair(o, name, &dat, &gp) != PB_OK) {
        timeline_free(&tl);
        return PB_ERR;
    }
    /* Boxes: x from, x to, y from, y to, colour; then (second block) microbatch labels. */
    fprintf(dat.f, "# start_ms end_ms lane_lo lane_hi rgb kind name\n");
    for (int i = 0; i < tl.n; i++) {
        const struct timeline_box *b = &tl.box[i];
        fprintf(dat.f, "%.6f %.6f %.2f %.2f %u %s\n", b->start_ms, b->end_ms, b->lane - 0.38, b->lane + 0.38,
                plot_kind_rgb[b->kind], box_kind_name(b->kind));
    }
    /* One label per run of boxes of the same microbatch on a lane, where it is wide
     * enough to read; lanes are drawn in record order, which is time order per stream. */
    fprintf(dat.f, "\n\n# label_x lane label\n");
    int labels = 0;
    for (int i = 0; i < tl.n; i++) {
        const struct timeline_box *b = &tl.box[i];
        if (b->microbatch < 0) continue;
        int j = i;
        double end = b->end_ms;
        while (j + 1 < tl.n && tl.box[j + 1].lane == b->lane && tl.box[j + 1].microbatch == b->microbatch)
            end = tl.box[++j].end_ms;
        if (end - b->start_ms > tl.span_ms * 0.025) {
            fprintf(dat.f, "%.6f %d \"mb%d\"\n", (b->start_ms + end) / 2, b->lane, b->microbatch);
            labels++;
        }
        i = j;
    }
    /* Keep the block non-empty with a label far outside the range: gnuplot 5.4
     * crashes on a labels plot with no valid point. */
    if (!labels) fprintf(dat.f, "-1e9 0 \".\"\n");
    fprintf(gp.f, "TITLE = ");
    char title[512];
    snprintf(title, sizeof title, "%s%s: per-GPU timeline, iteration %d of %d (%s)", p->strategy, wl,
             tl.iteration, tl.n_iterations, tl.predicted ? "predicted by the cost model" : "measured");
    gp_string(gp.f, title);
    fprintf(gp.f, "\nLANES = %d\nSPAN = %.6f\nset yrange [%d.5:-0.5]\nset xrange [0:%.6f]\nset ytics (",
            tl.n_lanes, tl.span_ms, tl.n_lanes - 1, tl.span_ms * 1.01);
    for (int l = 0; l < tl.n_lanes; l++)
    {
        char lane[48];
        snprintf(lane, sizeof lane, "GPU %d stream %d", tl.lane_device[l], tl.lane_stream[l]);
        fputs(l ? ", " : "", gp.f);
        gp_string(gp.f, lane);
        fprintf(gp.f, " %d", l);
    }
    fprintf(gp.f, ")\n");
    timeline_free(&tl);
    return close_pair(o, "timeline", name, &dat, &gp);
}

static int timelines(struct out *o, const char *dir, const struct csv_table *s)
{
    char path[4096];
    PB_TRY(path_join(path, sizeof path, dir, "trace.json"));
    if (!exists(path)) return PB_OK;
    struct trace_point *pts;
    int n, predicted;
    PB_TRY(trace_json_read(path, &pts, &n, &predicted));
    int rc = PB_OK;
    for (int i = 0; i < n && rc == PB_OK; i++) {
        int occurrence = 0;
        for (int k = 0; k < i; k++) occurrence += !strcmp(pts[k].strategy, pts[i].strategy);
        rc = write_timeline(o, &pts[i], i, s, occurrence);
    }
    trace_points_free(pts, n);
    return rc;
}

/* Rows of one workload: same mode, batch, seq and decode tokens. */
static int same_workload(const struct csv_table *s, int a, int b)
{
    static const char *const keys[] = {"mode", "batch", "seq", "decode_tokens"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (strcmp(csv_get(s, a, keys[k]), csv_get(s, b, keys[k]))) return 0;
    return 1;
}

static int is_ok(const struct csv_table *s, int r)
{
    return !strcmp(csv_get(s, r, "status"), "ok");
}

/* Stacked utilisation bars, one file per workload, in percent of the shared window. */
static int utilisation(struct out *o, const struct csv_table *s)
{
    int groups = 0;
    for (int r = 0; r < s->n_rows; r++) {
        if (!is_ok(s, r)) continue;
        int first = 1;
        for (int q = 0; q < r && first; q++) first = !(is_ok(s, q) && same_workload(s, q, r));
        if (!first) continue;
        char name[128], body[160];
        picture_name(o, name, sizeof name, "util", NULL, s, r, groups++);
        struct atomic_file dat, gp;
        PB_TRY(open_pair(o, name, &dat, &gp));
        fprintf(dat.f, "# label compute_pct comm_pct copy_pct idle_pct\n");
        int bars = 0, unknown = 0, over = 0;
        for (int q = r; q < s->n_rows; q++) {
            if (!is_ok(s, q) || !same_workload(s, q, r)) continue;
            double window = csv_get_num(s, q, "window_ms");
            const char *dev = csv_get(s, q, "devices");
            int nd = *dev ? 1 : 0;
            for (const char *c = dev; *c; c++) nd += *c == ';';
            if (isnan(window) || window <= 0) { unknown++; continue; }
            double mb = csv_get_num(s, q, "microbatches");
            for (int d = 0; d < nd; d++) {
                double c = csv_list_num(csv_get(s, q, "compute_ms_per_gpu"), d);
                double m = csv_list_num(csv_get(s, q, "comm_ms_per_gpu"), d);
                double y = csv_list_num(csv_get(s, q, "copy_ms_per_gpu"), d);
                double i = csv_list_num(csv_get(s, q, "idle_ms_per_gpu"), d);
                if (isnan(c) || isnan(i)) { unknown++; break; }
                if (isnan(m)) m = 0;
                if (isnan(y)) y = 0;
                over |= c + m + y + i > window * 1.001;
                char label[96];
                if (mb > 1) snprintf(label, sizeof label, "%s m=%g GPU%d", csv_get(s, q, "strategy"), mb, d);
                else snprintf(label, sizeof label, "%s GPU%d", csv_get(s, q, "strategy"), d);
                gp_string(dat.f, label);
                fprintf(dat.f, " %.4f %.4f %.4f %.4f\n", 100 * c / window, 100 * m / window, 100 * y / window,
                        100 * i / window);
                bars++;
            }
        }
        snprintf(body, sizeof body, "Utilisation per GPU, batch %s x seq %s%s%s%s", csv_get(s, r, "batch"),
                 csv_get(s, r, "seq"), strcmp(csv_get(s, r, "mode"), "generate") ? "" : ", generate",
                 unknown ? " (busy time unknown for some rows: not drawn)" : "",
                 over ? " (kinds that overlap in time stack above 100%)" : "");
        fprintf(gp.f, "TITLE = ");
        gp_string(gp.f, body);
        fprintf(gp.f, "\nBARS = %d\n", bars);
        if (!bars) {
            atomic_file_abort(&dat);
            atomic_file_abort(&gp);
            groups--;
            continue;
        }
        PB_TRY(close_pair(o, "util", name, &dat, &gp));
    }
    return PB_OK;
}

/* Does field `key` take more than one value over the ok rows? */
static int varies(const struct csv_table *s, const char *key)
{
    const char *first = NULL;
    for (int r = 0; r < s->n_rows; r++) {
        if (!is_ok(s, r)) continue;
        if (!first) first = csv_get(s, r, key);
        else if (strcmp(first, csv_get(s, r, key))) return 1;
    }
    return 0;
}

/* Rows on one curve of a sweep along `axis`: the same strategy and every other knob. */
static int same_curve(const struct csv_table *s, int a, int b, const char *axis)
{
    static const char *const keys[] = {"strategy", "mode", "decode_tokens", "batch", "seq", "microbatches"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (strcmp(keys[k], axis) && strcmp(csv_get(s, a, keys[k]), csv_get(s, b, keys[k]))) return 0;
    return 1;
}

struct sweep_point {
    double x, tokens_per_s, p50;
};

static int cmp_point(const void *a, const void *b)
{
    double x = ((const struct sweep_point *)a)->x, y = ((const struct sweep_point *)b)->x;
    return x < y ? -1 : x > y;
}

/* Throughput and latency against one knob, a curve per strategy and setting of the others. */
static int sweep(struct out *o, const struct csv_table *s, const char *axis)
{
    if (!varies(s, axis)) return PB_OK;
    char name[64];
    snprintf(name, sizeof name, "sweep-%s", axis);
    struct atomic_file dat, gp;
    PB_TRY(open_pair(o, name, &dat, &gp));
    struct sweep_point *pts = malloc((size_t)s->n_rows * sizeof *pts);
    char *done = calloc((size_t)s->n_rows, 1);
    if (!pts || !done) {
        free(pts);
        free(done);
        atomic_file_abort(&dat);
        atomic_file_abort(&gp);
        return pb_fail("out of host memory building the %s sweep", axis);
    }
    int curves = 0, longest = 0;
    double xmin = INFINITY, xmax = 0;
    fprintf(gp.f, "set xlabel ");
    gp_string(gp.f, axis);
    fprintf(gp.f, "\narray T[%d]\n", s->n_rows);
    for (int r = 0; r < s->n_rows; r++) {
        if (done[r] || !is_ok(s, r)) continue;
        int n = 0;
        for (int q = r; q < s->n_rows; q++) {
            if (done[q] || !is_ok(s, q) || !same_curve(s, q, r, axis)) continue;
            done[q] = 1;
            pts[n++] = (struct sweep_point){csv_get_num(s, q, axis), csv_get_num(s, q, "tokens_per_s"),
                                            csv_get_num(s, q, "latency_p50_ms")};
        }
        qsort(pts, (size_t)n, sizeof *pts, cmp_point);
        if (n > longest) longest = n;
        fprintf(dat.f, "%s# %s\n", curves ? "\n\n" : "", csv_get(s, r, "strategy"));
        for (int i = 0; i < n; i++) {
            fprintf(dat.f, "%g %.6g %.6g\n", pts[i].x, pts[i].tokens_per_s, pts[i].p50);
            if (pts[i].x < xmin) xmin = pts[i].x;
            if (pts[i].x > xmax) xmax = pts[i].x;
        }
        /* The title names the other knobs only where they vary across the run. */
        char title[256];
        int k = snprintf(title, sizeof title, "%s", csv_get(s, r, "strategy"));
        static const char *const others[] = {"batch", "seq", "microbatches", "decode_tokens"};
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
            if (strcmp(others[i], axis) && varies(s, others[i]) && k < (int)sizeof title)
                k += snprintf(title + k, sizeof title - (size_t)k, " %s=%s", others[i], csv_get(s, r, others[i]));
        fprintf(gp.f, "T[%d] = ", ++curves);
        gp_string(gp.f, title);
        fputc('\n', gp.f);
    }
    free(pts);
    free(done);
    /* The knob varies across strategies (single's 1 against pipeline's 4) but no curve
     * has two points: nothing was swept. */
    if (longest < 2) {
        atomic_file_abort(&dat);
        atomic_file_abort(&gp);
        return PB_OK;
    }
    /* Powers of two read best on a log2 axis when the knob spans a factor of 4 or more. */
    fprintf(gp.f, "CURVES = %d\n%s", curves, xmin > 0 && xmax >= 4 * xmin ? "set logscale x 2\n" : "");
    char heading[128];
    snprintf(heading, sizeof heading, "Throughput and latency against %s", axis);
    fprintf(gp.f, "TITLE = ");
    gp_string(gp.f, heading);
    fputc('\n', gp.f);
    return close_pair(o, "sweep", name, &dat, &gp);
}

/* Entries of a ';'-separated per-GPU or per-stage list; 0 for an empty field. */
static int list_len(const char *list)
{
    if (!*list) return 0;
    int n = 1;
    for (; *list; list++) n += *list == ';';
    return n;
}

/* The pipeline's measured bubble (mean over stages) beside the GPipe bound. */
static int bubble(struct out *o, const struct csv_table *s)
{
    int first = -1;
    for (int r = 0; r < s->n_rows && first < 0; r++)
        if (is_ok(s, r) && !isnan(csv_get_num(s, r, "gpipe_bound"))) first = r;
    if (first < 0) return PB_OK;
    struct atomic_file dat, gp;
    PB_TRY(open_pair(o, "bubble", &dat, &gp));
    struct sweep_point *pts = malloc((size_t)s->n_rows * sizeof *pts);
    if (!pts) {
        atomic_file_abort(&dat);
        atomic_file_abort(&gp);
        return pb_fail("out of host memory for the bubble plot");
    }
    int n = 0;
    for (int r = first; r < s->n_rows; r++) {
        if (!is_ok(s, r) || isnan(csv_get_num(s, r, "gpipe_bound")) || !same_workload(s, r, first) ||
            strcmp(csv_get(s, r, "stages"), csv_get(s, first, "stages")))
            continue;
        const char *list = csv_get(s, r, "bubble_per_stage");
        double sum = 0;
        int known = 0;
        for (int k = 0; k < list_len(list); k++) {
            double b = csv_list_num(list, k);
            if (!isnan(b)) sum += b, known++;
        }
        /* x: microbatches; measured mean bubble (NaN when busy time is unknown); bound. */
        pts[n++] = (struct sweep_point){csv_get_num(s, r, "microbatches"), known ? sum / known : NAN,
                                        csv_get_num(s, r, "gpipe_bound")};
    }
    qsort(pts, (size_t)n, sizeof *pts, cmp_point);
    fprintf(dat.f, "# microbatches measured_bubble gpipe_bound\n");
    for (int i = 0; i < n; i++) fprintf(dat.f, "%g %.6g %.6g\n", pts[i].x, pts[i].tokens_per_s, pts[i].p50);
    double mmax = n ? pts[n - 1].x : 1;
    free(pts);
    char title[256];
    const char *kind = csv_get_num(s, first, "predicted") == 1 ? "predicted" : "measured";
    snprintf(title, sizeof title, "Pipeline bubble, %s stages, batch %s x seq %s: %s vs GPipe bound (p-1)/(m+p-1)",
             csv_get(s, first, "stages"), csv_get(s, first, "batch"), csv_get(s, first, "seq"), kind);
    /* Numbers are written as numbers, never pasted from the file's text. */
    double stages = csv_get_num(s, first, "stages");
    fprintf(gp.f, "P = %.0f\nMMAX = %g\nKIND = ", isfinite(stages) ? stages : 0, mmax < 2 ? 2 : mmax);
    gp_string(gp.f, kind);
    fprintf(gp.f, "\nTITLE = ");
    gp_string(gp.f, title);
    fputc('\n', gp.f);
    return close_pair(o, "bubble", "bubble", &dat, &gp);
}

/* plan.csv (a --plan folder): parameter GiB and nominal work per GPU per strategy,
 * for the first workload in the file. */
static int plan(struct out *o, const char *dir)
{
    char path[4096];
    PB_TRY(path_join(path, sizeof path, dir, "plan.csv"));
    if (!exists(path)) return PB_OK;
    struct csv_table p;
    PB_TRY(csv_read_file(path, &p));
    char gpus[16][16];
    int n_gpus = 0, first = -1;
    for (int r = 0; r < p.n_rows; r++) {
        if (strcmp(csv_get(&p, r, "status"), "ok")) continue;
        if (first < 0) first = r;
        if (strcmp(csv_get(&p, r, "batch"), csv_get(&p, first, "batch")) ||
            strcmp(csv_get(&p, r, "seq"), csv_get(&p, first, "seq")))
            continue;
        int k = 0;
        while (k < n_gpus && strcmp(gpus[k], csv_get(&p, r, "gpu"))) k++;
        if (k == n_gpus && n_gpus < 16) snprintf(gpus[n_gpus++], sizeof gpus[0], "%s", csv_get(&p, r, "gpu"));
    }
    if (first < 0) {
        csv_table_free(&p);
        return PB_OK;
    }
    struct atomic_file dat, gp;
    if (open_pair(o, "plan", &dat, &gp) != PB_OK) {
        csv_table_free(&p);
        return PB_ERR;
    }
    /* Two blocks: parameter GiB, then nominal work ms; a row per strategy, a column per GPU. */
    for (int block = 0; block < 2; block++) {
        fprintf(dat.f, "%sstrategy", block ? "\n\n" : "");
        for (int g = 0; g < n_gpus; g++) fprintf(dat.f, " \"%s%s\"", strcmp(gpus[g], "cpu") ? "GPU " : "", gpus[g]);
        fputc('\n', dat.f);
        for (int r = 0; r < p.n_rows; r++) {
            int seen = 0;
            for (int q = 0; q < r && !seen; q++) seen = !strcmp(csv_get(&p, q, "strategy"), csv_get(&p, r, "strategy"));
            if (seen || strcmp(csv_get(&p, r, "status"), "ok")) continue;
            fprintf(dat.f, "%s", csv_get(&p, r, "strategy"));
            for (int g = 0; g < n_gpus; g++) {
                double v = 0;
                for (int q = r; q < p.n_rows; q++)
                    if (!strcmp(csv_get(&p, q, "strategy"), csv_get(&p, r, "strategy")) &&
                        !strcmp(csv_get(&p, q, "gpu"), gpus[g]) &&
                        !strcmp(csv_get(&p, q, "batch"), csv_get(&p, first, "batch")) &&
                        !strcmp(csv_get(&p, q, "seq"), csv_get(&p, first, "seq"))) {
                        double x = csv_get_num(&p, q, block ? "work_ms_nominal" : "param_bytes");
                        v = isnan(x) ? 0 : block ? x : x / (1024.0 * 1024 * 1024);
                        break;
                    }
                fprintf(dat.f, " %.6g", v);
            }
            fputc('\n', dat.f);
        }
    }
    char title[512];
    snprintf(title, sizeof title, "Plan: %s, batch %s x seq %s (no GPU run; work is the nominal roofline)",
             csv_get(&p, first, "model"), csv_get(&p, first, "batch"), csv_get(&p, first, "seq"));
    fprintf(gp.f, "COLS = %d\nTITLE = ", n_gpus);
    gp_string(gp.f, title);
    fputc('\n', gp.f);
    csv_table_free(&p);
    return close_pair(o, "plan", "plan", &dat, &gp);
}

int plot_data_write(const char *dir, int *n_plots)
{
    *n_plots = 0;
    struct out o = {0};
    PB_TRY(path_join(o.dir, sizeof o.dir, dir, "plot-data"));
    PB_TRY(make_dirs(o.dir));
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/plots.txt", o.dir);
    struct atomic_file manifest;
    PB_TRY(atomic_file_open(&manifest, path));
    o.manifest = manifest.f;
    struct csv_table s;
    int have_summary = 0, rc = PB_OK;
    char summary[4096];
    rc = path_join(summary, sizeof summary, dir, "summary.csv");
    if (rc == PB_OK && exists(summary)) {
        rc = csv_read_file(summary, &s);
        have_summary = rc == PB_OK;
    }
    if (rc == PB_OK) rc = timelines(&o, dir, have_summary ? &s : NULL);
    if (rc == PB_OK && have_summary) rc = utilisation(&o, &s);
    static const char *const axes[] = {"microbatches", "batch", "seq"};
    for (size_t a = 0; rc == PB_OK && have_summary && a < sizeof axes / sizeof axes[0]; a++) rc = sweep(&o, &s, axes[a]);
    if (rc == PB_OK && have_summary) rc = bubble(&o, &s);
    if (rc == PB_OK) rc = plan(&o, dir);
    if (have_summary) csv_table_free(&s);
    if (rc != PB_OK) {
        atomic_file_abort(&manifest);
        return PB_ERR;
    }
    PB_TRY(atomic_file_commit(&manifest));
    *n_plots = o.n_plots;
    if (!o.n_plots)
        return pb_fail("%s holds nothing to plot (no trace.json, summary.csv with ok rows, or plan.csv)", dir);
    return PB_OK;
}
