/* The plot data converter and scripts/plot.sh on a synthetic results folder. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../base/csv_read.h"
#include "../harness/report/plot_data.h"
#include "../harness/report/plots.h"
#include "../harness/report/timeline.h"
#include "../harness/report/trace_read.h"
#include "synthetic_run.h"
#include "test.h"

static int file_size(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (int)st.st_size : -1;
}

static char *slurp(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = 0;
    fclose(f);
    return s;
}

TEST(test_csv_reader_handles_quotes_commas_and_crlf)
{
    struct csv_table t;
    CHECK_EQ_INT(csv_read_text("a,b,c\r\n1,\"x, \"\"y\"\"\",3\r\n4,5\r\n", &t), 0);
    CHECK_EQ_INT(t.n_cols, 3);
    CHECK_EQ_INT(t.n_rows, 2);
    CHECK(!strcmp(csv_get(&t, 0, "b"), "x, \"y\""));
    CHECK(!strcmp(csv_get(&t, 1, "c"), ""));
    CHECK(isnan(csv_get_num(&t, 1, "c")));
    CHECK_NEAR(csv_get_num(&t, 1, "a"), 4, 0);
    CHECK_NEAR(csv_list_num("0.5;0.25", 1), 0.25, 0);
    CHECK(isnan(csv_list_num("0.5;", 1)));
    csv_table_free(&t);
}

TEST(test_record_microbatch_reads_names)
{
    CHECK_EQ_INT(record_microbatch("layers 0-15 mb3"), 3);
    CHECK_EQ_INT(record_microbatch("microbatch 12 stage 1"), 12);
    CHECK_EQ_INT(record_microbatch("ampere_bf16_gemm"), -1);
    CHECK_EQ_INT(record_microbatch("void fmb7()"), -1);
}

TEST(test_trace_json_reads_back_into_points_and_timelines)
{
    struct synthetic_run s;
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    CHECK_EQ_INT(synthetic_run_write(&s, dir), 0);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    struct trace_point *pts;
    int n, predicted;
    CHECK_EQ_INT(trace_json_read(path, &pts, &n, &predicted), 0);
    CHECK_EQ_INT(n, 6);   /* the failed point has no trace */
    CHECK(!strcmp(pts[3].strategy, "pipeline") && !strcmp(pts[4].strategy, "pipeline"));
    /* The metrics of the read-back trace equal those of the original. */
    struct iteration_metrics m;
    CHECK_EQ_INT(metrics_mean(&pts[1].t, 3, &m), 0);
    CHECK_NEAR(m.gpu[0].utilisation, s.r[1].metrics.gpu[0].utilisation, 1e-6);
    CHECK_NEAR(m.gpu[1].copy_ms, s.r[1].metrics.gpu[1].copy_ms, 1e-6);
    struct timeline tl;
    CHECK_EQ_INT(timeline_build(&pts[5].t, -1, &tl), 0);   /* tp: NCCL recognised by name */
    int comm = 0;
    for (int i = 0; i < tl.n; i++) comm += tl.box[i].kind == BOX_COMM;
    CHECK_EQ_INT(comm, 24);
    CHECK_EQ_INT(tl.n_lanes, 2);
    timeline_free(&tl);
    CHECK_EQ_INT(timeline_build(&pts[4].t, -1, &tl), 0);   /* pipeline: lanes and microbatches */
    CHECK_EQ_INT(tl.n_lanes, 3);                          /* GPU 0 s0, GPU 1 s0, GPU 1 s1 */
    CHECK_EQ_INT(tl.lane_device[2], 1);
    CHECK_EQ_INT(tl.lane_stream[2], 1);
    CHECK_EQ_INT(tl.iteration, 1);                        /* the median window */
    int mb3 = 0;
    for (int i = 0; i < tl.n; i++) mb3 += tl.box[i].microbatch == 3;
    CHECK_EQ_INT(mb3, 3);
    timeline_free(&tl);
    trace_points_free(pts, n);
    synthetic_run_free(&s);
}

TEST(test_plot_data_lists_every_picture)
{
    struct synthetic_run s;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    CHECK_EQ_INT(synthetic_run_write(&s, dir), 0);
    int n = 0;
    CHECK_EQ_INT(plot_data_write(dir, &n), 0);
    /* 6 timelines, 1 utilisation (one workload), the microbatch sweep, the bubble. */
    CHECK_EQ_INT(n, 9);
    char *manifest = slurp(dir, "plot-data/plots.txt");
    CHECK(manifest && strstr(manifest, "timeline timeline-pipeline-b8-s128-m4\n"));
    CHECK(manifest && strstr(manifest, "sweep sweep-microbatches\n"));
    CHECK(manifest && !strstr(manifest, "sweep-batch"));   /* batch does not vary */
    CHECK(manifest && strstr(manifest, "bubble bubble\n"));
    char *bubble = slurp(dir, "plot-data/bubble.dat");
    CHECK(bubble && strstr(bubble, "\n4 ") && strstr(bubble, " 0.2\n"));   /* m = 4: bound 0.2 */
    char *meta = slurp(dir, "plot-data/timeline-pipeline-b8-s128-m4.gp");
    CHECK(meta && strstr(meta, "batch 8 x seq 128, 4 microbatches") && strstr(meta, "'GPU 1 stream 1' 2"));
    char *util = slurp(dir, "plot-data/util-b8-s128.gp");
    CHECK(util && strstr(util, "BARS = 11"));   /* 1 + 2 x 5 GPUs; the failed point has none */
    free(manifest);
    free(bubble);
    free(meta);
    free(util);
    synthetic_run_free(&s);
}

TEST(test_plot_data_fails_clearly_on_an_empty_folder)
{
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    int n = -1;
    CHECK_EQ_INT(plot_data_write(dir, &n), -1);
    CHECK_EQ_INT(n, 0);
}

TEST(test_plot_sh_draws_png_and_svg_when_gnuplot_is_installed)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("  (gnuplot not installed: scripts/plot.sh not exercised; apt-get install gnuplot-nox)\n");
        return;
    }
    struct synthetic_run s;
    char dir[256], cmd[1024];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    CHECK_EQ_INT(synthetic_run_write(&s, dir), 0);
    int n;
    CHECK_EQ_INT(plot_data_write(dir, &n), 0);
    snprintf(cmd, sizeof cmd, "PLACEBENCH_PLOT_DATA_READY=1 bash scripts/plot.sh %s >/dev/null", dir);
    CHECK_EQ_INT(system(cmd), 0);
    static const char *const names[] = {"timeline-naive-b8-s128", "timeline-pipeline-b8-s128-m4", "timeline-tp-b8-s128", "util-b8-s128",
                                        "sweep-microbatches", "bubble"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char png[128], svg[128];
        snprintf(png, sizeof png, "%s.png", names[i]);
        snprintf(svg, sizeof svg, "%s.svg", names[i]);
        /* A drawn picture, not an empty canvas: more than a few KiB. */
        CHECK(file_size(dir, png) > 5000);
        CHECK(file_size(dir, svg) > 2000);
        if (file_size(dir, png) <= 5000) fprintf(stderr, "  %s/%s missing or empty\n", dir, png);
    }
    char *svg = slurp(dir, "timeline-pipeline-b8-s128-m4.svg");
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "mb3"));
    free(svg);
    synthetic_run_free(&s);
}

TEST(test_plots_write_runs_the_script_or_says_how_to_install_gnuplot)
{
    struct synthetic_run s;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    CHECK_EQ_INT(synthetic_run_write(&s, dir), 0);
    synthetic_run_free(&s);
    /* No gnuplot on PATH: data written, a message, and success (the run itself is fine). */
    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", dir, 1);
    CHECK_EQ_INT(plots_write(dir), 0);
    setenv("PATH", saved, 1);
    free(saved);
    CHECK(file_size(dir, "plot-data/plots.txt") > 0);
    CHECK_EQ_INT(file_size(dir, "timeline-naive-b8-s128.png"), -1);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) return;
    char script[4096];
    CHECK_EQ_INT(plots_find_script(script, sizeof script), 0);   /* beside build/, i.e. scripts/ */
    fflush(stdout);
    CHECK_EQ_INT(plots_write(dir), 0);
    CHECK(file_size(dir, "timeline-naive-b8-s128.png") > 5000);
    CHECK(file_size(dir, "util-b8-s128.svg") > 2000);
}

TEST(test_plot_of_a_plan_folder_draws_parameters_per_gpu)
{
    char dir[256], args[512], out[8192];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model models/llama-tiny.json --gpus 2 --batch 4 --seq 64 --plan --out %s", dir);
    if (run_bench(args, out, sizeof out) != 0) {
        printf("  (build/bench --plan unavailable: plan plot not exercised)\n");
        return;
    }
    int n = 0;
    CHECK_EQ_INT(plot_data_write(dir, &n), 0);
    char *manifest = slurp(dir, "plot-data/plots.txt");
    CHECK(manifest && strstr(manifest, "plan plan\n"));
    char *dat = slurp(dir, "plot-data/plan.dat");
    CHECK(dat && strstr(dat, "\"GPU 0\" \"GPU 1\"") && strstr(dat, "\nnaive "));
    free(manifest);
    free(dat);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "PLACEBENCH_PLOT_DATA_READY=1 bash scripts/plot.sh %s >/dev/null", dir);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK(file_size(dir, "plan.png") > 5000);
}

/* A predicted run's pictures say "predicted"; a knob that differs only between
 * strategies (single's 1 microbatch, pipeline's 4) is no sweep and gets no picture. */
TEST(test_plots_of_a_predicted_run_without_a_sweep)
{
    char dir[256], args[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy single,pipeline,tp --simulate --gpus 2 --batch 8 "
             "--seq 64 --microbatches 4 --out %s", dir);
    static char out[65536];
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    int n = 0;
    CHECK_EQ_INT(plot_data_write(dir, &n), 0);
    char *manifest = slurp(dir, "plot-data/plots.txt");
    CHECK(manifest && !strstr(manifest, "sweep-microbatches"));
    CHECK(manifest && strstr(manifest, "timeline timeline-pipeline-b8-s64-m4\n"));
    char *bubble = slurp(dir, "plot-data/bubble.gp");
    CHECK(bubble && strstr(bubble, "KIND = 'predicted'") && !strstr(bubble, "measured"));
    /* tp's all-reduces are NCCL kernels in the timeline's data, drawn in the comm colour. */
    char *tp = slurp(dir, "plot-data/timeline-tp-b8-s64.dat");
    CHECK(tp && strstr(tp, " communication\n"));
    free(manifest);
    free(bubble);
    free(tp);
}
