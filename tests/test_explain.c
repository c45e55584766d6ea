/* --explain on the synthetic 2-GPU run: every sentence from the numbers, and
 * careful words where data is missing or predicted. */
#include <stdlib.h>
#include <string.h>
#include "../harness/report/explain.h"
#include "synthetic_run.h"
#include "test.h"

static char text[64 * 1024];

/* The synthetic run with the explanation of its first n points in `text`. */
static void explain_n(struct synthetic_run *s, int n)
{
    explain_text(&s->o, &s->env, s->r, n, text, sizeof text);
    if (getenv("PB_SHOW_EXPLAIN")) fputs(text, stdout);
    /* One line, so checks do not depend on where the text wraps. */
    for (char *c = text; *c; c++)
        if (*c == '\n') *c = ' ';
}

TEST(test_explain_says_naive_and_auto_are_the_same_split)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    explain_n(&s, s.n);
    CHECK(strstr(text, "naive and auto put every module that holds parameters on the same GPU: the same split"));
    CHECK(strstr(text, "GPU 0: embed, layers 0-2"));
    CHECK(strstr(text, "one GPU works while the other waits"));
    CHECK(strstr(text, "auto is 2.80 ms slower than naive"));
    CHECK(strstr(text, "Best for llama-tiny here on 2 GPUs: tp"));
    CHECK(strstr(text, "optimal (out of memory on GPU 1 (synthetic))"));
    CHECK(strstr(text, "GPipe bound (p-1)/(m+p-1) = 20%"));
    CHECK(strstr(text, "m=2 14") && strstr(text, "m=4 16982 tokens/s"));
    CHECK(!strstr(text, "predicted"));
    synthetic_run_free(&s);
}

TEST(test_explain_names_the_layers_that_moved)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    struct placement *a = s.r[2].placement;   /* auto: move layer 2 to GPU 1 */
    for (int i = 0; i < a->n_modules; i++)
        if (a->modules[i].kind == MODULE_LAYER && a->modules[i].layer == 2) a->device[i] = 1;
    explain_n(&s, s.n);
    CHECK(strstr(text, "differ in 1 module: model.layers.2 on GPU 0 with naive, on GPU 1 with auto"));
    CHECK(strstr(text, "Auto: GPU 0: embed, layers 0-1"));
    CHECK(strstr(text, "MiB of parameters)"));
    synthetic_run_free(&s);
}

TEST(test_explain_says_what_was_not_run_or_not_known)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    s.r[1].busy_known = 0;   /* naive without CUPTI */
    s.env.cupti_enabled = 0;
    snprintf(s.env.cupti_note, sizeof s.env.cupti_note, "--no-cupti");
    explain_n(&s, 2);        /* single and naive only */
    CHECK(strstr(text, "auto was not run"));
    CHECK(strstr(text, "CUPTI was off (--no-cupti)"));
    CHECK(strstr(text, "busy time is unknown"));
    CHECK(!strstr(text, "pipeline"));
    CHECK(!strstr(text, "tp ("));
    synthetic_run_free(&s);
}

TEST(test_explain_calls_cost_model_numbers_predicted)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    s.o.simulate = 1;
    explain_n(&s, s.n);
    CHECK(strstr(text, "predicted by the cost model"));
    CHECK(strstr(text, "naive: predicted p50"));
    CHECK(strstr(text, "predicted bubble"));
    synthetic_run_free(&s);
}

TEST(test_explain_writes_explain_txt)
{
    struct synthetic_run s;
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    CHECK_EQ_INT(explain_print(&s.o, &s.env, s.r, s.n, dir), 0);
    fclose(stdout);
    stdout = saved;
    snprintf(path, sizeof path, "%s/explain.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) fclose(f);
    synthetic_run_free(&s);
}

TEST(test_explain_says_when_logical_devices_share_one_gpu)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    for (int i = 0; i < s.n; i++) s.r[i].ordinal[1] = 0;   /* --devices 0,0 */
    s.r[3].p50_ms = s.r[4].p50_ms = s.r[1].p50_ms * 1.05;  /* the pipeline loses on one GPU */
    s.r[3].tokens_per_s = s.r[4].tokens_per_s = 1;
    s.r[5].ok = 0;                                         /* tp needs distinct GPUs */
    explain_n(&s, s.n);
    CHECK(strstr(text, "stages share 1 GPU (--devices), so overlapping them cannot add compute"));
    CHECK(strstr(text, "on 2 logical devices sharing 1 GPU"));
    synthetic_run_free(&s);
}

TEST(test_explain_says_why_each_gpu_was_idle_and_how_far_from_its_roofline)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    struct gpu_metrics *g = s.r[1].metrics.gpu;   /* naive */
    g[1].idle_ms = 5.0;
    g[1].idle_peer_wait_ms = 4.5;
    g[1].idle_host_ms = 0.25;
    g[1].idle_other_ms = 0.25;
    for (int d = 0; d < 2; d++) g[d].mbu = 0.4 + 0.1 * d, g[d].mfu = 0.05;
    explain_n(&s, 2);
    CHECK(strstr(text, "GPU 1 5.00 ms = 4.50 waiting on another GPU + 0.25 on the host (launch gaps) + 0.25 other"));
    CHECK(strstr(text, "memory bandwidth used (MBU) GPU 0 40%, GPU 1 50%; FLOPs (MFU) GPU 0 5%, GPU 1 5%"));
    synthetic_run_free(&s);
}

TEST(test_explain_says_equal_latencies_are_the_same)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    s.r[2].p50_ms = s.r[1].p50_ms * 1.003;   /* auto within 0.5% of naive */
    explain_n(&s, s.n);
    CHECK(strstr(text, "auto and naive take the same time") && strstr(text, "within 0.5%"));
    CHECK(!strstr(text, "ms faster than naive") && !strstr(text, "ms slower than naive"));
    s.r[2].p50_ms = s.r[1].p50_ms * 1.02;    /* 2%: a difference worth a number */
    explain_n(&s, s.n);
    CHECK(strstr(text, "auto is ") && strstr(text, "ms slower than naive"));
    synthetic_run_free(&s);
}

TEST(test_explain_says_a_decode_pipeline_reads_its_weights_once_per_microbatch)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    for (int i = 0; i < s.n; i++) s.r[i].decode_tokens = 16;
    s.r[3].p50_ms = s.r[4].p50_ms = s.r[1].p50_ms * 1.3;   /* generating, the pipeline loses */
    s.r[3].tokens_per_s = 1;
    s.r[4].tokens_per_s = 2;                               /* m=4 is the one explained */
    explain_n(&s, s.n);
    CHECK(strstr(text, "generating a token reads all of a stage's weights"));
    CHECK(strstr(text, "once per microbatch, 4 times per token, where naive reads them once"));
    CHECK(!strstr(text, "too small"));
    synthetic_run_free(&s);
}

TEST(test_explain_names_a_prefill_pipelines_smaller_kernels_when_it_loses)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    s.r[3].p50_ms = s.r[4].p50_ms = s.r[1].p50_ms * 1.1;
    s.r[3].tokens_per_s = 1;
    s.r[4].tokens_per_s = 2;
    explain_n(&s, s.n);
    CHECK(strstr(text, "each of the 4 microbatches has 1/4 of the rows"));
    CHECK(!strstr(text, "reads all of a stage's weights"));
    synthetic_run_free(&s);
}
