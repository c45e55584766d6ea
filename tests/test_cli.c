/* bench's command line, driven as a user would: help, exit statuses, messages
 * that name the problem, and --plan's files. Needs build/bench (make test builds it). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include "../base/check.h"
#include "../base/csv_read.h"
#include "../base/text_file.h"
#include "../harness/run/plan.h"
#include "test.h"

static char out[65536];

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

TEST(test_help_lists_options_and_examples)
{
    CHECK_EQ_INT(run_bench("--help", out, sizeof out), 0);
    CHECK(strstr(out, "--strategy") && strstr(out, "--max-memory") && strstr(out, "Examples"));
}

TEST(test_unknown_strategy_exits_2_listing_valid_names)
{
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --strategy fancy --plan", out, sizeof out), 2);
    CHECK(strstr(out, "\"fancy\"") && strstr(out, "single, naive, auto, optimal, pipeline, tp"));
}

TEST(test_unknown_dtype_and_bad_numbers_exit_2)
{
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --dtype int4 --plan", out, sizeof out), 2);
    CHECK(strstr(out, "bf16, fp16, fp32") != NULL);
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --batch 8,x --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--batch") != NULL);
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --gpus -1 --plan", out, sizeof out), 2);
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --max-memory 0=lots --plan", out, sizeof out), 2);
    CHECK(strstr(out, "0=lots") != NULL);
    CHECK_EQ_INT(run_bench("--model models/llama-tiny.json --frobnicate", out, sizeof out), 2);
    CHECK_EQ_INT(run_bench("--plan", out, sizeof out), 2);
    CHECK(strstr(out, "--model") != NULL);
}

TEST(test_malformed_config_exits_2_naming_the_file)
{
    char dir[64], cmd[256];
    make_temp_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "%s/bad.json", dir);
    FILE *f = fopen(cmd, "w");
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "--model %s/bad.json --plan --out %s/r", dir, dir);
    CHECK_EQ_INT(run_bench(cmd, out, sizeof out), 2);
    CHECK(strstr(out, "bad.json") && strstr(out, "malformed JSON"));
}

TEST(test_plan_writes_json_and_csv_with_hf_device_maps)
{
    char dir[64], args[256], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--strategy single,naive,auto,optimal,pipeline,tp --model models/llama-2-7b.json "
             "--gpus 2 --batch 8 --seq 512 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    CHECK(strstr(out, "GPU 1") && strstr(out, "layers 16-31"));
    snprintf(path, sizeof path, "%s/plan.json", dir);
    cJSON *root = read_json(path);
    CHECK(root != NULL);
    if (!root) return;
    cJSON *arr = cJSON_GetObjectItem(root, "strategies");
    CHECK_EQ_INT(cJSON_GetArraySize(arr), 6);
    if (cJSON_GetArraySize(arr) != 6) return;
    cJSON *naive = cJSON_GetArrayItem(arr, 1);
    cJSON *map = cJSON_GetObjectItem(naive, "device_map");
    CHECK_EQ_INT(cJSON_GetObjectItem(map, "model.layers.15")->valueint, 0);
    CHECK_EQ_INT(cJSON_GetObjectItem(map, "model.layers.16")->valueint, 1);
    CHECK_EQ_INT(cJSON_GetObjectItem(map, "lm_head")->valueint, 1);
    /* every device_map is one from_pretrained(device_map=...) takes: a GPU index or "cpu" */
    for (int i = 0; i < 5; i++) {
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "device_map"))
            CHECK(cJSON_IsNumber(v) || (cJSON_IsString(v) && !strcmp(v->valuestring, "cpu")));
    }
    /* tp: no device_map (transformers refuses it beside tp_plan), the plan in transformers' form */
    cJSON *tp = cJSON_GetArrayItem(arr, 5);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(tp, "device_map")));
    cJSON *tp_plan = cJSON_GetObjectItem(tp, "tp_plan");
    const cJSON *q = cJSON_GetObjectItem(tp_plan, "model.layers.*.self_attn.q_proj");
    const cJSON *down = cJSON_GetObjectItem(tp_plan, "model.layers.*.mlp.down_proj");
    const cJSON *head = cJSON_GetObjectItem(tp_plan, "lm_head");
    CHECK(cJSON_IsString(q) && !strcmp(q->valuestring, "colwise"));
    CHECK(cJSON_IsString(down) && !strcmp(down->valuestring, "rowwise"));
    CHECK(cJSON_IsString(head) && !strcmp(head->valuestring, "colwise_gather_output"));
    CHECK_EQ_INT(cJSON_GetArraySize(tp_plan), 8);
    CHECK_EQ_INT(cJSON_GetObjectItem(tp, "tp_size")->valueint, 2);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "tp_plan") == NULL);
    cJSON *sched = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 4), "schedule");
    CHECK_EQ_INT(cJSON_GetObjectItem(sched, "microbatches")->valueint, 4);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/plan.csv", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        char line[512];
        CHECK(fgets(line, sizeof line, f) && !strncmp(line, "model,strategy,batch,seq,status", 31));
        CHECK(strstr(line, "\r\n") != NULL);
        fclose(f);
    }
    /* byte and FLOP counts in full: 13476831232 never becomes 1.34768e+10 */
    char *csv = text_file_read(path);
    CHECK(csv && !strstr(csv, "e+") && strstr(csv, ",13476831232,"));
    free(csv);
    CHECK_EQ_INT(leftover_temporaries(dir), 0);
}

TEST(test_plan_records_impossible_strategy_and_exits_1)
{
    char dir[64], args[256], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--strategy naive,tp,optimal --model models/llama-tiny.json --gpus 8 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 1);
    CHECK(strstr(out, "ZeroDivisionError") != NULL);
    snprintf(path, sizeof path, "%s/plan.json", dir);
    cJSON *root = read_json(path);
    CHECK(root != NULL);
    if (!root) return;
    cJSON *naive = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "strategies"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(naive, "status")->valuestring, "failed"));
    cJSON_Delete(root);
}

TEST(test_model_name_resolves_under_models)
{
    char dir[64], args[200];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy single --gpus 1 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
}

TEST(test_plan_sweeps_batches_and_microbatches)
{
    char dir[64], args[256], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy naive,pipeline --gpus 2 --batch 4,8 "
             "--microbatches 2,4 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    snprintf(path, sizeof path, "%s/plan.json", dir);
    cJSON *root = read_json(path);
    /* per batch: naive once, pipeline once per microbatch count */
    CHECK(root && cJSON_GetArraySize(cJSON_GetObjectItem(root, "strategies")) == 6);
    cJSON_Delete(root);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

TEST(test_simulated_sweep_repeats_only_the_pipeline_per_microbatch_count)
{
    char dir[64], args[256], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy single,pipeline --simulate --gpu-profile h100 "
             "--gpus 2 --batch 8 --seq 64 --microbatches 2,4 --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    CHECK_EQ_INT(count_lines(path), 1 + 3);   /* header, single, pipeline m=2, pipeline m=4 */
}

TEST(test_microbatches_zero_means_the_default)
{
    char dir[64], args[200];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy pipeline --gpus 2 --microbatches 0,4 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    CHECK(strstr(out, "4 microbatches") != NULL);
    CHECK_EQ_INT(run_bench("--model llama-tiny --microbatches -1 --plan", out, sizeof out), 2);
}

/* bench ARGS --out DIR, DIR a fresh folder; its exit status, and path = DIR/file. */
static int bench_into(const char *args, const char *file, char *path, size_t len)
{
    char dir[64], cmd[700];
    make_temp_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "%s --out %s", args, dir);
    snprintf(path, len, "%s/%s", dir, file);
    return run_bench(cmd, out, sizeof out);
}

/* bench ARGS --plan into a fresh folder: its plan.json, or NULL if bench failed. */
static cJSON *plan_json_of(const char *args)
{
    char cmd[600], path[128];
    snprintf(cmd, sizeof cmd, "%s --plan", args);
    return bench_into(cmd, "plan.json", path, sizeof path) == 0 ? read_json(path) : NULL;
}

/* --plan's ms* are priced on a named device profile, and the table says which. */
static double plan_gpu0_ms(const char *profile, char *name, size_t len)
{
    char args[300];
    snprintf(args, sizeof args, "--model llama-2-7b --strategy single --gpus 1 %s%s",
             profile ? "--gpu-profile " : "", profile ? profile : "");
    cJSON *root = plan_json_of(args);
    const cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "device_profile"), "name");
    snprintf(name, len, "%s", cJSON_IsString(n) ? n->valuestring : "");
    const cJSON *gpu0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "strategies"), 0), "devices"), 0);
    double ms = cJSON_GetObjectItem(gpu0, "work_ms_nominal") ? cJSON_GetObjectItem(gpu0, "work_ms_nominal")->valuedouble : -1;
    cJSON_Delete(root);
    return ms;
}

TEST(test_plan_prices_work_on_a_named_device_profile)
{
    char name[64];
    double h100 = plan_gpu0_ms("h100", name, sizeof name);
    CHECK(strstr(out, "device profile h100 (") && strstr(out, "--gpu-profile"));
    CHECK(!strcmp(name, "h100"));
    double l40s = plan_gpu0_ms("l40s", name, sizeof name);
    CHECK(!strcmp(name, "l40s"));
    CHECK(h100 > 0 && l40s > 1.5 * h100);   /* an L40S has well under half an H100's bf16 rate */
    plan_gpu0_ms(NULL, name, sizeof name);
    CHECK(strstr(out, "*ms: roofline time") && strstr(out, "device profile "));
}

TEST(test_plan_profile_is_the_gpus_own_else_h200)
{
    struct options o;
    memset(&o, 0, sizeof o);
    const char *why;
    CHECK(!strcmp(plan_profile_name(&o, "NVIDIA H100 80GB HBM3", &why), "h100"));
    CHECK(!strcmp(why, "the GPU found here"));
    CHECK(!strcmp(plan_profile_name(&o, NULL, &why), "h200"));
    CHECK(!strcmp(why, "no GPU found here"));
    CHECK(!strcmp(plan_profile_name(&o, "Tesla V100-SXM2-32GB", &why), "h200"));
    o.gpu_profile = "a100";
    CHECK(!strcmp(plan_profile_name(&o, "NVIDIA H100 80GB HBM3", &why), "a100"));
    CHECK(!strcmp(why, "--gpu-profile"));
}

TEST(test_tp_and_virtual_stages_reach_hybrid_and_pipeline)
{
    char dir[64], args[300], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "-m models/llama-2-7b.json -s hybrid --tp 2 --gpus 4 --simulate --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    CHECK_EQ_INT(count_lines(path), 1 + 1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -q 'hybrid,prefill,8,512,0,4,.*tp x2 | 0-1: embed, layers 0-15' %s", path);
    CHECK(system(cmd) == 0);
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "-m llama-2-7b -s pipeline,hybrid --virtual-stages 2 --gpus 4 --plan --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    CHECK(strstr(out, "GPU 0 ") && strstr(out, "embed, layers 0-3, layers 16-19"));
    CHECK(strstr(out, "1/2 of embed, layers 0-7, layers 16-23"));
    CHECK_EQ_INT(run_bench("-m llama-2-7b -s hybrid --tp 0 --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--tp") != NULL);
    CHECK_EQ_INT(run_bench("-m llama-2-7b -s hybrid --tp 3 --gpus 4 --plan", out, sizeof out), 1);
    CHECK(strstr(out, "--tp 3 does not divide --gpus 4") != NULL);
}

TEST(test_profile_detail_takes_kernel_or_step_and_help_and_diff_say_so)
{
    CHECK_EQ_INT(run_bench("--model models/llama-2-7b.json --profile-detail frame --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--profile-detail") && strstr(out, "\"frame\" is not kernel or step"));
    CHECK_EQ_INT(run_bench("--help", out, sizeof out), 0);
    CHECK(strstr(out, "--profile-detail D") && strstr(out, "bench diff A B"));
    CHECK_EQ_INT(run_bench("diff /nonexistent-placebench-a /nonexistent-placebench-b", out, sizeof out), 2);
    CHECK(strstr(out, "nonexistent-placebench-a/summary.json"));
    CHECK_EQ_INT(run_bench("diff", out, sizeof out), 2);
    CHECK(strstr(out, "usage: bench diff"));
}

TEST(test_simulated_run_records_the_devices_it_was_given)
{
    char path[128], cmd[300];
    CHECK_EQ_INT(bench_into("--model llama-tiny --strategy naive --gpus 2 --devices 0,0 --simulate --gpu-profile h100 "
                            "--batch 2 --seq 16", "summary.csv", path, sizeof path), 0);
    snprintf(cmd, sizeof cmd, "grep -q '^naive,prefill,2,16,0,1,0;0,ok' %s", path);
    CHECK(system(cmd) == 0);   /* logical devices 0 and 1 both on GPU 0, as a measured run records them */
}

TEST(test_hybrid_plan_has_no_device_map_and_names_each_modules_tp_group)
{
    cJSON *root = plan_json_of("-m llama-2-7b -s hybrid --tp 2 --gpus 4");
    CHECK(root != NULL);
    cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "strategies"), 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(h, "device_map")));
    CHECK(cJSON_GetObjectItem(h, "tp_size") && cJSON_GetObjectItem(h, "tp_size")->valueint == 2);
    const cJSON *head = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "tp_group_devices"), "lm_head");
    CHECK(cJSON_GetArraySize(head) == 2 && cJSON_GetArrayItem(head, 0)->valueint == 2 &&
          cJSON_GetArrayItem(head, 1)->valueint == 3);
    cJSON_Delete(root);
}

/* Counts in every CSV with all their digits: llama-tiny's KV cache holds tens of
 * millions of tokens on an H200, which "%.6g" wrote as 4.90708e+07. */
TEST(test_serve_csv_writes_counts_as_integers)
{
    char path[128];
    CHECK_EQ_INT(bench_into("--model llama-tiny --serve --simulate --rate inf --strategy single --gpus 1", "serve.csv",
                            path, sizeof path), 0);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), 0);
    const char *kv = csv_get(&t, 0, "kv_capacity_tokens");
    CHECK(kv && strlen(kv) >= 7 && strspn(kv, "0123456789") == strlen(kv));
    csv_table_free(&t);
}

/* A pipeline point whose microbatches do not split the batch is skipped with the count asked
 * and why; the sweep still succeeds while another point ran, and fails when none did. */
TEST(test_microbatches_that_do_not_divide_the_batch_are_skipped_not_failed)
{
    char path[128];
    CHECK_EQ_INT(bench_into("--model llama-tiny --strategy single,pipeline --simulate --gpus 2 --batch 8 --seq 64 "
                            "--microbatches 3,4", "summary.json", path, sizeof path), 0);
    CHECK(strstr(out, "skipped: batch 8 cannot be split into 3 equal microbatches") != NULL);
    cJSON *root = read_json(path);
    const cJSON *pts = cJSON_GetObjectItem(root, "results");
    int skipped = 0, ok = 0;
    for (int i = 0; i < cJSON_GetArraySize(pts); i++) {
        const cJSON *p = cJSON_GetArrayItem(pts, i);
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(p, "status"));
        if (!strcmp(status, "skipped")) {
            skipped++;
            CHECK_EQ_INT(cJSON_GetObjectItem(p, "microbatches")->valueint, 3);
            CHECK(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(p, "reason")), "divisor of 8") != NULL);
        }
        ok += !strcmp(status, "ok");
    }
    CHECK_EQ_INT(skipped, 1);
    CHECK_EQ_INT(ok, 2);
    cJSON_Delete(root);
    CHECK_EQ_INT(bench_into("--model llama-tiny --strategy pipeline --simulate --gpus 2 --batch 8 --seq 64 "
                            "--microbatches 3", "summary.csv", path, sizeof path), 1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -q ',skipped,' %s", path);
    CHECK(system(cmd) == 0);
}

/* --plan is the same sweep: the combination is skipped there too, with the count asked. */
TEST(test_plan_records_microbatches_that_do_not_divide_the_batch_as_skipped)
{
    char path[128];
    CHECK_EQ_INT(bench_into("--model llama-tiny --strategy single,pipeline --gpus 2 --batch 8 --seq 64 "
                            "--microbatches 3,4 --plan", "plan.json", path, sizeof path), 0);
    CHECK(strstr(out, "skipped: batch 8 cannot be split into 3 equal microbatches") != NULL);
    cJSON *root = read_json(path);
    const cJSON *plans = cJSON_GetObjectItem(root, "strategies");
    int skipped = 0, ok = 0;
    for (int i = 0; i < cJSON_GetArraySize(plans); i++) {
        const cJSON *p = cJSON_GetArrayItem(plans, i);
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(p, "status"));
        if (!strcmp(status, "skipped")) {
            skipped++;
            CHECK_EQ_INT(cJSON_GetObjectItem(p, "microbatches")->valueint, 3);
            CHECK(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(p, "error")), "divisor of 8") != NULL);
        }
        ok += !strcmp(status, "ok");
    }
    CHECK_EQ_INT(skipped, 1);
    CHECK_EQ_INT(ok, 2);
    cJSON_Delete(root);
    CHECK_EQ_INT(bench_into("--model llama-tiny --strategy pipeline --gpus 2 --batch 8 --seq 64 --microbatches 3 "
                            "--plan", "plan.csv", path, sizeof path), 1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -q ',skipped,' %s", path);
    CHECK(system(cmd) == 0);
}

TEST(test_allreduce_flag_takes_four_algorithms_and_refuses_others)
{
    CHECK_EQ_INT(run_bench("--model llama-tiny --strategy tp --allreduce ring --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--allreduce") && strstr(out, "\"ring\"") && strstr(out, "auto, nccl, oneshot, twoshot"));
    CHECK_EQ_INT(run_bench("--help", out, sizeof out), 0);
    CHECK(strstr(out, "--allreduce ALGO") != NULL);
}

TEST(test_simulated_tp_decode_is_faster_with_the_oneshot_allreduce)
{
    char dir[64], args[512], path[128];
    double ms[2];
    const char *algo[2] = {"nccl", "oneshot"};
    for (int k = 0; k < 2; k++) {
        make_temp_dir(dir, sizeof dir);
        snprintf(args, sizeof args, "--model llama-tiny --strategy tp --simulate --gpu-profile h200 --gpus 2 "
                 "--batch 1 --seq 16 --decode 4 --allreduce %s --out %s", algo[k], dir);
        CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
        snprintf(path, sizeof path, "%s/summary.csv", dir);
        struct csv_table t;
        ms[k] = csv_read_file(path, &t) == 0 ? csv_get_num(&t, 0, "latency_p50_ms") : -1;
        csv_table_free(&t);
    }
    CHECK(ms[0] > 0 && ms[1] > 0 && ms[1] < ms[0]);
}
