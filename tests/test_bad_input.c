/* Malformed input, driven as a user would meet it: one message naming the file or
 * flag, the field and the problem; exit 2; never a crash, a hang, or code run
 * from data. Needs build/bench (make test builds it). */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../base/interrupt.h"
#include "../base/json_load.h"
#include "../base/parse_number.h"
#include "../base/atomic_file.h"
#include "../base/check.h"
#include "../models/safetensors.h"
#include "test.h"

static char out[65536];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

#define TINY_FIELDS "\"architectures\": [\"LlamaForCausalLM\"], \"intermediate_size\": 128, " \
                    "\"num_hidden_layers\": 2, \"vocab_size\": 256, \"max_position_embeddings\": 512"

static int bench_model(const char *config_text, char *dir, size_t dirlen)
{
    char path[128], args[512];
    make_temp_dir(dir, dirlen);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config_text);
    snprintf(args, sizeof args, "--model %s --plan --out %s/r", path, dir);
    return run_bench(args, out, sizeof out);
}

TEST(test_malformed_config_names_line_and_column_not_freed_bytes)
{
    char dir[64];
    CHECK_EQ_INT(bench_model("{\n  \"hidden_size\": 64,\n  \"vocab_size\": ]\n}\n", dir, sizeof dir), 2);
    CHECK(strstr(out, "config.json: line 3, column 17: malformed JSON") != NULL);
}

TEST(test_deeply_nested_and_large_malformed_configs_exit_2_without_crashing)
{
    static char deep[200001];
    memset(deep, '[', 200000);
    char dir[64];
    CHECK_EQ_INT(bench_model(deep, dir, sizeof dir), 2);
    CHECK(strstr(out, "nested deeper than 64") != NULL);
    static char large[300000];
    snprintf(large, sizeof large, "{\"pad\": \"");
    memset(large + 9, 'x', sizeof large - 20);
    CHECK_EQ_INT(bench_model(large, dir, sizeof dir), 2);   /* unterminated string, ~300 KB */
    CHECK(strstr(out, "malformed JSON") != NULL);
}

TEST(test_duplicate_key_in_config_is_refused_naming_it)
{
    char dir[64];
    CHECK_EQ_INT(bench_model("{" TINY_FIELDS ", \"hidden_size\": 64, \"num_attention_heads\": 4, "
                             "\"hidden_size\": 128}", dir, sizeof dir), 2);
    CHECK(strstr(out, "hidden_size: the key is given twice") != NULL);
    CHECK_EQ_INT(bench_model("{" TINY_FIELDS ", \"hidden_size\": 64, \"num_attention_heads\": 4, "
                             "\"rope_scaling\": {\"factor\": 2, \"factor\": 8}}", dir, sizeof dir), 2);
    CHECK(strstr(out, "rope_scaling.factor: the key is given twice") != NULL);
}

TEST(test_size_products_that_would_wrap_are_refused)
{
    char dir[64];
    /* 2^20 x (2 x 2^42 + 2 x 2^42) wraps uint64_t to 0 unchecked. */
    CHECK_EQ_INT(bench_model("{" TINY_FIELDS ", \"hidden_size\": 1048576, \"num_attention_heads\": 1048576, "
                             "\"head_dim\": 4194304}", dir, sizeof dir), 2);
    CHECK(strstr(out, "num_attention_heads x head_dim") && strstr(out, "too large"));
    CHECK_EQ_INT(bench_model("{" TINY_FIELDS ", \"hidden_size\": 1048576, \"num_attention_heads\": 1048576}",
                             dir, sizeof dir), 2);
}

TEST(test_folder_fifo_and_device_as_model_get_clear_messages)
{
    char dir[64], args[256];
    make_temp_dir(dir, sizeof dir);
    /* a folder is read as save_pretrained's (test_model_folder.c); here its config.json is a folder */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/config.json", dir);
    mkdir(sub, 0700);
    snprintf(args, sizeof args, "--model %s --plan --out %s/r", dir, dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "config.json: cannot read: is a folder, not a file") != NULL);
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo.json", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    snprintf(args, sizeof args, "--model %s --plan --out %s/r", fifo, dir);   /* must not wait for a writer */
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "not a regular file") != NULL);
    snprintf(args, sizeof args, "--model /dev/stdin --plan --out %s/r < /dev/null", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "/dev/stdin: cannot read: is not a regular file") != NULL);
}

TEST(test_trailing_comma_in_a_list_flag_is_refused)
{
    CHECK_EQ_INT(run_bench("--model llama-tiny --batch 8, --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--batch: \"8,\"") != NULL);
    CHECK_EQ_INT(run_bench("--model llama-tiny --seq 99999999999999999999 --plan", out, sizeof out), 2);
    CHECK_EQ_INT(run_bench("--model llama-tiny --iters 1x --plan", out, sizeof out), 2);
}

TEST(test_parse_number_refuses_overflow_empty_items_and_non_finite)
{
    int v[4];
    long long x;
    CHECK_EQ_INT(parse_int_list("--batch", "8,16", 1, 100, v, 4), 2);
    CHECK_EQ_INT(parse_int_list("--batch", "8,", 1, 100, v, 4), PB_ERR);
    CHECK_EQ_INT(parse_int_list("--batch", ",8", 1, 100, v, 4), PB_ERR);
    CHECK_EQ_INT(parse_int_list("--batch", "8,,9", 1, 100, v, 4), PB_ERR);
    CHECK_EQ_INT(parse_int_list("--batch", "", 1, 100, v, 4), PB_ERR);
    CHECK_EQ_INT(parse_int("--seed", "99999999999999999999", 0, 1000, &x), PB_ERR);
    CHECK_EQ_INT(parse_int("--seed", " 5", 0, 1000, &x), PB_ERR);
    CHECK_EQ_INT(number_in_range("f", 1.0 / 0.0, 0, 1e9), PB_ERR);
    CHECK_EQ_INT(number_in_range("f", NAN, 0, 1e9), PB_ERR);
    int64_t i;
    CHECK_EQ_INT(number_to_integer("f", 1e30, 0, 1e40, &i), PB_ERR);
    CHECK_EQ_INT(number_to_integer("f", 2.5, 0, 10, &i), PB_ERR);
}

TEST(test_seq_and_decode_beyond_max_position_embeddings_are_refused)
{
    CHECK_EQ_INT(run_bench("--model llama-2-7b --seq 5000 --plan", out, sizeof out), 2);
    CHECK(strstr(out, "--seq 5000") && strstr(out, "max_position_embeddings (4096)"));
    CHECK_EQ_INT(run_bench("--model llama-2-7b --seq 4000 --decode 200 --simulate", out, sizeof out), 2);
    CHECK(strstr(out, "--seq 4000 + --decode 200 = 4200 positions") != NULL);
    CHECK_EQ_INT(run_bench("--model llama-tiny --decode 16777216 --simulate", out, sizeof out), 2);
    CHECK(strstr(out, "--decode 16777216") != NULL);
    /* --simulate has no smaller cap of its own (the trace keeps a sample of passes):
     * a long-context model is refused at its own limit, one position past it. */
    CHECK_EQ_INT(run_bench("--model llama-3.2-1b --seq 16 --decode 131057 --simulate", out, sizeof out), 2);
    CHECK(strstr(out, "--seq 16 + --decode 131057 = 131073 positions") != NULL);
}

static const char *profile_with(const char *dir, const char *tflops, char *path, size_t len)
{
    FILE *in = fopen("profiles/h100.json", "r");
    static char text[1 << 16];
    size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
    if (in) fclose(in);
    text[n] = 0;
    snprintf(path, len, "%s/p.json", dir);
    char *at = strstr(text, "\"achievable\"");   /* bf16_gemm_tflops comes first */
    FILE *f = fopen(path, "w");
    if (at && f) {
        char *comma = strchr(at, ',');
        fprintf(f, "%.*s\"achievable\": %s%s", (int)(at - text), text, tflops, comma);
    }
    if (f) fclose(f);
    return path;
}

TEST(test_absurd_device_profile_rates_are_refused)
{
    char dir[64], path[128], args[512];
    make_temp_dir(dir, sizeof dir);
    const char *bad[] = {"1e-300", "-5", "1e999", "NaN", "Infinity"};
    for (int i = 0; i < 5; i++) {
        snprintf(args, sizeof args, "--model llama-tiny --simulate --gpu-profile %s --out %s/r",
                 profile_with(dir, bad[i], path, sizeof path), dir);
        CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
        CHECK(strstr(out, "p.json") && (strstr(out, "bf16_gemm_tflops.achievable") || strstr(out, "malformed")));
    }
    snprintf(args, sizeof args, "--model llama-tiny --simulate --gpu-profile %s --out %s/r",
             profile_with(dir, "600", path, sizeof path), dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);   /* the same file with a real rate runs */
}

TEST(test_bad_out_and_gpu_profile_are_usage_errors)
{
    char dir[64], args[256];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "%s/file", dir);
    write_text(args, "x");
    snprintf(args, sizeof args, "--model llama-tiny --plan --out %s/file", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "--out") != NULL);
    snprintf(args, sizeof args, "--model llama-tiny --plan --out %s/file/sub", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK_EQ_INT(run_bench("--model llama-tiny --simulate --gpu-profile b300", out, sizeof out), 2);
    CHECK(strstr(out, "b300") != NULL);
}

TEST(test_broken_weights_are_refused_under_simulate)
{
    char dir[64], path[128], args[256];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_text(path, "\x10\0\0\0\0\0\0\0{not json}      ");
    snprintf(args, sizeof args, "--model llama-tiny --simulate --weights %s --out %s/r", dir, dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "model.safetensors") != NULL);
}

static int header_file(const char *dir, const char *json, char *path, size_t len)
{
    snprintf(path, len, "%s/h.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t n = strlen(json);
    for (int i = 0; i < 8; i++) fputc((int)(n >> (8 * i)) & 0xff, f);
    fputs(json, f);
    for (int i = 0; i < 64; i++) fputc(0, f);
    fclose(f);
    return 0;
}

TEST(test_safetensors_offsets_and_shapes_out_of_range_are_refused)
{
    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    const char *bad[] = {
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1e30],\"data_offsets\":[0,2]}}",
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,1e30]}}",
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[-1,2]}}",
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,2]}}",
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},\"w\":{}}",
    };
    for (int i = 0; i < 5; i++) {
        struct st_files f = {0};
        CHECK(header_file(dir, bad[i], path, sizeof path) == 0);
        CHECK_EQ_INT(st_add_file(&f, path), PB_ERR);
        st_close(&f);
    }
    struct st_files f = {0};
    header_file(dir, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", path, sizeof path);
    CHECK_EQ_INT(st_add_file(&f, path), PB_OK);
    st_close(&f);
}

TEST(test_json_parse_text_refuses_trailing_text_and_reports_position)
{
    cJSON *j;
    CHECK_EQ_INT(json_parse_text("t", "{} x", 4, &j), PB_ERR);
    CHECK(strstr(pb_last_error(), "line 1, column 4") != NULL);
    CHECK_EQ_INT(json_parse_text("t", "{\"a\": [1, {\"b\": 1, \"b\": 2}]}", 28, &j), PB_ERR);
    CHECK(strstr(pb_last_error(), "a[].b: the key is given twice") != NULL);
    CHECK_EQ_INT(json_parse_text("t", "{\"a\": 1}\n", 9, &j), PB_OK);
    cJSON_Delete(j);
}

/* A model file whose name is gnuplot code: plotting its plan must run none of it. */
TEST(test_plot_runs_no_gnuplot_code_from_a_model_name)
{
    const char *names[] = {"m\"; system(\"touch PWNED\"); \"", "m`touch PWNED`", "m'; system('touch PWNED'); '"};
    for (int i = 0; i < 3; i++) {
        char dir[64], path[256], args[1024];
        make_temp_dir(dir, sizeof dir);
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        FILE *in = fopen("models/llama-tiny.json", "r"), *f = fopen(path, "w");
        char buf[4096];
        size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
        if (f) fwrite(buf, 1, n, f);
        if (in) fclose(in);
        if (f) fclose(f);
        unlink("PWNED");
        /* the shell sees the name quoted: single quotes, or double for the one holding them */
        const char *q = strchr(names[i], '\'') ? "\"" : "'";
        /* the results folder carries the name too, as the default results/<time>-<model> does */
        snprintf(args, sizeof args, "--model %s%s%s --plan --out %s%s/r%s%s", q, path, q, q, dir, names[i], q);
        CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
        snprintf(args, sizeof args, "plot %s%s/r%s%s", q, dir, names[i], q);
        CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
        struct stat st;
        CHECK(stat("PWNED", &st) != 0);
        snprintf(path, sizeof path, "%s/r%s/plot-data/plan.gp", dir, names[i]);
        FILE *gp = fopen(path, "r");
        n = gp ? fread(buf, 1, sizeof buf - 1, gp) : 0;
        buf[n] = 0;
        if (gp) fclose(gp);
        CHECK(strstr(buf, "touch PWNED") != NULL);   /* the name is there, as a string */
        unlink("PWNED");
    }
}

/* build/bench --simulate in a child: SIGINT or SIGTERM after `delay_ms`, and
 * again `again_ms` later if that is positive; returns the exit status. */
static int interrupted_run(const char *dir, int sig, int delay_ms, int again_ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        const char *bench = bench_binary();
        execl(bench, "bench", "--model", "llama-2-7b", "--simulate", "--gpu-profile", "h100", "--gpus",
              "2", "--batch", "1,2,4,8", "--seq", "16", "--decode", "2048", "--out", dir, (char *)NULL);
        _exit(127);
    }
    usleep((useconds_t)delay_ms * 1000);
    kill(pid, sig);
    if (again_ms > 0) {
        usleep((useconds_t)again_ms * 1000);
        kill(pid, sig);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
}

TEST(test_sigint_marks_points_not_run_interrupted_and_exits_130)
{
    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(interrupted_run(dir, SIGINT, 700, 0), 130);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    FILE *f = fopen(path, "r");
    static char text[1 << 20];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f) fclose(f);
    CHECK(strstr(text, ",interrupted,interrupted by SIGINT before this point ran,") != NULL);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    CHECK(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_INT(leftover_temporaries(dir), 0);
}

TEST(test_sigterm_exits_143_and_a_second_signal_stops_at_once_without_temporaries)
{
    char dir[64];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(interrupted_run(dir, SIGTERM, 700, 0), 143);
    CHECK_EQ_INT(leftover_temporaries(dir), 0);
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(interrupted_run(dir, SIGINT, 700, 100), 130);
    CHECK_EQ_INT(leftover_temporaries(dir), 0);
}

TEST(test_second_signal_removes_a_temporary_being_written)
{
    char dir[64], path[128];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    pid_t pid = fork();
    if (pid == 0) {
        interrupt_install();
        struct atomic_file a;
        if (atomic_file_open(&a, path) != PB_OK) _exit(1);
        fputs("half", a.f);
        raise(SIGINT);    /* recorded; writing goes on */
        raise(SIGINT);    /* exits here */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    CHECK_EQ_INT(leftover_temporaries(dir), 0);
    struct stat sb;
    CHECK(stat(path, &sb) != 0);   /* never renamed into place half-written */
}
