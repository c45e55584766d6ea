/* Plain-C fp32 reference forward; see cpu_reference.h. */
#include "cpu_reference.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../kernels/weight_hash.h"

uint16_t ref_bf16_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float ref_from_bits(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ref_bf16(float x) { return ref_from_bits(ref_bf16_bits(x)); }

static float *gen(const char *name, uint64_t seed, size_t n, int ones)
{
    float *a = malloc(n * sizeof *a);
    if (!a) return NULL;
    uint64_t key = weight_key(seed, name);
    for (size_t i = 0; i < n; i++) a[i] = ones ? 1.0f : ref_bf16(weight_normal(key, i, PB_INIT_STD));
    return a;
}

int ref_model_random(const struct model_spec *m, uint64_t seed, struct ref_model *r)
{
    memset(r, 0, sizeof *r);
    r->m = *m;
    size_t H = m->hidden, q = (size_t)m->heads * m->head_dim, kv = (size_t)m->kv_heads * m->head_dim;
    size_t I = m->intermediate, V = m->vocab;
    r->embed = gen("model.embed_tokens.weight", seed, V * H, 0);
    r->norm = gen("model.norm.weight", seed, H, 1);
    r->lm_head = gen(m->tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", seed, V * H, 0);
    r->layers = calloc(m->layers, sizeof *r->layers);
    if (!r->embed || !r->norm || !r->lm_head || !r->layers) return -1;
    for (int l = 0; l < m->layers; l++) {
        char n[96];
        struct ref_layer *L = &r->layers[l];
#define G(field, suffix, count, ones) \
    (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), L->field = gen(n, seed, count, ones))
        G(attn_norm, "input_layernorm.weight", H, 1);
        G(wq, "self_attn.q_proj.weight", q * H, 0);
        G(wk, "self_attn.k_proj.weight", kv * H, 0);
        G(wv, "self_attn.v_proj.weight", kv * H, 0);
        G(wo, "self_attn.o_proj.weight", H * q, 0);
        G(mlp_norm, "post_attention_layernorm.weight", H, 1);
        G(wg, "mlp.gate_proj.weight", I * H, 0);
        G(wu, "mlp.up_proj.weight", I * H, 0);
        G(wd, "mlp.down_proj.weight", H * I, 0);
#undef G
        if (!L->wd) return -1;
    }
    return 0;
}

void ref_model_free(struct ref_model *r)
{
    if (r->layers)
        for (int l = 0; l < r->m.layers; l++) {
            struct ref_layer *L = &r->layers[l];
            free(L->attn_norm), free(L->wq), free(L->wk), free(L->wv), free(L->wo);
            free(L->mlp_norm), free(L->wg), free(L->wu), free(L->wd);
        }
    free(r->layers), free(r->embed), free(r->norm), free(r->lm_head);
    memset(r, 0, sizeof *r);
}

void ref_matmul(const float *x, const float *w, float *y, int m, int n, int k)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += (double)x[(size_t)i * k + t] * w[(size_t)j * k + t];
            y[(size_t)i * n + j] = (float)s;
        }
}

void ref_rmsnorm(const float *x, const float *w, float *y, int rows, int hidden, float eps)
{
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < hidden; i++) ss += (double)x[(size_t)r * hidden + i] * x[(size_t)r * hidden + i];
        double inv = 1.0 / sqrt(ss / hidden + eps);
        for (int i = 0; i < hidden; i++) y[(size_t)r * hidden + i] = (float)(x[(size_t)r * hidden + i] * inv * w[i]);
    }
}

void ref_inv_freq(const struct model_spec *m, double *out)
{
    int hd = m->head_dim;
    for (int i = 0; i < hd / 2; i++) {
        double inv = 1.0 / pow(m->rope_theta, (2.0 * i) / hd);
        if (m->rope.kind == ROPE_LLAMA3) {
            double f = m->rope.factor, lo = m->rope.low_freq_factor, hi = m->rope.high_freq_factor;
            double old = m->rope.original_max_position, wavelen = 2 * M_PI / inv;
            if (wavelen > old / lo) {
                inv = inv / f;
            } else if (wavelen >= old / hi) {
                double smooth = (old / wavelen - lo) / (hi - lo);
                inv = (1 - smooth) * inv / f + smooth * inv;
            }
        }
        out[i] = inv;
    }
}

void ref_rope(float *v, int hd, int pos, const double *inv_freq)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        double a = pos * inv_freq[i], c = cos(a), s = sin(a);
        double x1 = v[i], x2 = v[i + half];
        v[i] = (float)(x1 * c - x2 * s);
        v[i + half] = (float)(x2 * c + x1 * s);
    }
}

void ref_attention(const float *q, const float *k, const float *v, float *out, int seq, int pos, int hq, int hkv,
                   int hd)
{
    int n_keys = pos + seq, group = hq / hkv;
    double *p = malloc(n_keys * sizeof *p);
    for (int t = 0; t < seq; t++)
        for (int h = 0; h < hq; h++) {
            int kh = h / group, last = pos + t;
            const float *qv = q + ((size_t)t * hq + h) * hd;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= last; j++) {
                const float *kv = k + ((size_t)j * hkv + kh) * hd;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)qv[e] * kv[e];
                /* the score as the kernels (and transformers' eager attention) round it:
                 * the q.k product to bf16, then scaled and rounded again */
                p[j] = ref_bf16(ref_bf16((float)d) * (float)(1.0 / sqrt((double)hd)));
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j <= last; j++) sum += (p[j] = exp(p[j] - mx));
            float *o = out + ((size_t)t * hq + h) * hd;
            for (int e = 0; e < hd; e++) {
                double acc = 0;
                for (int j = 0; j <= last; j++) acc += p[j] * v[((size_t)j * hkv + kh) * hd + e];
                o[e] = (float)(acc / sum);
            }
        }
    free(p);
}

int ref_forward(const struct ref_model *r, const int *tokens, int batch, int seq, float *logits)
{
    const struct model_spec *m = &r->m;
    int H = m->hidden, hd = m->head_dim, hq = m->heads, hkv = m->kv_heads, I = m->intermediate, V = m->vocab;
    size_t S = seq;
    float *x = malloc(S * H * 4), *xn = malloc(S * H * 4), *q = malloc(S * hq * hd * 4);
    float *k = malloc(S * hkv * hd * 4), *v = malloc(S * hkv * hd * 4), *att = malloc(S * hq * hd * 4);
    float *o = malloc(S * H * 4), *g = malloc(S * I * 4), *u = malloc(S * I * 4);
    double *inv = malloc(hd / 2 * sizeof *inv);
    if (!x || !xn || !q || !k || !v || !att || !o || !g || !u || !inv) return -1;
    ref_inv_freq(m, inv);
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < seq; t++) {
            int tok = tokens[b * seq + t];
            memcpy(x + (size_t)t * H, r->embed + (size_t)tok * H, H * 4);
        }
        for (int l = 0; l < m->layers; l++) {
            const struct ref_layer *L = &r->layers[l];
            ref_rmsnorm(x, L->attn_norm, xn, seq, H, (float)m->rms_eps);
            ref_matmul(xn, L->wq, q, seq, hq * hd, H);
            ref_matmul(xn, L->wk, k, seq, hkv * hd, H);
            ref_matmul(xn, L->wv, v, seq, hkv * hd, H);
            for (int t = 0; t < seq; t++) {
                for (int h = 0; h < hq; h++) ref_rope(q + ((size_t)t * hq + h) * hd, hd, t, inv);
                for (int h = 0; h < hkv; h++) ref_rope(k + ((size_t)t * hkv + h) * hd, hd, t, inv);
            }
            ref_attention(q, k, v, att, seq, 0, hq, hkv, hd);
            ref_matmul(att, L->wo, o, seq, H, hq * hd);
            for (size_t i = 0; i < S * H; i++) x[i] += o[i];
            ref_rmsnorm(x, L->mlp_norm, xn, seq, H, (float)m->rms_eps);
            ref_matmul(xn, L->wg, g, seq, I, H);
            ref_matmul(xn, L->wu, u, seq, I, H);
            for (size_t i = 0; i < S * I; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
            ref_matmul(g, L->wd, o, seq, H, I);
            for (size_t i = 0; i < S * H; i++) x[i] += o[i];
        }
        ref_rmsnorm(x, r->norm, xn, seq, H, (float)m->rms_eps);
        ref_matmul(xn, r->lm_head, logits + (size_t)b * seq * V, seq, V, H);
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(g), free(u), free(inv);
    return 0;
}

double ref_rel_error(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}
