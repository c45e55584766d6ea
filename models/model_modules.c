/* The modules of a Llama model in execution order, their parameter bytes, and
 * the work one forward pass does in them. */
#include <stdio.h>
#include <string.h>
#include "model_spec.h"

int dtype_size(enum dtype dt)
{
    return dt == DTYPE_FP32 ? 4 : 2;
}

const char *dtype_name(enum dtype dt)
{
    return dt == DTYPE_FP32 ? "fp32" : dt == DTYPE_FP16 ? "fp16" : "bf16";
}

int dtype_parse(const char *s, enum dtype *out)
{
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = DTYPE_BF16;
    else if (!strcmp(s, "fp16") || !strcmp(s, "float16")) *out = DTYPE_FP16;
    else if (!strcmp(s, "fp32") || !strcmp(s, "float32")) *out = DTYPE_FP32;
    else return -1;
    return 0;
}

uint64_t model_attention_params(const struct model_spec *m)
{
    uint64_t h = (uint64_t)m->hidden, q = (uint64_t)m->heads * m->head_dim,
             kv = (uint64_t)m->kv_heads * m->head_dim;
    return h * q + 2 * h * kv + q * h;
}

uint64_t model_mlp_params(const struct model_spec *m)
{
    return 3 * (uint64_t)m->hidden * (uint64_t)m->intermediate;
}

uint64_t model_layer_params(const struct model_spec *m)
{
    return model_attention_params(m) + model_mlp_params(m) + 2 * (uint64_t)m->hidden;
}

int model_tp_split_check(const struct model_spec *m, int world, char *why, size_t len)
{
    if (world < 1) snprintf(why, len, "anything (a world of %d ranks)", world);
    else if (m->heads % world) snprintf(why, len, "the %d attention heads", m->heads);
    else if (m->kv_heads >= world ? m->kv_heads % world : world % m->kv_heads)
        snprintf(why, len, "the %d kv heads, nor are they a multiple of them (to replicate)", m->kv_heads);
    else if (m->intermediate % world) snprintf(why, len, "intermediate_size %d", m->intermediate);
    else if (m->vocab % world) snprintf(why, len, "vocab_size %d (lm_head is split by vocabulary)", m->vocab);
    else return 0;
    return -1;
}

uint64_t model_embed_params(const struct model_spec *m)
{
    return (uint64_t)m->vocab * m->hidden;
}

static void add(struct module *out, int *n, const char *name, enum module_kind kind, int layer,
                uint64_t bytes)
{
    struct module *mod = &out[(*n)++];
    snprintf(mod->name, sizeof mod->name, "%s", name);
    mod->kind = kind;
    mod->layer = layer;
    mod->param_bytes = bytes;
}

int model_modules(const struct model_spec *m, enum dtype dt, struct module *out)
{
    uint64_t size = (uint64_t)dtype_size(dt);
    int n = 0;
    add(out, &n, "model.embed_tokens", MODULE_EMBED, -1, model_embed_params(m) * size);
    for (int i = 0; i < m->layers; i++) {
        char name[PB_MODULE_NAME_LEN];
        snprintf(name, sizeof name, "model.layers.%d", i);
        add(out, &n, name, MODULE_LAYER, i, model_layer_params(m) * size);
    }
    add(out, &n, "model.norm", MODULE_NORM, -1, (uint64_t)m->hidden * size);
    /* rotary_emb holds only a non-persistent inv_freq buffer, no parameters. */
    add(out, &n, "model.rotary_emb", MODULE_ROTARY, -1, 0);
    /* Tied: lm_head.weight is embed_tokens.weight; accelerate's compute_module_sizes
     * walks named_parameters(), which lists a shared tensor once, under the embedding. */
    add(out, &n, "lm_head", MODULE_HEAD, -1, m->tie_embeddings ? 0 : model_embed_params(m) * size);
    return n;
}

/* Sum over the seq new positions of the positions each attends to (causal). */
static double attended_positions(int seq, int context)
{
    double past = (double)(context - seq);
    return seq * past + (double)seq * (seq + 1) / 2.0;
}

double model_attention_flops(const struct model_spec *m, int batch, int seq, int context)
{
    return 4.0 * batch * (double)m->heads * m->head_dim * attended_positions(seq, context);
}

double model_layer_flops(const struct model_spec *m, int batch, int seq, int context)
{
    double rows = (double)batch * seq;
    double matmul = 2.0 * rows * (double)(model_layer_params(m) - 2 * (uint64_t)m->hidden);
    return matmul + model_attention_flops(m, batch, seq, context);
}

double model_head_flops(const struct model_spec *m, int rows)
{
    return 2.0 * rows * (double)m->vocab * m->hidden;
}

double model_layer_bytes(const struct model_spec *m, enum dtype dt, int batch, int seq, int context)
{
    double size = dtype_size(dt);
    double weights = (double)model_layer_params(m) * size;
    double kv = 2.0 * batch * (double)context * m->kv_heads * m->head_dim * size;
    /* hidden in/out, q/k/v/attn out, gate/up/act: the activations each GEMM reads and writes */
    double rows = (double)batch * seq;
    double act = rows * size * (4.0 * m->hidden + 2.0 * m->heads * m->head_dim + 3.0 * m->intermediate);
    return weights + kv + act;
}
