/* report.html from the synthetic 2-GPU run: self-contained, the expected
 * elements present, and (where Chromium is installed) rendered by a real browser
 * into a screenshot that is not blank. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../harness/report/report_html.h"
#include "synthetic_run.h"
#include "../base/text_file.h"
#include "test.h"


static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Write the synthetic report into a new folder; returns its text (caller frees). */
static char *make_report(char *dir, size_t len, int simulate)
{
    struct synthetic_run s;
    make_temp_dir(dir, len);
    if (synthetic_run_make(&s) != 0) return NULL;
    s.o.simulate = simulate;
    int rc = report_write(&s.o, &s.env, s.r, s.n, s.traces, dir);
    synthetic_run_free(&s);
    if (rc != 0) return NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/report.html", dir);
    return text_file_read(path);
}

TEST(test_report_html_has_tables_svg_and_every_strategy)
{
    char dir[256];
    char *html = make_report(dir, sizeof dir, 0);
    CHECK(html != NULL);
    if (!html) return;
    CHECK(!strncmp(html, "<!DOCTYPE html>", 15));
    CHECK(strstr(html, "<table id=\"summary\">") && strstr(html, "<table id=\"environment\">"));
    CHECK_EQ_INT(count_occurrences(html, "<svg class=\"timeline\""), 6);   /* every ok point with a trace */
    CHECK_EQ_INT(count_occurrences(html, "<svg class=\"utilisation\""), 1);
    static const char *const names[] = {">single<", ">naive<", ">auto<", ">pipeline<", ">tp<", ">optimal<"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) CHECK(strstr(html, names[i]));
    CHECK(strstr(html, "failed: out of memory on GPU 1 (synthetic)"));
    CHECK(strstr(html, "bench --model llama-tiny --gpus 2"));          /* the command */
    CHECK(strstr(html, "<pre id=\"answer\">") && strstr(html, "Placement: naive and auto"));   /* the answer */
    CHECK(strstr(html, "NVIDIA H200 &lt;test &amp; &quot;quotes&quot;&gt;"));   /* escaped */
    CHECK(strstr(html, ">mb3</text>"));                                  /* microbatch labels */
    CHECK(!strstr(html, "predicted"));
    free(html);
}

TEST(test_report_html_is_self_contained)
{
    char dir[256];
    char *html = make_report(dir, sizeof dir, 0);
    CHECK(html != NULL);
    if (!html) return;
    /* Nothing to fetch: no scripts, links, images, imports or URLs of any kind. */
    CHECK(!strstr(html, "<script"));
    CHECK(!strstr(html, "<link"));
    CHECK(!strstr(html, "<img"));
    CHECK(!strstr(html, "src="));
    CHECK(!strstr(html, "url("));
    CHECK(!strstr(html, "@import"));
    CHECK(!strstr(html, "http:") && !strstr(html, "https:"));
    free(html);
}

TEST(test_report_html_marks_predicted_runs)
{
    char dir[256];
    char *html = make_report(dir, sizeof dir, 1);
    CHECK(html && strstr(html, "Predicted by the cost model") && strstr(html, "predicted latency ms"));
    /* One deterministic iteration: one latency column, not p50 = p90 = p99. */
    CHECK(html && !strstr(html, "p90 ms") && !strstr(html, "p99 ms"));
    free(html);
    html = make_report(dir, sizeof dir, 0);
    CHECK(html && strstr(html, "p50 ms") && strstr(html, "p90 ms") && strstr(html, "p99 ms"));
    /* The wide table scrolls inside the page instead of running off it. */
    CHECK(html && strstr(html, "<div class=\"wide\"><table id=\"summary\">") && strstr(html, "overflow-x:auto"));
    free(html);
}

/* Headless Chromium from Debian: the DOM it builds has the elements, and its
 * screenshot of the report is far from a blank page's. */
TEST(test_report_html_renders_in_chromium)
{
    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        printf("  (chromium not installed: only the DOM-independent report checks ran; "
               "apt-get install chromium to render report.html in a browser)\n");
        return;
    }
    char dir[256], cmd[2048], path[512], shot[512], blank_html[512], blank_shot[512];
    char *html = make_report(dir, sizeof dir, 0);
    CHECK(html != NULL);
    free(html);
    snprintf(path, sizeof path, "%s/report.html", dir);
    snprintf(shot, sizeof shot, "%s/report.png", dir);
    snprintf(blank_html, sizeof blank_html, "%s/blank.html", dir);
    snprintf(blank_shot, sizeof blank_shot, "%s/blank.png", dir);
    FILE *f = fopen(blank_html, "w");
    if (f) {
        fputs("<!DOCTYPE html><html><body></body></html>\n", f);
        fclose(f);
    }
    const char *flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,900";
    snprintf(cmd, sizeof cmd, "timeout 120 chromium %s --dump-dom file://%s > %s/dom.html 2>/dev/null", flags, path, dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/dom.html", dir);
    char *dom = text_file_read(cmd);
    CHECK(dom && strstr(dom, "<table id=\"summary\">") && strstr(dom, "<svg class=\"timeline\"") &&
          strstr(dom, "pipeline") && strstr(dom, "<rect"));
    free(dom);
    snprintf(cmd, sizeof cmd, "timeout 120 chromium %s --screenshot=%s file://%s >/dev/null 2>&1", flags, shot, path);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "timeout 120 chromium %s --screenshot=%s file://%s >/dev/null 2>&1", flags, blank_shot,
             blank_html);
    CHECK_EQ_INT(system(cmd), 0);
    long page = file_size(shot), blank = file_size(blank_shot);
    /* PNG compresses a single colour to almost nothing; text, tables and SVG do not. */
    CHECK(blank > 0 && page > 4 * blank && page > 30000);
    if (!(page > 4 * blank)) fprintf(stderr, "  screenshot %ld bytes, blank page %ld bytes\n", page, blank);
}

TEST(test_report_html_lists_idle_by_cause_and_mbu_per_gpu)
{
    struct synthetic_run s;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    struct gpu_metrics *g = &s.r[1].metrics.gpu[1];   /* naive, GPU 1 */
    g->idle_peer_wait_ms = 4.125;
    g->idle_host_ms = 0.25;
    g->idle_other_ms = 0.5;
    g->mbu = 0.42;
    CHECK_EQ_INT(report_write(&s.o, &s.env, s.r, s.n, s.traces, dir), 0);
    synthetic_run_free(&s);
    char path[512];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = text_file_read(path);
    CHECK(html && strstr(html, "<table id=\"idle\">"));
    CHECK(html && strstr(html, "<td>4.125</td><td>0.250</td><td>0.500</td><td>42%</td>"));
    CHECK(html && strstr(html, "waiting on another GPU ms"));
    free(html);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CHECK(system(path) == 0);
}
