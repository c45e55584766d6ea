/* A plain-C fp32 reference of the Llama forward (weights rounded to bf16, as the
 * GPU stores them), and of its pieces, for the GPU tests to compare against. */
#ifndef PB_CPU_REFERENCE_H
#define PB_CPU_REFERENCE_H
#include <stddef.h>
#include <stdint.h>
#include "../../models/model_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ref_layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *wg, *wu, *wd;
};

struct ref_model {
    struct model_spec m;
    float *embed, *norm, *lm_head;
    struct ref_layer *layers;
};

float ref_bf16(float x);  /* round to bf16 (nearest even) and back */
uint16_t ref_bf16_bits(float x);
float ref_from_bits(uint16_t b);

/* The model's deterministic random weights, generated on the CPU from the same
 * hash as the GPU (kernels/weight_hash.h). */
int ref_model_random(const struct model_spec *m, uint64_t seed, struct ref_model *out);
void ref_model_free(struct ref_model *r);

/* y[M, N] = x[M, K] w[N, K]^T */
void ref_matmul(const float *x, const float *w, float *y, int m, int n, int k);
void ref_rmsnorm(const float *x, const float *w, float *y, int rows, int hidden, float eps);
/* inv_freq in double precision, default or llama3 (independent of the GPU code). */
void ref_inv_freq(const struct model_spec *m, double *out);
/* Rotate one head vector of hd elements in place (rotate_half convention). */
void ref_rope(float *v, int hd, int pos, const double *inv_freq);
/* Causal GQA attention of `seq` queries at positions pos.. against keys [0, pos+seq),
 * each score rounded as the kernels round it (attention_common.cuh: score_log2):
 * q [seq][hq*hd], k/v [pos+seq][hkv*hd], out [seq][hq*hd]. */
void ref_attention(const float *q, const float *k, const float *v, float *out, int seq, int pos, int hq, int hkv,
                   int hd);
/* Logits [batch*seq][vocab] of every position of prompts tokens[batch*seq]. */
int ref_forward(const struct ref_model *r, const int *tokens, int batch, int seq, float *logits);

/* ||a - b|| / ||b|| over n values; NaN or inf anywhere gives +inf. */
double ref_rel_error(const float *a, const float *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
