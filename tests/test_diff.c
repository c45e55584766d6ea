/* bench diff on folders the cost model writes: pairs by workload, says what took
 * longer and where the idle time moved, and refuses bad input with status 2. */
#include <stdlib.h>
#include "../base/check.h"
#include "../base/text_file.h"
#include "../harness/report/diff.h"
#include "../harness/run/simulate_run.h"
#include "test.h"

/* A --simulate folder of naive and pipeline (or only `strategy`) at batch 4 x 128 on 2 GPUs. */
static int simulated_folder(char *dir, size_t len, const char *strategy, int seq)
{
    static struct options o;
    memset(&o, 0, sizeof o);
    make_temp_dir(dir, len);
    o.model_path = "models/llama-2-7b.json";
    o.strategies[o.n_strategies++] = strategy ? strategy : "naive";
    if (!strategy) o.strategies[o.n_strategies++] = "pipeline";
    o.batches[0] = 4;
    o.n_batches = 1;
    o.seqs[0] = seq;
    o.n_seqs = 1;
    o.dtype = DTYPE_BF16;
    o.gpus = 2;
    o.simulate = 1;
    o.gpu_profile = "h200";
    o.out_dir = dir;
    struct model_spec m;
    PB_TRY(model_spec_load(o.model_path, &m));
    return run_simulated(&o, &m);
}

/* Run diff_main on the arguments; its output in *text (caller frees). */
static int diff(char **text, int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int rc = diff_main(argc, argv, out);
    fclose(out);
    *text = buf;
    return rc;
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

TEST(test_diff_of_two_strategies_shows_busy_by_step_kind_and_idle_by_cause)
{
    char dir[256];
    CHECK_EQ_INT(simulated_folder(dir, sizeof dir, NULL, 128), PB_OK);
    char *text;
    char *argv[] = {"diff", dir, "--strategies", "naive,pipeline"};
    CHECK_EQ_INT(diff(&text, 4, argv), 0);
    CHECK(strstr(text, "prefill naive batch 4 x seq 128"));
    CHECK(strstr(text, "against pipeline"));
    CHECK(strstr(text, "layers steps ms"));
    CHECK(strstr(text, "waiting on another GPU"));
    CHECK(strstr(text, "MBU"));
    /* The pipeline fills naive's wait on GPU 1: that is where the idle time moved. */
    CHECK(strstr(text, "Idle time moved most on GPU 1"));
    free(text);
    remove_dir(dir);
}

TEST(test_diff_of_two_folders_pairs_the_same_strategy_and_workload)
{
    char a[256], b[256];
    CHECK_EQ_INT(simulated_folder(a, sizeof a, NULL, 128), PB_OK);
    CHECK_EQ_INT(simulated_folder(b, sizeof b, "naive", 128), PB_OK);
    char *text;
    char *argv[] = {"diff", a, b};
    CHECK_EQ_INT(diff(&text, 3, argv), 0);
    CHECK(strstr(text, "naive batch 4 x seq 128"));
    CHECK(!strstr(text, "pipeline"));   /* only A has it */
    CHECK(strstr(text, "B is 0.000 ms slower than A"));   /* the model is deterministic */
    free(text);
    remove_dir(a);
    remove_dir(b);
}

TEST(test_diff_refuses_a_folder_without_summary_and_folders_with_nothing_in_common)
{
    char a[256], b[256];
    CHECK_EQ_INT(simulated_folder(a, sizeof a, "naive", 128), PB_OK);
    CHECK_EQ_INT(simulated_folder(b, sizeof b, "naive", 256), PB_OK);
    char *text;
    char *missing[] = {"diff", a, "/nonexistent-placebench-folder"};
    CHECK_EQ_INT(diff(&text, 3, missing), 2);
    CHECK(strstr(pb_last_error(), "nonexistent-placebench-folder/summary.json"));
    free(text);
    char *disjoint[] = {"diff", a, b};
    CHECK_EQ_INT(diff(&text, 3, disjoint), 2);
    CHECK(strstr(pb_last_error(), "no point in common"));
    free(text);
    char *absent[] = {"diff", a, "--strategies", "naive,tp"};
    CHECK_EQ_INT(diff(&text, 4, absent), 2);
    CHECK(strstr(pb_last_error(), "no workload has both naive"));
    free(text);
    char *one[] = {"diff", a, "--strategies", "naive"};
    CHECK_EQ_INT(diff(&text, 4, one), 2);
    free(text);
    char *bare[] = {"diff", a};
    CHECK_EQ_INT(diff(&text, 2, bare), 2);
    free(text);
    remove_dir(a);
    remove_dir(b);
}
