/* Reads a Hugging Face config.json of the Llama family into a model_spec,
 * filling the defaults transformers' LlamaConfig / MistralConfig fill. */
#include "model_spec.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../base/check.h"
#include "../base/text_file.h"
#include "../base/json_load.h"
#include "../base/parse_number.h"

/* Every size product the model's code forms stays below this (2^48 parameters),
 * so none wraps in uint64_t or loses exactness as a double. */
#define MODEL_MAX_PARAMS ((uint64_t)1 << 48)

/* A required positive integer field. */
static int get_size(const char *path, const cJSON *root, const char *field, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v) return pb_fail("%s: %s: missing", path, field);
    if (!cJSON_IsNumber(v)) return pb_fail("%s: %s: must be an integer", path, field);
    char what[256];
    snprintf(what, sizeof what, "%s: %s", path, field);
    int64_t n;
    PB_TRY(number_to_integer(what, v->valuedouble, 1, 1e9, &n));
    *out = (int)n;
    return PB_OK;
}

/* An optional positive integer field; keeps *out (the default) when absent or null. */
static int get_size_opt(const char *path, const cJSON *root, const char *field, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return PB_OK;
    return get_size(path, root, field, out);
}

static int get_number_opt(const char *path, const cJSON *root, const char *field, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!v || cJSON_IsNull(v)) return PB_OK;
    if (!cJSON_IsNumber(v)) return pb_fail("%s: %s: must be a number", path, field);
    if (!(v->valuedouble > 0)) return pb_fail("%s: %s: must be positive", path, field);
    char what[256];
    snprintf(what, sizeof what, "%s: %s", path, field);
    PB_TRY(number_in_range(what, v->valuedouble, 1e-300, 1e300));
    *out = v->valuedouble;
    return PB_OK;
}

/* transformers 5 keeps rope settings in rope_parameters; 4.x used rope_theta and
 * rope_scaling at the top level. Accept both. */
static int read_rope(const char *path, const cJSON *root, struct model_spec *m)
{
    PB_TRY(get_number_opt(path, root, "rope_theta", &m->rope_theta));
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const char *field = "rope_parameters";
    if (!rp || cJSON_IsNull(rp)) {
        rp = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        field = "rope_scaling";
    }
    if (!rp || cJSON_IsNull(rp)) return PB_OK;
    if (!cJSON_IsObject(rp)) return pb_fail("%s: %s: must be an object", path, field);
    PB_TRY(get_number_opt(path, rp, "rope_theta", &m->rope_theta));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rp, "type");
    if (!type || !cJSON_IsString(type) || !strcmp(type->valuestring, "default")) return PB_OK;
    if (strcmp(type->valuestring, "llama3"))
        return pb_fail("%s: %s.rope_type: \"%s\" is not supported (default or llama3)", path, field,
                       type->valuestring);
    m->rope.kind = ROPE_LLAMA3;
    m->rope.factor = 8;
    m->rope.low_freq_factor = 1;
    m->rope.high_freq_factor = 4;
    m->rope.original_max_position = 8192;
    PB_TRY(get_number_opt(path, rp, "factor", &m->rope.factor));
    PB_TRY(get_number_opt(path, rp, "low_freq_factor", &m->rope.low_freq_factor));
    PB_TRY(get_number_opt(path, rp, "high_freq_factor", &m->rope.high_freq_factor));
    return get_size_opt(path, rp, "original_max_position_embeddings", &m->rope.original_max_position);
}

static int read_architecture(const char *path, const cJSON *root, struct model_spec *m)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *first = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
    if (!first || !cJSON_IsString(first))
        return pb_fail("%s: architectures: missing (expected [\"LlamaForCausalLM\"] or "
                       "[\"MistralForCausalLM\"])", path);
    if (strcmp(first->valuestring, "LlamaForCausalLM") && strcmp(first->valuestring, "MistralForCausalLM"))
        return pb_fail("%s: architectures: \"%s\" is not supported (LlamaForCausalLM or "
                       "MistralForCausalLM)", path, first->valuestring);
    snprintf(m->architecture, sizeof m->architecture, "%s", first->valuestring);
    return PB_OK;
}

static void set_defaults(struct model_spec *m, int mistral)
{
    m->max_position = mistral ? 4096 * 32 : 2048;
    m->rms_eps = 1e-6;
    m->rope_theta = 10000.0;
    m->rope.kind = ROPE_DEFAULT;
    m->tie_embeddings = 0;
}

/* a x b, refused (naming `what`) when it passes `limit`. */
static int checked_product(const char *path, const char *what, uint64_t a, uint64_t b, uint64_t limit,
                           uint64_t *out)
{
    if (__builtin_mul_overflow(a, b, out) || *out > limit)
        return pb_fail("%s: %s = %llu x %llu is too large (at most %llu)", path, what, (unsigned long long)a,
                       (unsigned long long)b, (unsigned long long)limit);
    return PB_OK;
}

/* The sizes model_modules.c and the executors multiply, checked once here. */
static int check_sizes(const char *path, const struct model_spec *m)
{
    uint64_t q, kv, attn, mlp, embed, layer, layers;
    PB_TRY(checked_product(path, "num_attention_heads x head_dim", (uint64_t)m->heads, (uint64_t)m->head_dim,
                           INT32_MAX, &q));
    PB_TRY(checked_product(path, "num_key_value_heads x head_dim", (uint64_t)m->kv_heads, (uint64_t)m->head_dim,
                           INT32_MAX, &kv));
    PB_TRY(checked_product(path, "hidden_size x (2 x heads + 2 x kv_heads) x head_dim", (uint64_t)m->hidden,
                           2 * q + 2 * kv, MODEL_MAX_PARAMS, &attn));
    PB_TRY(checked_product(path, "3 x hidden_size x intermediate_size", 3 * (uint64_t)m->hidden,
                           (uint64_t)m->intermediate, MODEL_MAX_PARAMS, &mlp));
    PB_TRY(checked_product(path, "vocab_size x hidden_size", (uint64_t)m->vocab, (uint64_t)m->hidden,
                           MODEL_MAX_PARAMS, &embed));
    layer = attn + mlp + 2 * (uint64_t)m->hidden;
    PB_TRY(checked_product(path, "num_hidden_layers x parameters per layer", (uint64_t)m->layers, layer,
                           MODEL_MAX_PARAMS, &layers));
    if (layers + 2 * embed > MODEL_MAX_PARAMS)
        return pb_fail("%s: the model's %llu parameters are too many (at most %llu)", path,
                       (unsigned long long)(layers + 2 * embed), (unsigned long long)MODEL_MAX_PARAMS);
    return PB_OK;
}

static int parse_spec(const char *path, const cJSON *root, struct model_spec *m)
{
    if (!cJSON_IsObject(root)) return pb_fail("%s: not a JSON object", path);
    PB_TRY(read_architecture(path, root, m));
    set_defaults(m, !strcmp(m->architecture, "MistralForCausalLM"));
    PB_TRY(get_size(path, root, "hidden_size", &m->hidden));
    PB_TRY(get_size(path, root, "intermediate_size", &m->intermediate));
    PB_TRY(get_size(path, root, "num_hidden_layers", &m->layers));
    PB_TRY(get_size(path, root, "num_attention_heads", &m->heads));
    PB_TRY(get_size(path, root, "vocab_size", &m->vocab));
    m->kv_heads = m->heads;
    PB_TRY(get_size_opt(path, root, "num_key_value_heads", &m->kv_heads));
    PB_TRY(get_size_opt(path, root, "max_position_embeddings", &m->max_position));
    PB_TRY(get_number_opt(path, root, "rms_norm_eps", &m->rms_eps));
    if (m->hidden % m->heads)
        return pb_fail("%s: num_attention_heads: %d does not divide hidden_size %d", path, m->heads,
                       m->hidden);
    if (m->heads % m->kv_heads)
        return pb_fail("%s: num_key_value_heads: %d does not divide num_attention_heads %d", path,
                       m->kv_heads, m->heads);
    m->head_dim = m->hidden / m->heads;
    PB_TRY(get_size_opt(path, root, "head_dim", &m->head_dim));
    if (m->head_dim % 2) return pb_fail("%s: head_dim: %d must be even for rotary embeddings", path, m->head_dim);
    if (m->layers > PB_MAX_LAYERS)
        return pb_fail("%s: num_hidden_layers: %d exceeds %d", path, m->layers, PB_MAX_LAYERS);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie)) return pb_fail("%s: tie_word_embeddings: must be true or false", path);
    m->tie_embeddings = cJSON_IsTrue(tie);
    PB_TRY(check_sizes(path, m));
    return read_rope(path, root, m);
}

static int spec_from_json(const char *path, cJSON *root, struct model_spec *out)
{
    memset(out, 0, sizeof *out);
    int st = parse_spec(path, root, out);
    cJSON_Delete(root);
    return st;
}

int model_spec_parse_text(const char *origin, const char *text, size_t len, struct model_spec *out)
{
    cJSON *root;
    PB_TRY(json_parse_text(origin, text, len, &root));
    return spec_from_json(origin, root, out);
}

int model_spec_load(const char *path, struct model_spec *out)
{
    cJSON *root;
    memset(out, 0, sizeof *out);
    PB_TRY(json_load_file(path, &root));
    PB_TRY(spec_from_json(path, root, out));
    model_name_from_path(path, out->name, sizeof out->name);
    return PB_OK;
}

int model_check_positions(const struct model_spec *m, int seq, int decode_tokens)
{
    long long positions = (long long)seq + decode_tokens;
    if (positions <= m->max_position) return PB_OK;
    if (decode_tokens)
        return pb_fail("--seq %d + --decode %d = %lld positions: more than %s's max_position_embeddings (%d)",
                       seq, decode_tokens, positions, m->name, m->max_position);
    return pb_fail("--seq %d: more than %s's max_position_embeddings (%d)", seq, m->name, m->max_position);
}

void model_name_from_path(const char *path, char *name, size_t len)
{
    const char *end = path + strlen(path);
    while (end > path && end[-1] == '/') end--;
    const char *base = end;
    while (base > path && base[-1] != '/') base--;
    /* save_pretrained's folder/config.json: the folder says which model it is */
    if ((size_t)(end - base) == strlen("config.json") && !strncmp(base, "config.json", 11) && base > path) {
        end = base;
        while (end > path && end[-1] == '/') end--;
        base = end;
        while (base > path && base[-1] != '/') base--;
    }
    int n = (int)(end - base);
    if (n > 5 && !strncmp(end - 5, ".json", 5)) n -= 5;
    snprintf(name, len, "%.*s", n, base);
    if (!name[0]) snprintf(name, len, "model");
}

const char *model_resolve_path(const char *arg, char *buf, size_t len)
{
    struct stat st;
    if (stat(arg, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return arg;
        snprintf(buf, len, "%s/config.json", arg);   /* missing: the loader names the file */
        return buf;
    }
    snprintf(buf, len, "models/%s.json", arg);
    return stat(buf, &st) == 0 ? buf : arg;
}

int model_folder_has_weights(const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", arg, names[i]);
        if (stat(path, &st) == 0) return 1;
    }
    return 0;
}
