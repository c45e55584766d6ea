/* summary.csv, summary.json and trace.json written from synthetic results and read back. */
#include <cJSON.h>
#include <stdlib.h>
#include <unistd.h>
#include "../base/csv_read.h"
#include "../harness/run/predict.h"
#include "../harness/run/run.h"
#include "../base/text_file.h"
#include "test.h"


static void fill(struct point_result *r, const char *name, int ok)
{
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", name);
    r->w = (struct workload){.batch = 8, .seq = 512, .mode = MODE_PREFILL};
    r->ok = ok;
    r->n_devices = 2;
    r->ordinal[0] = 0;
    r->ordinal[1] = 0;
    snprintf(r->placement_summary, sizeof r->placement_summary, "0:embed,0-15 1:16-31,head");
    r->iters = 3;
    r->latency_ms = malloc(3 * sizeof(double));
    r->latency_ms[0] = 10;
    r->latency_ms[1] = 11;
    r->latency_ms[2] = 12;
    r->p50_ms = 11;
    r->speedup = NAN;
    r->gpipe_bound = NAN;
    r->busy_known = 1;
    r->metrics.n_devices = 2;
    r->metrics.gpu[0] = (struct gpu_metrics){.window_ms = 11, .utilisation = 0.5, .known = 1};
    r->metrics.gpu[1] = (struct gpu_metrics){.window_ms = 11, .utilisation = 0.25, .known = 1};
    if (!ok) snprintf(r->reason, sizeof r->reason, "out of memory, \"GPU 1\"");
}

TEST(test_summary_csv_quotes_fields_and_keeps_columns)
{
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    struct point_result r[2];
    fill(&r[0], "naive", 1);
    fill(&r[1], "tp", 0);
    struct run_env env = {.weights = "random"};
    CHECK_EQ_INT(summary_write_csv(dir, &env, r, 2), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    char *s = text_file_read(path);
    CHECK(s != NULL);
    if (s) {
        CHECK(strncmp(s, "strategy,mode,batch,seq,", 24) == 0);
        /* A reason with a comma and quotes is one quoted field, quotes doubled. */
        CHECK(strstr(s, "\"out of memory, \"\"GPU 1\"\"\"") != NULL);
        CHECK(strstr(s, "0.5;0.25") != NULL);
        int lines = 0;
        for (char *p = s; *p; p++) lines += *p == '\n';
        CHECK_EQ_INT(lines, 3);
        /* Every line ends in CRLF (RFC 4180). */
        CHECK(strstr(s, "\r\n") != NULL);
        free(s);
    }
    snprintf(path, sizeof path, "%s/.summary.csv.tmp", dir);
    CHECK(access(path, F_OK) != 0);
    point_result_free(&r[0]);
    point_result_free(&r[1]);
}

TEST(test_summary_json_holds_latencies_and_unknowns_as_null)
{
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    struct point_result r;
    fill(&r, "single", 1);
    r.metrics.gpu[1].known = 0;
    r.metrics.gpu[1].utilisation = NAN;
    struct run_env env = {.n_gpus = 1, .nccl_version = 22805, .runtime_version = 13000, .profile_steps = 1};
    snprintf(env.gpu_name[0], sizeof env.gpu_name[0], "NVIDIA H100 80GB HBM3");
    snprintf(env.command, sizeof env.command, "bench --strategy single");
    r.metrics.gpu[0].idle_peer_wait_ms = 1.5;
    r.metrics.gpu[0].work_ms[STEP_LAYERS] = 7.25;
    CHECK_EQ_INT(summary_write_json(dir, &env, &r, 1), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *s = text_file_read(path);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    CHECK(root != NULL);
    if (root) {
        cJSON *e = cJSON_GetObjectItem(root, "environment");
        CHECK(strcmp(cJSON_GetObjectItem(e, "nccl")->valuestring, "2.28.5") == 0);
        CHECK(strcmp(cJSON_GetObjectItem(e, "cuda_runtime")->valuestring, "13.0") == 0);
        CHECK(strcmp(cJSON_GetObjectItem(e, "profile_detail")->valuestring, "step") == 0);
        cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
        cJSON *g0 = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "per_gpu"), 0);
        CHECK(cJSON_GetObjectItem(g0, "idle_peer_wait_ms")->valuedouble == 1.5);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(g0, "work_ms"), "layers")->valuedouble == 7.25);
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(p, "latency_ms")), 3);
        cJSON *g1 = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "per_gpu"), 1);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(g1, "utilisation")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(p, "speedup_vs_single")));
        cJSON_Delete(root);
    }
    free(s);
    point_result_free(&r);
}

/* Kernels and copies named as CUPTI names them (our label in args.label), each with its
 * launch on the host sharing its correlation, each iteration a ProfilerStep#N range. */
TEST(test_trace_json_reads_back_as_profiler_events)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    struct trace t;
    trace_init(&t, 2);
    struct record k = {.kind = REC_KERNEL, .device = 0, .stream = 0, .start_ns = 5000, .end_ns = 9000,
                       .correlation = 42, .src_device = -1, .dst_device = -1};
    snprintf(k.name, sizeof k.name, "gemm");
    trace_add(&t, &k);
    struct record c = {.kind = REC_MEMCPY, .device = 0, .stream = 1, .start_ns = 9000, .end_ns = 10000,
                       .copy = COPY_PTOP, .src_device = 0, .dst_device = 1, .bytes = 1 << 20};
    snprintf(c.name, sizeof c.name, "copy 0->1");
    trace_add(&t, &c);
    struct record a = {.kind = REC_COMM, .device = 1, .stream = 0, .start_ns = 10000, .end_ns = 12000,
                       .src_device = -1, .dst_device = -1};
    snprintf(a.name, sizeof a.name, "allreduce 3");
    trace_add(&t, &a);
    struct record h = {.kind = REC_RANGE, .device = -1, .start_ns = 1000, .end_ns = 12000};
    snprintf(h.name, sizeof h.name, "iteration 0");
    trace_add(&t, &h);
    struct point_result r;
    fill(&r, "naive", 1);
    const struct trace *tp = &t;
    CHECK_EQ_INT(trace_json_write(path, NULL, &r, &tp, 1), 0);
    char *s = text_file_read(path);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    CHECK(root != NULL);
    if (root) {
        CHECK(cJSON_GetObjectItem(root, "distributedInfo") != NULL);
        int kernels = 0, copies = 0, steps = 0, launches = 0, nccl = 0;
        double kernel_correlation = -1, launch_correlation = -2;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "traceEvents"))
        {
            const char *cat = cJSON_GetStringValue(cJSON_GetObjectItem(e, "cat"));
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
            if (!cat) continue;
            cJSON *args = cJSON_GetObjectItem(e, "args");
            const char *label = cJSON_GetStringValue(cJSON_GetObjectItem(args, "label"));
            if (!strcmp(cat, "kernel") && !strcmp(name, "gemm")) {
                kernels++;
                kernel_correlation = cJSON_GetObjectItem(args, "correlation")->valuedouble;
                CHECK_EQ_INT(cJSON_GetObjectItem(args, "device")->valueint, 0);
                CHECK_NEAR(cJSON_GetObjectItem(e, "ts")->valuedouble, 4.0, 1e-9);
                CHECK_NEAR(cJSON_GetObjectItem(e, "dur")->valuedouble, 4.0, 1e-9);
            }
            if (!strcmp(cat, "kernel") && !strcmp(name, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL")) {
                nccl++;
                CHECK(label && !strcmp(label, "allreduce 3"));
            }
            if (!strcmp(cat, "gpu_memcpy")) {
                copies++;
                CHECK(!strcmp(name, "Memcpy PtoP (Device -> Device)"));
                CHECK(label && !strcmp(label, "copy 0->1"));
                CHECK_EQ_INT(cJSON_GetObjectItem(args, "stream")->valueint, 1);
                CHECK_EQ_INT(cJSON_GetObjectItem(args, "dst_device")->valueint, 1);
            }
            if (!strcmp(cat, "cuda_runtime")) {
                launches++;
                if (!strcmp(name, "cudaLaunchKernel") && cJSON_GetObjectItem(e, "ts")->valuedouble == 4.0)
                    launch_correlation = cJSON_GetObjectItem(args, "correlation")->valuedouble;
            }
            if (!strcmp(cat, "user_annotation") && !strcmp(name, "ProfilerStep#0")) {
                steps++;
                CHECK_NEAR(cJSON_GetObjectItem(e, "ts")->valuedouble, 0.0, 1e-9);
                CHECK_NEAR(cJSON_GetObjectItem(e, "dur")->valuedouble, 11.0, 1e-9);
            }
        }
        CHECK_EQ_INT(kernels, 1);
        CHECK_EQ_INT(nccl, 1);
        CHECK_EQ_INT(copies, 1);
        CHECK_EQ_INT(steps, 1);
        CHECK_EQ_INT(launches, 3);
        CHECK_NEAR(kernel_correlation, launch_correlation, 0);
        cJSON_Delete(root);
    }
    free(s);
    trace_free(&t);
    point_result_free(&r);
}

/* Simulated points all start at 0; trace.json lays them one after another. */
TEST(test_trace_json_gives_each_point_its_own_stretch_of_time)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    struct trace t[2];
    struct point_result r[2];
    const struct trace *tp[2] = {&t[0], &t[1]};
    for (int i = 0; i < 2; i++) {
        trace_init(&t[i], 1);
        struct record k = {.kind = REC_KERNEL, .start_ns = 0, .end_ns = 2000000, .src_device = -1, .dst_device = -1};
        snprintf(k.name, sizeof k.name, "layers 0-1");
        trace_add(&t[i], &k);
        fill(&r[i], i ? "naive" : "single", 1);
    }
    CHECK_EQ_INT(trace_json_write(path, NULL, r, tp, 2), 0);
    char *s = text_file_read(path);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    double ts[2] = {-1, -1};
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "traceEvents"))
    {
        const char *cat = cJSON_GetStringValue(cJSON_GetObjectItem(e, "cat"));
        if (!cat || strcmp(cat, "kernel")) continue;
        int point = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "args"), "point")->valueint;
        ts[point] = cJSON_GetObjectItem(e, "ts")->valuedouble;
    }
    CHECK_NEAR(ts[0], 0, 0);
    CHECK_NEAR(ts[1], 2000 + 1000, 1e-9);   /* 2 ms of point 0, then a 1 ms gap */
    cJSON_Delete(root);
    free(s);
    for (int i = 0; i < 2; i++) {
        trace_free(&t[i]);
        point_result_free(&r[i]);
    }
}

/* summary.csv of n points, written into a fresh folder and read back. */
static int write_and_read_summary(const struct run_env *env, const struct point_result *r, int n, struct csv_table *t)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    PB_TRY(summary_write_csv(dir, env, r, n));
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    return csv_read_file(path, t);
}

TEST(test_summary_csv_puts_prediction_beside_measured_row)
{
    struct point_result r[2];
    fill(&r[0], "single", 1);
    r[0].predicted_ms = 12.1;
    r[0].prediction_error_pct = 10;
    fill(&r[1], "naive", 0);   /* failed: no prediction, never a zero */
    r[1].predicted_ms = NAN;
    struct run_env env = {.weights = "random"};
    struct csv_table t;
    CHECK_EQ_INT(write_and_read_summary(&env, r, 2, &t), 0);
    CHECK(csv_column(&t, "predicted") >= 0);
    CHECK(strcmp(csv_get(&t, 0, "predicted"), "0") == 0);
    CHECK(strcmp(csv_get(&t, 0, "predicted_ms"), "12.1") == 0);
    CHECK(strcmp(csv_get(&t, 0, "prediction_error_pct"), "10") == 0);
    CHECK(strcmp(csv_get(&t, 1, "predicted_ms"), "") == 0);
    CHECK(strcmp(csv_get(&t, 1, "prediction_error_pct"), "") == 0);
    csv_table_free(&t);
    point_result_free(&r[0]);
    point_result_free(&r[1]);
}

TEST(test_summary_csv_writes_byte_counts_as_integers_and_names_the_weights)
{
    struct point_result r[2];
    fill(&r[0], "naive", 1);
    r[0].transfer_bytes = 33554432;   /* 32 MiB: "%.6g" wrote 3.35544e+07 */
    fill(&r[1], "tp", 1);
    r[1].transfer_bytes = 6738149376.0;
    r[1].predicted = 1;
    struct run_env env = {.weights = "safetensors"};
    struct csv_table t;
    CHECK_EQ_INT(write_and_read_summary(&env, r, 2, &t), 0);
    CHECK(strcmp(csv_get(&t, 0, "transfer_bytes"), "33554432") == 0);
    CHECK(strcmp(csv_get(&t, 1, "transfer_bytes"), "6738149376") == 0);
    CHECK(strcmp(csv_get(&t, 0, "weights"), "safetensors") == 0);
    CHECK(strcmp(csv_get(&t, 1, "weights"), "none") == 0);   /* a predicted row ran no kernels */
    csv_table_free(&t);
    point_result_free(&r[0]);
    point_result_free(&r[1]);
}

TEST(test_summary_json_says_which_weights_the_run_used)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    struct point_result r;
    fill(&r, "naive", 1);
    struct run_env env = {.n_gpus = 1, .weights = "safetensors", .weights_dir = "ckpt/Llama-2-7b-hf"};
    CHECK_EQ_INT(summary_write_json(dir, &env, &r, 1), 0);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *s = text_file_read(path);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    const cJSON *w = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "environment"), "weights");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(w, "kind")) &&
          !strcmp(cJSON_GetObjectItem(w, "kind")->valuestring, "safetensors"));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(w, "folder")) &&
          !strcmp(cJSON_GetObjectItem(w, "folder")->valuestring, "ckpt/Llama-2-7b-hf"));
    cJSON_Delete(root);
    free(s);
    point_result_free(&r);
}

TEST(test_summary_json_marks_simulated_rows_predicted)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    struct point_result r;
    fill(&r, "pipeline", 1);
    r.predicted = 1;
    r.predicted_ms = 11;
    r.prediction_error_pct = NAN;
    struct run_env env = {.n_gpus = 1};
    CHECK_EQ_INT(summary_write_json(dir, &env, &r, 1), 0);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *s = text_file_read(path);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    CHECK(root != NULL);
    if (root) {
        cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "results"), 0);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(p, "predicted")));
        CHECK(cJSON_GetObjectItem(p, "predicted_ms")->valuedouble == 11);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(p, "prediction_error_pct")));
        cJSON_Delete(root);
    }
    free(s);
    point_result_free(&r);
}

TEST(test_predict_picks_the_shipped_profile_from_the_gpu_name)
{
    CHECK(strcmp(predict_profile_for_gpu("NVIDIA H100 80GB HBM3"), "h100") == 0);
    CHECK(strcmp(predict_profile_for_gpu("NVIDIA H200"), "h200") == 0);
    CHECK(strcmp(predict_profile_for_gpu("NVIDIA GeForce RTX 4090"), "rtx4090") == 0);
    CHECK(predict_profile_for_gpu("Tesla V100-SXM2-32GB") == NULL);
}

/* README lists the summary.csv columns; it must say what the code writes. */
TEST(test_readme_lists_the_summary_csv_columns_in_order)
{
    char *readme = text_file_read("README.md");
    CHECK(readme != NULL);
    if (!readme) return;
    const char *at = strstr(readme, "columns, in order");
    at = at ? strstr(at, ":\n`") : NULL;
    CHECK(at != NULL);
    if (at) {
        at += 3;
        for (int i = 0; summary_csv_columns[i]; i++) {
            size_t n = strlen(summary_csv_columns[i]);
            while (*at == ' ' || *at == '\n' || *at == ',') at++;
            CHECK(!strncmp(at, summary_csv_columns[i], n));
            at += n;
        }
        CHECK(*at == '`');
    }
    free(readme);
}
