/* Causal attention with grouped-query heads over the KV cache. q is [rows, hq*hd]
 * (call-local rows r = b * seq + t), the cache of one layer is
 * [max_batch][hkv][max_ctx][hd] and already holds this call's keys and values;
 * out is [rows, hq*hd]. Query t of sequence b sits at position pos + t and sees
 * keys [0, pos + t]. hd is 64 or 128. */
#ifndef PB_ATTENTION_H
#define PB_ATTENTION_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#define ATTN_DECODE_CHUNK 128  /* keys per block of the decode kernel */

struct attn_args {
    const __nv_bfloat16 *q;
    const __nv_bfloat16 *k_cache, *v_cache;  /* this layer's cache */
    __nv_bfloat16 *out;
    int batch, seq, batch_offset, pos;
    const int *pos_dev;      /* decode under a graph: position read on the device */
    int hq, hkv, hd, max_ctx;
    float *partials;         /* decode: attn_decode_partials_floats() floats */
    int pdl;                 /* decode kernels: programmatic launch (pdl.h) */
};

/* Raise the shared-memory limit of the prefill kernel (once per device). */
int attn_setup(void);
/* Prefill (any seq, pos read on the host): tiled flash attention on tensor cores. */
int attn_prefill(const struct attn_args *a, cudaStream_t s);
/* One query per sequence (seq == 1), split over the KV length, then combined. */
int attn_decode(const struct attn_args *a, cudaStream_t s);
size_t attn_decode_partials_floats(int max_batch, int hq, int hd, int max_ctx);
#endif
