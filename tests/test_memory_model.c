/* The memory model (strategies/memory_model.c) and its reports: the KV-cache
 * formula, where the logits and the offloaded weights go, refusals that name the
 * GPU and the bytes, the KV capacity's edges, and the columns, JSON, table and
 * sentence the runs write. (tests/gpu/test_memory_model.c holds it equal to the
 * kernel core's own allocation, byte for byte.) */
#include <inttypes.h>
#include <stdlib.h>
#include "../base/check.h"
#include "../base/csv_read.h"
#include "../harness/report/memory_report.h"
#include "test.h"

#define GIB (1ull << 30)

static struct model_spec load(const char *name)
{
    struct model_spec m;
    char path[256];
    memset(&m, 0, sizeof m);
    if (model_spec_load(model_resolve_path(name, path, sizeof path), &m) != PB_OK) m.layers = 0;
    return m;
}

static struct machine machine(int gpus, uint64_t per_gpu)
{
    struct machine mc = {.gpus = gpus, .cpu_memory = 512 * GIB, .policy = MAP_AUTO, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = per_gpu;
    return mc;
}

static int place(const struct model_spec *m, const char *strategy, int batch, int seq, const struct machine *mc,
                 struct placement *p)
{
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    return strategy_find(strategy)->place(m, &w, mc, p);
}

TEST(test_kv_cache_is_two_x_layers_x_kv_heads_x_head_dim_x_bytes_per_position)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(1, 80 * GIB);
    static struct placement p;
    CHECK_EQ_INT(place(&m, "single", 2, 100, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 2, .seq = 100, .decode_tokens = 28};
    static struct memory_plan mp;
    CHECK_EQ_INT(memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp), PB_OK);
    /* 32 layers x 32 kv heads x 128 dims x 2 bytes, K and V, for 2 x 128 positions */
    CHECK_EQ_INT(mp.gpu[0].kv, 2ull * 32 * 32 * 128 * 2 * (2 * 128));
    CHECK_EQ_INT(memory_kv_bytes_per_token(&m, DTYPE_BF16, 1), 2 * 32 * 128 * 2);
    CHECK_EQ_INT(mp.gpu[0].peak,
                 mp.gpu[0].weights + mp.gpu[0].kv + mp.gpu[0].activations + mp.gpu[0].workspace + mp.gpu[0].comm);
    CHECK_EQ_INT(mp.gpu[0].layers, 32);
}

TEST(test_tp_rank_holds_its_share_of_kv_heads_and_one_when_they_are_replicated)
{
    struct model_spec m = load("llama-2-70b");   /* 8 kv heads of 128 dims */
    CHECK_EQ_INT(memory_kv_bytes_per_token(&m, DTYPE_BF16, 2), 2 * 4 * 128 * 2);
    CHECK_EQ_INT(memory_kv_bytes_per_token(&m, DTYPE_BF16, 8), 2 * 1 * 128 * 2);
    CHECK_EQ_INT(memory_kv_bytes_per_token(&m, DTYPE_BF16, 16), 2 * 1 * 128 * 2);   /* replicated */
    struct machine mc = machine(8, 141 * GIB);
    static struct placement p;
    CHECK_EQ_INT(place(&m, "tp", 4, 512, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 4, .seq = 512, .decode_tokens = 0};
    static struct memory_plan mp;
    CHECK_EQ_INT(memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp), PB_OK);
    for (int d = 0; d < 8; d++) {
        CHECK_EQ_INT(mp.gpu[d].kv, 2ull * 80 * 1 * 128 * 2 * (4 * 512));
        CHECK_EQ_INT(mp.gpu[d].comm, 4ull * 512 * 32000 * 2);   /* the all-gathered logits */
    }
}

TEST(test_naive_last_gpu_holds_the_logits_and_the_remainder_layers)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(3, 80 * GIB);
    static struct placement p;
    CHECK_EQ_INT(place(&m, "naive", 8, 512, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 8, .seq = 512, .decode_tokens = 64};
    static struct memory_plan mp;
    CHECK_EQ_INT(memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp), PB_OK);
    CHECK_EQ_INT(mp.gpu[0].layers, 10);
    CHECK_EQ_INT(mp.gpu[2].layers, 12);
    CHECK(mp.gpu[2].has_head && !mp.gpu[0].has_head);
    CHECK(mp.gpu[2].kv > mp.gpu[0].kv);
    /* the logits, rows x vocabulary in bf16, are the last GPU's alone */
    CHECK(mp.gpu[2].activations >= mp.gpu[1].activations + 8ull * 512 * 32000 * 2);
    CHECK_EQ_INT(memory_fullest_device(&mp), -1 + 3);   /* budgets unset: the largest peak */
}

TEST(test_offloaded_weights_sit_in_host_memory_and_leave_a_staging_buffer)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(1, 4 * GIB);
    static struct placement p;
    CHECK_EQ_INT(place(&m, "auto", 1, 128, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 1, .seq = 128, .decode_tokens = 0};
    static struct memory_plan mp;
    CHECK_EQ_INT(memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp), PB_OK);
    uint64_t params[PB_MAX_DEVICES], cpu = 0;
    placement_device_params(&p, params, &cpu);
    CHECK(cpu > 0 && mp.host_weights >= cpu);
    CHECK(mp.gpu[0].weights < params[0] + cpu);
    /* every offloaded layer's KV cache is still on the GPU */
    CHECK_EQ_INT(mp.gpu[0].layers, 32);
    CHECK(mp.gpu[0].workspace > (32ull << 20));   /* cuBLASLt's and the staging buffer */
}

TEST(test_a_point_over_budget_is_refused_naming_the_gpu_and_the_bytes)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(2, 80 * GIB);
    static struct placement p;
    CHECK_EQ_INT(place(&m, "naive", 64, 4096, &mc, &p), PB_OK);
    mc.gpu_memory[1] = 20 * GIB;   /* GPU 0 keeps 80 GiB */
    struct memory_shape s = {.batch = 64, .seq = 1024, .decode_tokens = 0};
    static struct memory_plan mp;
    struct kv_capacity cap;
    CHECK_EQ_INT(memory_check_point(&m, &p, DTYPE_BF16, &s, &mc, "naive", &mp, &cap), PB_ERR);
    char bytes[32];
    snprintf(bytes, sizeof bytes, "%" PRIu64 " bytes", mp.gpu[1].peak);
    CHECK(strstr(pb_last_error(), "naive: GPU 1 needs") != NULL);
    CHECK(strstr(pb_last_error(), bytes) != NULL);
    CHECK(strstr(pb_last_error(), "21474836480 bytes") != NULL);   /* the budget */
    CHECK(memory_free_bytes(&mp.gpu[1]) < 0 && memory_free_bytes(&mp.gpu[0]) > 0);
    CHECK_EQ_INT(memory_fullest_device(&mp), 1);
    mc.gpu_memory[1] = 80 * GIB;
    CHECK_EQ_INT(memory_check_point(&m, &p, DTYPE_BF16, &s, &mc, "naive", &mp, &cap), PB_OK);
}

/* Whether a shape fits every budget. */
static int fits(const struct model_spec *m, const struct placement *p, const struct machine *mc, int batch,
                int seq, int decode)
{
    struct memory_shape s = {.batch = batch, .seq = seq, .decode_tokens = decode};
    static struct memory_plan mp;
    if (memory_plan_compute(m, p, DTYPE_BF16, &s, &mp) != PB_OK) return 0;
    for (int d = 0; d < mp.n_devices; d++)
        if (mp.gpu[d].peak > mc->gpu_memory[d]) return 0;
    return 1;
}

TEST(test_kv_capacity_is_the_edge_of_what_fits)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(2, 24 * GIB);
    m.max_position = 1 << 20;   /* let memory, not the config, set the context */
    static struct placement p;
    CHECK_EQ_INT(place(&m, "naive", 16, 512, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 16, .seq = 512, .decode_tokens = 32};
    struct kv_capacity cap;
    CHECK_EQ_INT(memory_kv_capacity(&m, &p, DTYPE_BF16, &s, &mc, &cap), PB_OK);
    CHECK(cap.max_context > 544 && !cap.context_capped);
    CHECK(fits(&m, &p, &mc, 16, 512, cap.max_context - 512));
    CHECK(!fits(&m, &p, &mc, 16, 512, cap.max_context + 1 - 512));
    CHECK_EQ_INT(cap.max_tokens, 16ull * cap.max_context);
    CHECK(cap.max_batch > 16);
    CHECK(fits(&m, &p, &mc, cap.max_batch, 512, 32));
    CHECK(!fits(&m, &p, &mc, cap.max_batch + 1, 512, 32));
    /* max_position_embeddings caps the context where memory would hold more */
    m.max_position = 4096;
    mc = machine(2, 80 * GIB);
    CHECK_EQ_INT(memory_kv_capacity(&m, &p, DTYPE_BF16, &s, &mc, &cap), PB_OK);
    CHECK_EQ_INT(cap.max_context, 4096);
    CHECK(cap.context_capped);
}

/* build/bench ARGS --out DIR in a fresh temporary DIR (left in dir); its exit status. */
static int bench_in_temp(const char *args, char *dir, size_t dir_len, char *out, size_t out_len)
{
    char line[1400];
    make_temp_dir(dir, dir_len);
    snprintf(line, sizeof line, "%s --out %s", args, dir);
    return run_bench(line, out, out_len);
}

static int remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* bench ARGS exits 1 and says `expect`. */
static int refused_with(const char *args, const char *expect)
{
    char dir[256], out[16384];
    int refused = bench_in_temp(args, dir, sizeof dir, out, sizeof out) == 1 && strstr(out, expect) != NULL;
    if (!refused) fprintf(stderr, "  bench %s: not refused with \"%s\":\n%s\n", args, expect, out);
    remove_dir(dir);
    return refused;
}

TEST(test_seventy_b_at_batch_64_x_4096_is_refused_on_one_h200)
{
    char dir[256], out[16384];
    CHECK_EQ_INT(bench_in_temp("--model llama-2-70b --simulate --gpu-profile h200 --gpus 1 --strategy single "
                                "--batch 64 --seq 4096", dir, sizeof dir, out, sizeof out), 1);
    CHECK(strstr(out, "failed: single: GPU 0 needs") != NULL);
    CHECK(strstr(out, "but its budget is 150754820096 bytes") != NULL);   /* the profile's memory.bytes */
    char path[512];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    if (t.n_rows == 1) {
        CHECK(!strcmp(csv_get(&t, 0, "status"), "failed"));
        CHECK(csv_list_num(csv_get(&t, 0, "kv_bytes_per_gpu"), 0) == 2.0 * 80 * 8 * 128 * 2 * 64 * 4096);
        CHECK(csv_list_num(csv_get(&t, 0, "free_bytes_per_gpu"), 0) < 0);
        CHECK(!strcmp(csv_get(&t, 0, "measured_peak_bytes_per_gpu"), ""));
    }
    CHECK_EQ_INT(t.n_rows, 1);
    csv_table_free(&t);
    CHECK(remove_dir(dir) == 0);
}

TEST(test_batch_4096_x_4096_is_refused_on_one_gpu)
{
    CHECK(refused_with("--model llama-2-7b --simulate --gpu-profile h200 --gpus 1 --strategy single --batch 4096 "
                       "--seq 4096", "failed: single: GPU 0 needs"));
}

TEST(test_summary_csv_writes_memory_as_integers_after_the_weights_column)
{
    char dir[256], out[16384];
    CHECK_EQ_INT(bench_in_temp("--model llama-2-7b --simulate --gpu-profile h200 --gpus 2 --strategy naive,tp "
                                "--batch 4 --seq 256 --decode 4", dir, sizeof dir, out, sizeof out), 0);
    CHECK(strstr(out, "memory per GPU") != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    /* Appended after `weights` (issue 18); issue 19's idle and roofline columns follow them. */
    CHECK_EQ_INT(csv_column(&t, "weights_bytes_per_gpu"), csv_column(&t, "weights") + 1);
    CHECK_EQ_INT(csv_column(&t, "max_batch_at_context"), csv_column(&t, "weights") + 8);
    for (int r = 0; r < t.n_rows; r++) {
        const char *peak = csv_get(&t, r, "peak_bytes_per_gpu");
        CHECK(strchr(peak, ';') && !strpbrk(peak, ".e"));   /* two GPUs, integers */
        CHECK(csv_list_num(peak, 0) > 6.0 * GIB);
        CHECK(csv_list_num(csv_get(&t, r, "free_bytes_per_gpu"), 1) ==
              150754820096.0 - csv_list_num(peak, 1));
        CHECK_EQ_INT((long long)csv_get_num(&t, r, "max_context_at_batch"), 4096);
        CHECK(csv_get_num(&t, r, "max_batch_at_context") > 100);
    }
    CHECK_EQ_INT(t.n_rows, 2);
    csv_table_free(&t);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "grep -q '\"kv_capacity\"' %s/summary.json && grep -q '\"peak_bytes_per_gpu\"' "
                              "%s/summary.json", dir, dir);
    CHECK(system(cmd) == 0);
    CHECK(remove_dir(dir) == 0);
}

TEST(test_explain_says_which_gpu_fills_first_under_naive_and_auto)
{
    char dir[256], out[32768];
    CHECK_EQ_INT(bench_in_temp("--model llama-2-7b --simulate --gpu-profile h200 --gpus 3 --strategy naive,auto "
                                "--batch 16 --seq 512 --decode 4 --explain", dir, sizeof dir, out, sizeof out), 0);
    for (char *c = out; *c; c++) *c = *c == '\n' ? ' ' : *c;   /* the text is wrapped */
    /* naive gives the last GPU 12 layers and lm_head; auto's fullest is GPU 1, 12 layers without it */
    CHECK(strstr(out, "naive fills GPU 2 first") != NULL);
    CHECK(strstr(out, "auto fills GPU 1 first") != NULL);
    CHECK(strstr(out, "the most layers (12 of 32") != NULL);
    CHECK(remove_dir(dir) == 0);
}

TEST(test_plan_refuses_a_kv_cache_beyond_the_budget)
{
    CHECK(refused_with("--model llama-2-7b --plan --gpus 2 --strategy naive --batch 32 --seq 2048 --decode 2048 "
                       "--max-memory 0=20GiB,1=20GiB", "not possible: naive: GPU 1 needs"));
    char dir[256], out[16384];
    CHECK_EQ_INT(bench_in_temp("--model llama-2-7b --plan --gpus 2 --strategy naive --batch 1 --seq 128", dir,
                               sizeof dir, out, sizeof out), 0);
    CHECK(strstr(out, "KV capacity: context 4096 (max_position_embeddings) at batch 1") != NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q '\"kv_capacity\"' %s/plan.json", dir);
    CHECK(system(cmd) == 0);
    CHECK(remove_dir(dir) == 0);
}

TEST(test_memory_sentence_is_empty_without_memory_figures)
{
    static struct point_result a;
    memset(&a, 0, sizeof a);
    snprintf(a.strategy, sizeof a.strategy, "naive");
    char buf[512] = "x";
    memory_sentence(&a, NULL, buf, sizeof buf);
    CHECK_EQ_INT(buf[0], 0);
}

TEST(test_memory_sentence_puts_the_measured_peak_beside_the_prediction)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(2, 80 * GIB);
    static struct placement p;
    static struct point_result a;
    memset(&a, 0, sizeof a);
    snprintf(a.strategy, sizeof a.strategy, "naive");
    a.w = (struct workload){.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(place(&m, "naive", 8, 512, &mc, &p), PB_OK);
    a.placement = &p;
    CHECK_EQ_INT(memory_fill_point(&m, &mc, &a), PB_OK);
    a.memory_measured = 1;
    a.measured_peak[1] = 9 * GIB;
    char buf[2048];
    memory_sentence(&a, NULL, buf, sizeof buf);
    CHECK(strstr(buf, "naive fills GPU 1 first (predicted ") != NULL);   /* it holds lm_head's logits */
    CHECK(strstr(buf, "of 80.00 GiB, measured 9.00 GiB") != NULL);
}

TEST(test_hybrid_stage_holds_its_layers_sharded_and_only_the_last_gathers_logits)
{
    struct model_spec m = load("llama-2-7b");
    struct machine mc = machine(4, 80 * GIB);
    mc.tp = 2;   /* two stages of two GPUs */
    static struct placement p;
    CHECK_EQ_INT(place(&m, "hybrid", 4, 256, &mc, &p), PB_OK);
    struct memory_shape s = {.batch = 4, .seq = 256, .decode_tokens = 0};
    static struct memory_plan mp;
    CHECK_EQ_INT(memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp), PB_OK);
    CHECK_EQ_INT(mp.gpu[0].layers + mp.gpu[2].layers, 32);
    CHECK_EQ_INT(mp.gpu[0].layers, mp.gpu[1].layers);
    /* a rank holds half the kv heads of its stage's layers */
    CHECK_EQ_INT(mp.gpu[2].kv, 2ull * mp.gpu[2].layers * 16 * 128 * 2 * (4 * 256));
    CHECK_EQ_INT(memory_kv_bytes_per_position(&m, &p, DTYPE_BF16, 3), 2ull * mp.gpu[3].layers * 16 * 128 * 2);
    CHECK(!mp.gpu[0].has_head && mp.gpu[3].has_head);
    CHECK(mp.gpu[0].comm == 0 && mp.gpu[2].comm == 4ull * 256 * 32000 * 2);
}
