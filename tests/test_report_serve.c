/* report.html's serving section: a --serve run's page carries its table and its
 * latency against throughput picture; a sweep's page gains the section when its
 * folder holds serving results, and only then; a broken serve.csv is an error
 * naming the file, not a page with a hole. */
#include <stdlib.h>
#include <string.h>
#include "../base/atomic_file.h"
#include "../harness/report/report_html.h"
#include "../harness/report/report_serve.h"
#include "synthetic_run.h"
#include "test.h"

/* A --serve --simulate run of three strategies at two rates into dir. */
static int serve_into(char *dir, size_t len)
{
    char args[1024], out[65536];
    make_temp_dir(dir, len);
    snprintf(args, sizeof args,
             "--model models/llama-tiny.json --serve --simulate --gpus 2 --requests 10 --rate 40,inf "
             "--strategy single,naive,pipeline --prompt-len uniform:8-40 --output-len uniform:1-12 --max-batch 4 "
             "--slo ttft=50ms,tpot=5ms --out %s", dir);
    return run_bench(args, out, sizeof out);
}

TEST(test_report_serving_page_has_the_table_the_picture_and_the_answer)
{
    char dir[256];
    CHECK_EQ_INT(serve_into(dir, sizeof dir), 0);
    char *html = read_text_in(dir, "report.html");
    CHECK(html != NULL);
    if (!html) return;
    CHECK(!strncmp(html, "<!DOCTYPE html>", 15));
    CHECK(strstr(html, "<h2>Serving</h2>") && strstr(html, "<table id=\"serving\">"));
    CHECK_EQ_INT(count_occurrences(html, "<tr><td class=\"l\">"), 6);   /* 3 strategies x 2 rates */
    CHECK(strstr(html, ">single<") && strstr(html, ">naive<") && strstr(html, ">pipeline<"));
    CHECK(strstr(html, "<th>TTFT p99 ms</th>") && strstr(html, "<th>TPOT p99 ms</th>") &&
          strstr(html, "<th>goodput/s</th>"));
    CHECK_EQ_INT(count_occurrences(html, "<svg"), 1);                  /* serve.svg inline */
    CHECK(strstr(html, "TTFT p99 (ms, predicted)") && strstr(html, "predicted by the cost model"));
    CHECK(strstr(html, "<pre id=\"answer\">") && strstr(html, "serves best"));
    CHECK(!strstr(html, "http://") || !strstr(strstr(html, "http://"), "src="));   /* nothing fetched */
    CHECK(!strstr(html, "<script") && !strstr(html, "<img"));
    free(html);
}

/* A point that was not served shows its reason across the row. */
TEST(test_report_serving_section_marks_a_point_not_served)
{
    char dir[256], path[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/serve.csv", dir);
    CHECK_EQ_INT(atomic_write_text(path, "strategy,request_rate,status,reason,requests_per_s,ttft_p99_ms,"
                                         "utilisation_per_gpu,predicted\n"
                                         "naive,inf,ok,,12.5,30.25,0.5;,0\n"
                                         "tp,inf,failed,\"needs <2> GPUs\",,,,0\n"), PB_OK);
    CHECK_EQ_INT(report_write_serving(dir, "m", "bench --serve", NULL), PB_OK);
    char *html = read_text_in(dir, "report.html");
    CHECK(html != NULL);
    if (!html) return;
    CHECK(strstr(html, "<tr class=\"failed\">") && strstr(html, "not served: needs &lt;2&gt; GPUs"));
    CHECK(strstr(html, "every step measured on the GPUs"));   /* predicted = 0 */
    CHECK(strstr(html, "<td>12.5</td>") && strstr(html, "<td>30.25</td>"));
    CHECK(strstr(html, "50% &ndash;"));                       /* an unknown GPU is a dash, not 0% */
    CHECK(!strstr(html, "<pre id=\"answer\">"));
    CHECK(!strstr(html, "<svg"));                             /* no serve.svg, no picture */
    free(html);
}

TEST(test_report_sweep_page_has_a_serving_section_only_beside_serving_results)
{
    char dir[256];
    struct synthetic_run s;
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    CHECK_EQ_INT(report_write(&s.o, &s.env, s.r, s.n, s.traces, dir), PB_OK);
    char *html = read_text_in(dir, "report.html");
    CHECK(html && !strstr(html, "<h2>Serving</h2>"));
    free(html);
    CHECK_EQ_INT(serve_into(dir, sizeof dir), 0);   /* a new folder with serving results */
    CHECK_EQ_INT(report_write(&s.o, &s.env, s.r, s.n, s.traces, dir), PB_OK);
    html = read_text_in(dir, "report.html");
    CHECK(html && strstr(html, "<table id=\"summary\">") && strstr(html, "<table id=\"serving\">"));
    CHECK(html && count_occurrences(html, "<svg class=\"timeline\"") == 6);
    free(html);
    synthetic_run_free(&s);
}

TEST(test_report_serving_section_refuses_an_unreadable_serve_csv)
{
    char dir[256], path[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/serve.csv", dir);
    CHECK_EQ_INT(atomic_write_text(path, ""), PB_OK);   /* no header */
    CHECK_EQ_INT(report_write_serving(dir, "m", "bench --serve", NULL), PB_ERR);
    CHECK(strstr(pb_last_error(), "serve.csv") != NULL);
}
