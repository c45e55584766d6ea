/* A Llama-family model as described by a Hugging Face config.json, and its
 * modules in execution order with their parameter bytes. */
#ifndef PB_MODEL_SPEC_H
#define PB_MODEL_SPEC_H
#include <stddef.h>
#include <stdint.h>
#include "../base/limits.h"

enum dtype { DTYPE_BF16, DTYPE_FP16, DTYPE_FP32 };

enum rope_kind { ROPE_DEFAULT, ROPE_LLAMA3 };

struct rope_scaling {
    enum rope_kind kind;
    double factor;           /* llama3: 8 for Llama 3.1/3.2 */
    double low_freq_factor;
    double high_freq_factor;
    int original_max_position;
};

struct model_spec {
    char name[PB_MODEL_NAME_LEN];        /* file name without directory and .json; a model folder's name */
    char architecture[64];   /* LlamaForCausalLM or MistralForCausalLM */
    int hidden;              /* hidden_size */
    int intermediate;        /* intermediate_size */
    int layers;              /* num_hidden_layers */
    int heads;               /* num_attention_heads */
    int kv_heads;            /* num_key_value_heads (defaults to heads) */
    int head_dim;            /* hidden / heads unless config sets head_dim */
    int vocab;               /* vocab_size */
    int max_position;        /* max_position_embeddings */
    int tie_embeddings;      /* tie_word_embeddings */
    double rope_theta;
    double rms_eps;          /* rms_norm_eps */
    struct rope_scaling rope;
};

enum module_kind { MODULE_EMBED, MODULE_LAYER, MODULE_NORM, MODULE_ROTARY, MODULE_HEAD };

struct module {
    char name[PB_MODULE_NAME_LEN];         /* e.g. "model.layers.3" as in hf_device_map */
    enum module_kind kind;
    int layer;               /* layer index for MODULE_LAYER, else -1 */
    uint64_t param_bytes;    /* counted as accelerate's compute_module_sizes does */
};

/* Read and validate a config.json; on failure print "<path>: <field>: <problem>". */
int model_spec_load(const char *path, struct model_spec *out);
/* The same from text (len bytes; text[len] readable); `origin` names it in messages. */
int model_spec_parse_text(const char *origin, const char *text, size_t len, struct model_spec *out);

/* A prompt of seq tokens plus decode_tokens generated must fit the model's
 * positions (max_position_embeddings); a message names the flags otherwise. */
int model_check_positions(const struct model_spec *m, int seq, int decode_tokens);

/* "llama-2-7b" means models/llama-2-7b.json when no file of that name exists; a
 * folder (what save_pretrained writes) means its config.json. */
const char *model_resolve_path(const char *arg, char *buf, size_t len);
/* "models/llama-2-7b.json" -> "llama-2-7b"; "ckpt/Llama-2-7b-hf/config.json" -> "Llama-2-7b-hf". */
void model_name_from_path(const char *path, char *name, size_t len);
/* 1 if arg is a folder holding model.safetensors or model.safetensors.index.json. */
int model_folder_has_weights(const char *arg);

/* Fill out[] (capacity PB_MAX_MODULES) with the modules in execution order; returns the count. */
int model_modules(const struct model_spec *m, enum dtype dt, struct module *out);

int dtype_size(enum dtype dt);
const char *dtype_name(enum dtype dt);
/* Parse "bf16"/"bfloat16", "fp16"/"float16", "fp32"/"float32"; -1 if unknown. */
int dtype_parse(const char *s, enum dtype *out);

/* Parameter counts of the pieces (elements, not bytes): a layer is its attention
 * projections (q, k, v, o), its MLP (gate, up, down) and two RMSNorm weights. */
uint64_t model_attention_params(const struct model_spec *m);
uint64_t model_mlp_params(const struct model_spec *m);
uint64_t model_layer_params(const struct model_spec *m);
uint64_t model_embed_params(const struct model_spec *m);

/* Whether tensor parallelism over `world` ranks splits the model evenly: attention
 * heads, kv heads (split, or replicated when there are fewer than ranks),
 * intermediate columns and vocabulary. Returns 0, or -1 with what does not split
 * ("the 32 attention heads") in why, for the caller to name the ranks. */
int model_tp_split_check(const struct model_spec *m, int world, char *why, size_t len);

/* Work of one decoder layer for `rows` new tokens attending to `context` positions
 * in total per sequence (prefill: context == seq; decode: kv length + 1), batch sequences. */
double model_layer_flops(const struct model_spec *m, int batch, int seq, int context);
/* Its attention share alone: the scores and the weighted values, causal. */
double model_attention_flops(const struct model_spec *m, int batch, int seq, int context);
double model_head_flops(const struct model_spec *m, int rows);
/* Bytes a layer must move through memory: weights plus KV cache reads and activations. */
double model_layer_bytes(const struct model_spec *m, enum dtype dt, int batch, int seq, int context);
#endif
