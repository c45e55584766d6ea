/* Real weights: a safetensors folder written from the reference weights loads
 * into the same model as the random initialiser; broken folders are refused
 * naming the tensor. (transformers' own folders: test_peer_transformers.cu.) */
#include "../../base/check.h"
#include <sys/stat.h>
#include "../safetensors_write.h"
#include "model_test_util.h"

/* Write the tiny model as two shards: bf16 matrices, fp32 norms and lm_head. */
static int write_model(const char *dir, const struct ref_model *r, const char *skip, int bad_shape)
{
    const struct model_spec *m = &r->m;
    int H = m->hidden, q = m->heads * m->head_dim, kv = m->kv_heads * m->head_dim, I = m->intermediate, V = m->vocab;
    enum { MAXT = 64 };
    struct st_out_tensor a[MAXT], b[MAXT];
    int na = 0, nb = 0;
    char names[MAXT][96];
    void *bufs[MAXT];
    int nbuf = 0, nn = 0;
    auto add = [&](const char *name, const float *w, int rows, int cols, int as_f32, int ndim) {
        if (skip && !strcmp(name, skip)) return;
        snprintf(names[nn], 96, "%s", name);
        size_t n = (size_t)rows * cols;
        void *buf = malloc(n * (as_f32 ? 4 : 2));
        for (size_t i = 0; i < n; i++) {
            if (as_f32) ((float *)buf)[i] = w[i];
            else ((uint16_t *)buf)[i] = ref_bf16_bits(w[i]);
        }
        bufs[nbuf++] = buf;
        struct st_out_tensor t = {names[nn++], as_f32 ? "F32" : "BF16", ndim, {ndim == 1 ? cols : rows, cols}, buf,
                                  n * (as_f32 ? 4 : 2)};
        if (as_f32) b[nb++] = t;
        else a[na++] = t;
    };
    add("model.embed_tokens.weight", r->embed, V, H, 0, 2);
    char n[96];
    for (int l = 0; l < m->layers; l++) {
        const struct ref_layer *L = &r->layers[l];
#define ADD(suffix, w, rows, cols, f32, nd) \
    (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), add(n, w, rows, cols, f32, nd))
        ADD("input_layernorm.weight", L->attn_norm, 1, H, 1, 1);
        ADD("self_attn.q_proj.weight", L->wq, q, H, 0, 2);
        ADD("self_attn.k_proj.weight", L->wk, kv, H, 0, 2);
        ADD("self_attn.v_proj.weight", L->wv, kv, H, 0, 2);
        ADD("self_attn.o_proj.weight", L->wo, H, q, 0, 2);
        ADD("post_attention_layernorm.weight", L->mlp_norm, 1, H, 1, 1);
        ADD("mlp.gate_proj.weight", L->wg, I, H, 0, 2);
        ADD("mlp.up_proj.weight", L->wu, I, H, 0, 2);
        ADD("mlp.down_proj.weight", L->wd, H, I, 0, 2);
#undef ADD
    }
    add("model.norm.weight", r->norm, 1, H, 1, 1);
    add("lm_head.weight", r->lm_head, bad_shape ? V / 2 : V, bad_shape ? 2 * H : H, 1, 2);
    char path[512];
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    int rc = st_write_file(path, a, na);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    rc |= st_write_file(path, b, nb);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"weight_map\":{");
    for (int i = 0; i < na + nb; i++)
        fprintf(f, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", i < na ? a[i].name : b[i - na].name,
                i < na ? 1 : 2);
    fprintf(f, "}}");
    rc |= fclose(f);
    for (int i = 0; i < nbuf; i++) free(bufs[i]);
    return rc;
}

TEST(test_safetensors_folder_loads_same_model_as_random)
{
    struct model_spec m = tiny_spec();
    struct ref_model r;
    CHECK(ref_model_random(&m, 31, &r) == 0);
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    CHECK(write_model(dir, &r, NULL, 0) == 0);
    struct llama_part_desc d = whole_model(&m, 2, 32);
    struct llama_part *a = make_part(&m, &d, 31), *b = NULL;
    CHECK(a && llama_part_create(&m, &d, &b) == 0);
    if (!a || !b) return;
    CHECK(llama_part_load_safetensors(b, dir) == 0);
    int tok[2 * 17];
    random_tokens(tok, 34, m.vocab, 14);
    CHECK(forward(a, &m, tok, 0, 2, 17, 0, 0) == 0);
    CHECK(forward(b, &m, tok, 0, 2, 17, 0, 0) == 0);
    size_t n = (size_t)34 * m.vocab;
    float *ga = download(llama_part_logits(a), n), *gb = download(llama_part_logits(b), n);
    /* CPU and GPU libm may round a rare weight to the neighbouring bf16 value */
    CHECK_REL(gb, ga, n, 5e-3);
    free(ga), free(gb);
    llama_part_destroy(b);

    /* a missing tensor and a wrong shape are refused, naming the tensor */
    char dir2[256], dir3[256];
    make_temp_dir(dir2, sizeof dir2);
    make_temp_dir(dir3, sizeof dir3);
    CHECK(write_model(dir2, &r, "model.layers.1.mlp.up_proj.weight", 0) == 0);
    CHECK(write_model(dir3, &r, NULL, 1) == 0);
    CHECK(llama_part_load_safetensors(a, dir2) != 0);
    CHECK(strstr(pb_last_error(), "model.layers.1.mlp.up_proj.weight") != NULL);
    CHECK(llama_part_load_safetensors(a, dir3) != 0);
    CHECK(strstr(pb_last_error(), "lm_head.weight") != NULL);
    llama_part_destroy(a);
    ref_model_free(&r);
}
