/* report.html's serving section and the page of a serving run (report_serve.h). */
#include "report_serve.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../base/atomic_file.h"
#include "../../base/csv_read.h"
#include "../../base/text_file.h"
#include "report_html.h"
#include "report_svg.h"

/* serve.csv's columns the table shows, and their headings. */
static const struct {
    const char *column, *heading, *fmt;
} serve_cells[] = {
    {"requests_per_s", "req/s", "%.4g"},         {"output_tokens_per_s", "tokens/s", "%.0f"},
    {"goodput_requests_per_s", "goodput/s", "%.4g"}, {"ttft_p50_ms", "TTFT p50 ms", "%.4g"},
    {"ttft_p90_ms", "TTFT p90 ms", "%.4g"},      {"ttft_p99_ms", "TTFT p99 ms", "%.4g"},
    {"tpot_p50_ms", "TPOT p50 ms", "%.4g"},      {"tpot_p99_ms", "TPOT p99 ms", "%.4g"},
    {"itl_p50_ms", "ITL p50 ms", "%.4g"},        {"itl_p99_ms", "ITL p99 ms", "%.4g"},
    {"e2e_p50_ms", "E2E p50 ms", "%.4g"},        {"e2e_p99_ms", "E2E p99 ms", "%.4g"},
    {"mean_decode_batch", "mean batch", "%.3g"}, {"refused", "refused", "%.0f"},
};

static void serve_num(FILE *f, double v, const char *fmt)
{
    fputs("<td>", f);
    if (isnan(v)) fputs("&ndash;", f);   /* unknown (or no --slo), never a made-up zero */
    else fprintf(f, fmt, v);
    fputs("</td>", f);
}

static void serve_text(FILE *f, const char *s)
{
    fputs("<td class=\"l\">", f);
    html_escape(f, s);
    fputs("</td>", f);
}

/* Utilisation per GPU: "0.51;0.49" as percentages, unknown ones as dashes. */
static void serve_util(FILE *f, const char *field)
{
    fputs("<td class=\"l\">", f);
    if (!field[0]) fputs("&ndash;", f);
    for (int d = 0; field[0]; d++) {
        double v = csv_list_num(field, d);
        if (isnan(v)) fputs(d ? " &ndash;" : "&ndash;", f);
        else fprintf(f, "%s%.0f%%", d ? " " : "", 100 * v);
        const char *semi = field;
        for (int k = 0; semi && k <= d; k++) semi = strchr(semi + (k > 0), ';');
        if (!semi) break;
    }
    fputs("</td>", f);
}

static void serve_table(FILE *f, const struct csv_table *t)
{
    fputs("<div class=\"wide\"><table id=\"serving\">\n<tr><th class=\"l\">strategy</th><th>rate req/s</th>"
          "<th class=\"l\">status</th>", f);
    for (size_t c = 0; c < sizeof serve_cells / sizeof serve_cells[0]; c++) fprintf(f, "<th>%s</th>", serve_cells[c].heading);
    fputs("<th class=\"l\">utilisation per GPU</th><th class=\"l\">placement</th></tr>\n", f);
    for (int i = 0; i < t->n_rows; i++) {
        int ok = !strcmp(csv_get(t, i, "status"), "ok");
        fputs(ok ? "<tr>" : "<tr class=\"failed\">", f);
        serve_text(f, csv_get(t, i, "strategy"));
        fputs("<td>", f);
        html_escape(f, csv_get(t, i, "request_rate"));
        fputs("</td>", f);
        if (!ok) {
            char why[1200];
            snprintf(why, sizeof why, "not served: %s", csv_get(t, i, "reason"));
            fprintf(f, "<td class=\"l\" colspan=\"%d\">", (int)(sizeof serve_cells / sizeof serve_cells[0]) + 3);
            html_escape(f, why);
            fputs("</td></tr>\n", f);
            continue;
        }
        serve_text(f, "ok");
        for (size_t c = 0; c < sizeof serve_cells / sizeof serve_cells[0]; c++)
            serve_num(f, csv_get_num(t, i, serve_cells[c].column), serve_cells[c].fmt);
        serve_util(f, csv_get(t, i, "utilisation_per_gpu"));
        serve_text(f, csv_get(t, i, "placement"));
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
}

static int file_in(const char *dir, const char *name, char *path, size_t len)
{
    if (path_join(path, len, dir, name) != PB_OK) return 0;
    return access(path, R_OK) == 0;
}

int report_has_serving(const char *dir)
{
    char path[4200];
    return dir && file_in(dir, "serve.csv", path, sizeof path);
}

int report_serving_section(FILE *f, const char *dir)
{
    char path[4200];
    if (!file_in(dir, "serve.csv", path, sizeof path)) return PB_OK;
    struct csv_table t;
    PB_TRY(csv_read_file(path, &t));
    int predicted = t.n_rows > 0 && csv_get_num(&t, 0, "predicted") == 1;
    fputs("<h2>Serving</h2>\n", f);
    fprintf(f, "<p class=\"muted\">A request stream per placement (bench --serve), %s: one row per strategy "
               "and offered rate (inf: all at once). TTFT: arrival to first token; TPOT: (last - first token) / "
               "(tokens - 1); ITL: every gap between tokens; E2E: arrival to last token; rates over first "
               "arrival to last finish (docs/METRICS.md, \"Serving\"). Files: serve.csv, serve.json, "
               "requests.csv.</p>\n",
            predicted ? "predicted by the cost model" : "every step measured on the GPUs");
    serve_table(f, &t);
    csv_table_free(&t);
    if (!file_in(dir, "serve.svg", path, sizeof path)) return PB_OK;
    char *svg = text_file_read(path);
    if (!svg) return pb_fail("%s: cannot read it for report.html", path);
    fputs("<h3>Latency against throughput: TTFT p99 and TPOT p99 against requests/s achieved</h3>\n", f);
    const char *start = strstr(svg, "<svg");   /* the picture, without any XML prologue */
    fputs(start ? start : svg, f);
    free(svg);
    return PB_OK;
}

int report_write_serving(const char *dir, const char *model, const char *command, const char *answer)
{
    char path[4200];
    PB_TRY(path_join(path, sizeof path, dir, "report.html"));
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    FILE *f = a.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>placebench serving: ", f);
    html_escape(f, model);
    fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>placebench serving: ", report_css());
    html_escape(f, model);
    fputs("</h1>\n<h2>Command</h2>\n<pre id=\"command\">", f);
    html_escape(f, command ? command : "");
    fputs("</pre>\n", f);
    if (answer) {
        fputs("<h2>The answer</h2>\n<pre id=\"answer\">", f);
        html_escape(f, answer);
        fputs("</pre>\n", f);
    }
    int rc = report_serving_section(f, dir);
    fputs("</body></html>\n", f);
    if (rc != PB_OK) {
        atomic_file_abort(&a);
        return rc;
    }
    return atomic_file_commit(&a);
}
