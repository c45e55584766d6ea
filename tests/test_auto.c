/* The auto strategy reproduces the device maps transformers + accelerate chose for real
 * (tests/fixtures/accelerate_device_maps.json), and behaves as accelerate documents. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include "../base/text_file.h"
#include "test.h"
#include "../strategies/strategy.h"

extern const struct strategy auto_strategy;

#define FIXTURE "tests/fixtures/accelerate_device_maps.json"
#define GIB (1024ULL * 1024 * 1024)


static int json_int(const cJSON *obj, const char *key, int fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valueint : fallback;
}

static void spec_from_config(const cJSON *config, const char *name, struct model_spec *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->architecture, sizeof m->architecture, "LlamaForCausalLM");
    m->hidden = json_int(config, "hidden_size", 0);
    m->intermediate = json_int(config, "intermediate_size", 0);
    m->layers = json_int(config, "num_hidden_layers", 0);
    m->heads = json_int(config, "num_attention_heads", 1);
    m->kv_heads = json_int(config, "num_key_value_heads", m->heads);
    m->vocab = json_int(config, "vocab_size", 0);
    m->head_dim = m->hidden / m->heads;
    m->tie_embeddings = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(config, "tie_word_embeddings"));
    m->max_position = 4096;
    m->rope_theta = 10000.0;
    m->rms_eps = 1e-5;
}

static enum device_map_policy policy_from_mode(const char *mode)
{
    if (!strcmp(mode, "balanced")) return MAP_BALANCED;
    if (!strcmp(mode, "balanced_low_0")) return MAP_BALANCED_LOW_0;
    if (!strcmp(mode, "sequential")) return MAP_SEQUENTIAL;
    return MAP_AUTO;
}

/* max_memory {"0": bytes, ..., "cpu": bytes}: bytes are exact in a double below 2^53. */
static void machine_from_case(const cJSON *c, struct machine *mc)
{
    memset(mc, 0, sizeof *mc);
    mc->gpus = json_int(c, "gpus", 0);
    mc->policy = policy_from_mode(cJSON_GetObjectItemCaseSensitive(c, "mode")->valuestring);
    mc->budgets_from_user = 1;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(c, "max_memory"))
    {
        if (!strcmp(entry->string, "cpu")) mc->cpu_memory = (uint64_t)entry->valuedouble;
        else mc->gpu_memory[atoi(entry->string)] = (uint64_t)entry->valuedouble;
    }
}

/* A device_map key stands for the module it names and everything under it; the most
 * specific key wins. Returns the device (GPU index or PB_DEVICE_CPU), or -99 if none. */
static int expected_device(const cJSON *device_map, const char *module)
{
    const cJSON *entry, *best = NULL;
    size_t best_len = 0;
    cJSON_ArrayForEach(entry, device_map)
    {
        size_t n = strlen(entry->string);
        int covers = n == 0 || (!strncmp(module, entry->string, n) && (module[n] == 0 || module[n] == '.'));
        if (covers && (!best || n > best_len)) {
            best = entry;
            best_len = n;
        }
    }
    if (!best || !cJSON_IsString(best)) return -99;
    return !strcmp(best->valuestring, "cpu") ? PB_DEVICE_CPU : atoi(best->valuestring);
}

static void print_device(const char *label, int device)
{
    if (device == PB_DEVICE_CPU) fprintf(stderr, "%scpu", label);
    else fprintf(stderr, "%s%d", label, device);
}

/* Compare one case; print the case and every module that differs. Returns 1 if it matches. */
static int check_case(const cJSON *c, int index)
{
    const char *model = cJSON_GetObjectItemCaseSensitive(c, "model")->valuestring;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(c, "device_map");
    struct model_spec m;
    struct machine mc;
    struct workload w = {.batch = 1, .seq = 1, .context = 1, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    static struct placement p;
    spec_from_config(cJSON_GetObjectItemCaseSensitive(c, "config"), model, &m);
    machine_from_case(c, &mc);
    int status = auto_strategy.place(&m, &w, &mc, &p);
    int mismatches = 0;
    for (int i = 0; status == 0 && i < p.n_modules; i++) {
        int want = expected_device(map, p.modules[i].name);
        if (want == p.device[i]) continue;
        if (!mismatches++)
            fprintf(stderr, "  case %d: %s, %d GPUs (%s), %s:\n", index, model, mc.gpus,
                    cJSON_GetObjectItemCaseSensitive(c, "memory")->valuestring,
                    cJSON_GetObjectItemCaseSensitive(c, "mode")->valuestring);
        fprintf(stderr, "    %-20s", p.modules[i].name);
        print_device(" expected ", want);
        print_device(", got ", p.device[i]);
        fputc('\n', stderr);
    }
    if (status != 0)
        fprintf(stderr, "  case %d: %s, %d GPUs, %s: place failed\n", index, model, mc.gpus,
                cJSON_GetObjectItemCaseSensitive(c, "mode")->valuestring);
    return status == 0 && mismatches == 0;
}

TEST(test_auto_reproduces_every_accelerate_device_map)
{
    char *text = text_file_read(FIXTURE);
    CHECK(text != NULL);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    CHECK_EQ_INT(cJSON_GetArraySize(cases), 168);
    int index = 0, passed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) passed += check_case(c, index++);
    if (passed != index) fprintf(stderr, "  %d of %d fixture cases reproduced\n", passed, index);
    CHECK_EQ_INT(passed, index);
    cJSON_Delete(root);
}

/* A Llama-2-7B (untied) and a Llama-3.2-1B (tied) as their configs give them. */
static void llama_2_7b(struct model_spec *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "llama-2-7b");
    m->hidden = 4096, m->intermediate = 11008, m->layers = 32, m->heads = 32, m->kv_heads = 32;
    m->head_dim = 128, m->vocab = 32000;
}

static void llama_3_2_1b(struct model_spec *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "llama-3.2-1b");
    m->hidden = 2048, m->intermediate = 8192, m->layers = 16, m->heads = 32, m->kv_heads = 8;
    m->head_dim = 64, m->vocab = 128256, m->tie_embeddings = 1;
}

static struct machine gpus_of(int n, uint64_t bytes, uint64_t cpu, enum device_map_policy policy)
{
    struct machine mc = {.gpus = n, .cpu_memory = cpu, .policy = policy, .budgets_from_user = 1};
    for (int i = 0; i < n; i++) mc.gpu_memory[i] = bytes;
    return mc;
}

static const struct workload bf16 = {.batch = 1, .seq = 1, .context = 1, .dtype = DTYPE_BF16};

static uint64_t bytes_on(const struct placement *p, int device)
{
    uint64_t sum = 0;
    for (int i = 0; i < p->n_modules; i++)
        if (p->device[i] == device) sum += p->modules[i].param_bytes;
    return sum;
}

static uint64_t total_bytes(const struct placement *p)
{
    uint64_t sum = 0;
    for (int i = 0; i < p->n_modules; i++) sum += p->modules[i].param_bytes;
    return sum;
}

static int device_of(const struct placement *p, const char *name)
{
    for (int i = 0; i < p->n_modules; i++)
        if (!strcmp(p->modules[i].name, name)) return p->device[i];
    return -99;
}

TEST(test_auto_balanced_low_0_leaves_gpu0_lighter)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(4, 80 * GIB, 512 * GIB, MAP_BALANCED_LOW_0);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    for (int g = 1; g < 4; g++) CHECK(bytes_on(&p, 0) < bytes_on(&p, g));
}

TEST(test_auto_balanced_spreads_layers_over_every_gpu)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(4, 80 * GIB, 512 * GIB, MAP_BALANCED);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    for (int g = 0; g < 4; g++) CHECK(bytes_on(&p, g) > 0);
    CHECK_EQ_INT(device_of(&p, "model.embed_tokens"), 0);
    CHECK_EQ_INT(device_of(&p, "lm_head"), 3);
}

TEST(test_auto_sequential_fills_gpu0_before_gpu1)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(2, 80 * GIB, 512 * GIB, MAP_SEQUENTIAL);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    CHECK_EQ_INT(bytes_on(&p, 0), total_bytes(&p));
}

TEST(test_auto_puts_what_does_not_fit_on_cpu)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(2, 4 * GIB, 512 * GIB, MAP_AUTO);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    CHECK(bytes_on(&p, PB_DEVICE_CPU) > 0);
    CHECK(bytes_on(&p, 0) <= 4 * GIB);
    CHECK(bytes_on(&p, 1) <= 4 * GIB);
    CHECK_EQ_INT(device_of(&p, "lm_head"), PB_DEVICE_CPU);
}

TEST(test_auto_refuses_a_model_that_would_need_disk_offload)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(2, 2 * GIB, 2 * GIB, MAP_AUTO);
    CHECK(auto_strategy.place(&m, &bf16, &mc, &p) != 0);
}

TEST(test_auto_keeps_tied_lm_head_with_the_embeddings)
{
    struct model_spec m;
    static struct placement p;
    llama_3_2_1b(&m);
    struct machine mc = gpus_of(3, 24 * GIB, 512 * GIB, MAP_AUTO);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    CHECK_EQ_INT(device_of(&p, "lm_head"), device_of(&p, "model.embed_tokens"));
    CHECK(device_of(&p, "model.norm") != device_of(&p, "lm_head"));
}

/* On one GPU whose budget was read from the device, transformers uses 90% of it. */
TEST(test_auto_single_gpu_keeps_ten_percent_only_when_budget_was_not_given)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &(struct machine){.gpus = 1, .gpu_memory = {80 * GIB}}, &p), 0);
    uint64_t budget = total_bytes(&p) + 1 * GIB;
    struct machine given = gpus_of(1, budget, 512 * GIB, MAP_AUTO);
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &given, &p), 0);
    CHECK_EQ_INT(bytes_on(&p, PB_DEVICE_CPU), 0);
    struct machine read = given;
    read.budgets_from_user = 0;
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &read, &p), 0);
    CHECK(bytes_on(&p, PB_DEVICE_CPU) > 0);
}

TEST(test_auto_skips_gpus_without_a_budget)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(3, 80 * GIB, 512 * GIB, MAP_AUTO);
    mc.gpu_memory[1] = 0;
    CHECK_EQ_INT(auto_strategy.place(&m, &bf16, &mc, &p), 0);
    CHECK_EQ_INT(bytes_on(&p, 1), 0);
    CHECK(bytes_on(&p, 0) > 0 && bytes_on(&p, 2) > 0);
}

TEST(test_auto_plan_copies_activations_where_the_gpu_changes)
{
    struct model_spec m;
    static struct placement p;
    llama_2_7b(&m);
    struct machine mc = gpus_of(2, 80 * GIB, 512 * GIB, MAP_AUTO);
    struct workload w = {.batch = 2, .seq = 16, .context = 16, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    CHECK_EQ_INT(auto_strategy.place(&m, &w, &mc, &p), 0);
    struct schedule s;
    CHECK_EQ_INT(auto_strategy.plan(&m, &p, &w, &s), 0);
    int copies = 0;
    for (int i = 0; i < s.n_steps; i++)
        if (s.steps[i].kind == STEP_COPY) {
            copies++;
            CHECK_EQ_INT(s.steps[i].src, 0);
            CHECK_EQ_INT(s.steps[i].dst, 1);
        }
    CHECK_EQ_INT(copies, 1);
    schedule_free(&s);
}
