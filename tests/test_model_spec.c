/* The config reader: shipped configs, transformers' defaults, clear rejections. */
#include <stdlib.h>
#include <unistd.h>
#include "../base/check.h"
#include "../models/model_spec.h"
#include "test.h"

/* Write text to a temporary config file and try to load it. */
static int load_text(const char *text, struct model_spec *m, char *path, size_t len)
{
    snprintf(path, len, "/tmp/placebench-config-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -2;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    int st = model_spec_load(path, m);
    unlink(path);
    return st;
}

TEST(test_shipped_configs_load_with_their_sizes)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    CHECK_EQ_INT(m.layers, 32);
    CHECK_EQ_INT(m.hidden, 4096);
    CHECK_EQ_INT(m.kv_heads, 32);
    CHECK_EQ_INT(m.head_dim, 128);
    CHECK(!strcmp(m.name, "llama-2-7b"));
    CHECK_EQ_INT(model_spec_load("models/llama-2-70b.json", &m), PB_OK);
    CHECK_EQ_INT(m.layers, 80);
    CHECK_EQ_INT(m.kv_heads, 8);
    CHECK_EQ_INT(model_spec_load("models/mistral-7b.json", &m), PB_OK);
    CHECK(!strcmp(m.architecture, "MistralForCausalLM"));
    const char *names[] = {"tinyllama-1.1b", "llama-3-8b", "llama-2-13b", "llama-tiny"};
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof path, "models/%s.json", names[i]);
        CHECK_EQ_INT(model_spec_load(path, &m), PB_OK);
    }
}

TEST(test_llama_3_2_has_tied_embeddings_and_llama3_rope)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-3.2-1b.json", &m), PB_OK);
    CHECK(m.tie_embeddings);
    CHECK_EQ_INT(m.rope.kind, ROPE_LLAMA3);
    CHECK_NEAR(m.rope.factor, 32.0, 0);
    CHECK_EQ_INT(m.rope.original_max_position, 8192);
    CHECK_NEAR(m.rope_theta, 500000.0, 0);
    CHECK_EQ_INT(m.head_dim, 64);
}

TEST(test_reader_fills_transformers_defaults)
{
    struct model_spec m;
    char path[64];
    CHECK_EQ_INT(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                           "\"intermediate_size\":128,\"num_hidden_layers\":2,"
                           "\"num_attention_heads\":4,\"vocab_size\":100}", &m, path, sizeof path),
                 PB_OK);
    CHECK_EQ_INT(m.kv_heads, 4);
    CHECK_NEAR(m.rms_eps, 1e-6, 0);
    CHECK_NEAR(m.rope_theta, 10000.0, 0);
    CHECK_EQ_INT(m.max_position, 2048);
    CHECK_EQ_INT(m.tie_embeddings, 0);
}

TEST(test_transformers_5_rope_parameters_are_read)
{
    struct model_spec m;
    char path[64];
    CHECK_EQ_INT(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                           "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                           "\"vocab_size\":100,\"rope_parameters\":{\"rope_type\":\"llama3\","
                           "\"rope_theta\":500000.0,\"factor\":8.0}}", &m, path, sizeof path), PB_OK);
    CHECK_EQ_INT(m.rope.kind, ROPE_LLAMA3);
    CHECK_NEAR(m.rope_theta, 500000.0, 0);
    CHECK_NEAR(m.rope.factor, 8.0, 0);
}

/* Each bad config must fail with a message naming the field. */
static void expect_rejected(int *failures_, const char *text, const char *field)
{
    struct model_spec m;
    char path[64];
    CHECK_EQ_INT(load_text(text, &m, path, sizeof path), PB_ERR);
    CHECK(strstr(pb_last_error(), field) != NULL);
    CHECK(strstr(pb_last_error(), path) != NULL);
}

#define SIZES "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":100"

TEST(test_reader_rejects_bad_configs_naming_file_and_field)
{
    expect_rejected(failures_, "{\"architectures\":[\"GPT2LMHeadModel\"]," SIZES ",\"num_attention_heads\":4}",
                    "architectures");
    expect_rejected(failures_, "{\"hidden_size\":64}", "architectures");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"],\"intermediate_size\":128,"
                               "\"num_hidden_layers\":2,\"vocab_size\":100,\"num_attention_heads\":4}",
                    "hidden_size");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"]," SIZES ",\"num_attention_heads\":0}",
                    "num_attention_heads");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"]," SIZES ",\"num_attention_heads\":-4}",
                    "num_attention_heads");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"]," SIZES ",\"num_attention_heads\":5}",
                    "num_attention_heads");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"]," SIZES
                               ",\"num_attention_heads\":4,\"num_key_value_heads\":3}",
                    "num_key_value_heads");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"]," SIZES ",\"num_attention_heads\":\"4\"}",
                    "num_attention_heads");
    expect_rejected(failures_, "{\"architectures\":[\"LlamaForCausalLM\"], \"hidden_size\": 64,", "malformed JSON");
}

TEST(test_missing_config_file_is_named)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/no-such-model.json", &m), PB_ERR);
    CHECK(strstr(pb_last_error(), "models/no-such-model.json") != NULL);
}

TEST(test_modules_come_in_execution_order_with_parameter_bytes)
{
    struct model_spec m;
    struct module mods[40];
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    int n = model_modules(&m, DTYPE_BF16, mods);
    CHECK_EQ_INT(n, 36);
    CHECK(!strcmp(mods[0].name, "model.embed_tokens"));
    CHECK(!strcmp(mods[1].name, "model.layers.0"));
    CHECK(!strcmp(mods[32].name, "model.layers.31"));
    CHECK(!strcmp(mods[33].name, "model.norm"));
    CHECK(!strcmp(mods[34].name, "model.rotary_emb"));
    CHECK(!strcmp(mods[35].name, "lm_head"));
    /* Llama-2-7B: 202,383,360 parameters a layer; 131,072,000 in the embedding */
    CHECK_EQ_INT(mods[1].param_bytes, 202383360ull * 2);
    CHECK_EQ_INT(mods[0].param_bytes, 131072000ull * 2);
    CHECK_EQ_INT(mods[35].param_bytes, 131072000ull * 2);
    model_modules(&m, DTYPE_FP32, mods);
    CHECK_EQ_INT(mods[1].param_bytes, 202383360ull * 4);
}

TEST(test_tied_lm_head_counts_no_bytes_of_its_own)
{
    struct model_spec m;
    struct module mods[24];
    CHECK_EQ_INT(model_spec_load("models/llama-3.2-1b.json", &m), PB_OK);
    int n = model_modules(&m, DTYPE_BF16, mods);
    CHECK_EQ_INT(mods[n - 1].param_bytes, 0);
    CHECK_EQ_INT(mods[0].param_bytes, 128256ull * 2048 * 2);
}

TEST(test_dtype_names_parse_and_reject_unknown)
{
    enum dtype d;
    CHECK_EQ_INT(dtype_parse("bf16", &d), 0);
    CHECK_EQ_INT(d, DTYPE_BF16);
    CHECK_EQ_INT(dtype_parse("float32", &d), 0);
    CHECK_EQ_INT(dtype_size(d), 4);
    CHECK_EQ_INT(dtype_parse("int8", &d), -1);
}

TEST(test_layer_params_are_attention_mlp_and_two_norms)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-3-8b.json", &m), PB_OK);
    /* q and o: 4096 x 4096 each; k and v: 4096 x 1024 each (8 kv heads of 128). */
    CHECK(model_attention_params(&m) == 2ull * 4096 * 4096 + 2ull * 4096 * 1024);
    CHECK(model_mlp_params(&m) == 3ull * 4096 * 14336);
    CHECK(model_layer_params(&m) == model_attention_params(&m) + model_mlp_params(&m) + 2 * 4096);
}

TEST(test_tp_split_check_names_what_does_not_split)
{
    struct model_spec m;
    char why[128];
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    CHECK_EQ_INT(model_tp_split_check(&m, 4, why, sizeof why), 0);
    CHECK_EQ_INT(model_tp_split_check(&m, 3, why, sizeof why), -1);
    CHECK(strstr(why, "32 attention heads"));
    m.kv_heads = 8;   /* 8 kv heads: split over 4, replicated over 16, neither over 32/3 */
    CHECK_EQ_INT(model_tp_split_check(&m, 16, why, sizeof why), 0);
    m.vocab = 32001;
    CHECK_EQ_INT(model_tp_split_check(&m, 2, why, sizeof why), -1);
    CHECK(strstr(why, "vocab_size 32001"));
}
