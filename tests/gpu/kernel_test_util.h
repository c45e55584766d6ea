/* Helpers of the kernel-core GPU tests: random bf16 buffers, poisoned outputs,
 * downloads to float, and a tiny model spec filled by hand. */
#ifndef PB_KERNEL_TEST_UTIL_H
#define PB_KERNEL_TEST_UTIL_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
/* test.h declares C functions (runner.c) without a C++ guard */
extern "C" {
#include "../test.h"
}
#include "cpu_reference.h"
#include "../../kernels/layer_kernels.h"

#define CUDA_OK(call) CHECK((call) == cudaSuccess)

/* xorshift: the tests' own inputs, fresh per call site through the seed. */
static inline float rnd_uniform(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* n random bf16 values on the device (scaled), and their float copy on the host. */
static inline __nv_bfloat16 *dev_random(size_t n, float scale, uint64_t seed, float **host)
{
    uint16_t *h = (uint16_t *)malloc(n * 2);
    float *f = (float *)malloc(n * 4);
    uint64_t s = seed * 2654435761ull + 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        h[i] = ref_bf16_bits(rnd_uniform(&s) * scale);
        f[i] = ref_from_bits(h[i]);
    }
    __nv_bfloat16 *d = NULL;
    cudaMalloc((void **)&d, n * 2);
    cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice);
    free(h);
    if (host) *host = f;
    else free(f);
    return d;
}

/* bf16 NaN everywhere: an element the kernel forgot to write fails the check. */
static inline void poison(void *d, size_t n_bf16) { cudaMemset(d, 0xff, n_bf16 * 2); }

static inline float *download(const void *d, size_t n)
{
    uint16_t *h = (uint16_t *)malloc(n * 2);
    float *f = (float *)malloc(n * 4);
    cudaDeviceSynchronize();
    cudaMemcpy(h, d, n * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) f[i] = ref_from_bits(h[i]);
    free(h);
    return f;
}

/* Edges of a graph that fire on their upstream kernel's launch completion (the
 * early edges of kernels/pdl.h's pdl_capture_early); -1 when the graph cannot be read. */
static inline int graph_launch_completion_edges(cudaGraph_t g)
{
    size_t n = 0;
    if (cudaGraphGetEdges(g, NULL, NULL, NULL, &n) != cudaSuccess) return -1;
    if (n == 0) return 0;
    cudaGraphNode_t *from = (cudaGraphNode_t *)malloc(n * sizeof *from), *to = (cudaGraphNode_t *)malloc(n * sizeof *to);
    cudaGraphEdgeData *ed = (cudaGraphEdgeData *)malloc(n * sizeof *ed);
    int count = 0;
    if (cudaGraphGetEdges(g, from, to, ed, &n) != cudaSuccess) count = -1;
    for (size_t i = 0; count >= 0 && i < n; i++)
        count += ed[i].from_port == cudaGraphKernelNodePortLaunchCompletion;
    free(from), free(to), free(ed);
    return count;
}

static inline int bits_equal(const void *a, const void *b, size_t n_bf16)
{
    void *ha = malloc(n_bf16 * 2), *hb = malloc(n_bf16 * 2);
    cudaDeviceSynchronize();
    cudaMemcpy(ha, a, n_bf16 * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(hb, b, n_bf16 * 2, cudaMemcpyDeviceToHost);
    int eq = memcmp(ha, hb, n_bf16 * 2) == 0;
    free(ha);
    free(hb);
    return eq;
}

/* A tiny Llama (head_dim 64, GQA 4:2) whose CPU reference runs in a blink. */
static inline struct model_spec tiny_spec(void)
{
    struct model_spec m;
    memset(&m, 0, sizeof m);
    strcpy(m.name, "tiny-test");
    strcpy(m.architecture, "LlamaForCausalLM");
    m.hidden = 256;
    m.intermediate = 688;
    m.layers = 2;
    m.heads = 4;
    m.kv_heads = 2;
    m.head_dim = 64;
    m.vocab = 512;
    m.max_position = 1024;
    m.rope_theta = 10000.0;
    m.rms_eps = 1e-5;
    m.rope.kind = ROPE_DEFAULT;
    return m;
}

/* tiny_spec's rotary frequencies at head size hd (at most 256), as the kernels read
 * them: hd / 2 floats in device memory, the caller's to free. */
static inline float *dev_tiny_inv_freq(int hd)
{
    struct model_spec m = tiny_spec();
    m.head_dim = hd;
    double inv_d[128];
    float inv_f[128], *dinv = NULL;
    ref_inv_freq(&m, inv_d);
    for (int i = 0; i < hd / 2; i++) inv_f[i] = (float)inv_d[i];
    cudaMalloc((void **)&dinv, hd / 2 * sizeof(float));
    cudaMemcpy(dinv, inv_f, hd / 2 * sizeof(float), cudaMemcpyHostToDevice);
    return dinv;
}

#define REL_TOL_KERNEL 1e-2  /* bf16 operands, fp32 accumulation (METHOD.md) */
#define REL_TOL_MODEL 3e-2   /* a whole forward in bf16 against fp32 */

/* One linear-layer case, y[m,n] (+)= x[m,k] w[n,k]^T, for every linear kernel's
 * test: random operands (y poisoned unless accumulating), then the CPU check. */
struct linear_case {
    int m, n, k, accumulate;
    __nv_bfloat16 *x, *w, *y;
    float *hx, *hw, *hy;
};

static inline void linear_case_setup(struct linear_case *c, int m, int n, int k, int accumulate, uint64_t seed)
{
    *c = (struct linear_case){.m = m, .n = n, .k = k, .accumulate = accumulate};
    c->x = dev_random((size_t)m * k, 1.0f, seed, &c->hx);
    c->w = dev_random((size_t)n * k, 0.1f, seed + 1, &c->hw);
    c->y = dev_random((size_t)m * n, 1.0f, seed + 2, &c->hy);
    if (!accumulate) poison(c->y, (size_t)m * n);
}

/* Compares y with the fp32 reference, names the kernel on failure, frees the case.
 * Returns 1 if the kernel call (bad) or the comparison failed. */
static inline int linear_case_finish(struct linear_case *c, const char *kernel, int bad)
{
    size_t mn = (size_t)c->m * c->n;
    float *ref = (float *)malloc(mn * 4);
    ref_matmul(c->hx, c->hw, ref, c->m, c->n, c->k);
    if (c->accumulate)
        for (size_t i = 0; i < mn; i++) ref[i] += c->hy[i];
    float *got = download(c->y, mn);
    double e = ref_rel_error(got, ref, mn);
    if (!(e <= REL_TOL_KERNEL)) {
        fprintf(stderr, "  %s M=%d N=%d K=%d acc=%d: rel error %g\n", kernel, c->m, c->n, c->k,
                c->accumulate, e);
        bad = 1;
    }
    cudaFree(c->x), cudaFree(c->w), cudaFree(c->y);
    free(c->hx), free(c->hw), free(c->hy), free(ref), free(got);
    return bad;
}

/* A fused gate-up kernel (SwiGLU in its epilogue) against the plain product then
 * k_swiglu, bit for bit: K 4096, intermediate sizes 344 (not a multiple of a
 * block's columns) and 11008, x [M, K] and w [2 inter, K] random from seeds
 * seed + v and seed + 2 + v, at each of the n_ms row counts ms[i].
 * product(x, w, gu, m, 2 inter) writes the plain product; fused(x, w, act, m,
 * inter, i) the fused one (i: the row count's index, for the settings it varies). */
template <typename P, typename F>
static inline void fused_swiglu_case(int *failures_, int M, const int *ms, int n_ms, uint64_t seed, P product,
                                     F fused)
{
    const int K = 4096, inter[2] = {344, 11008};
    for (int v = 0; v < 2; v++) {
        const int I = inter[v];
        __nv_bfloat16 *x = dev_random((size_t)M * K, 1.0f, seed + v, NULL);
        __nv_bfloat16 *w = dev_random((size_t)2 * I * K, 0.1f, seed + 2 + v, NULL);
        __nv_bfloat16 *gu, *want, *got;
        cudaMalloc((void **)&gu, (size_t)M * 2 * I * 2);
        cudaMalloc((void **)&want, (size_t)M * I * 2);
        cudaMalloc((void **)&got, (size_t)M * I * 2);
        for (int i = 0; i < n_ms; i++) {
            const int m = ms[i];
            poison(got, (size_t)M * I);
            CHECK(product(x, w, gu, m, 2 * I) == 0);
            CHECK(k_swiglu(gu, want, m, I, 0) == 0);
            CHECK(fused(x, w, got, m, I, i) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(want, got, (size_t)m * I));
        }
        cudaFree(x), cudaFree(w), cudaFree(gu), cudaFree(want), cudaFree(got);
    }
}

#define CHECK_REL(got, ref, n, tol)                                                             \
    do {                                                                                        \
        double e_ = ref_rel_error((got), (ref), (n));                                           \
        if (!(e_ <= (tol))) {                                                                   \
            fprintf(stderr, "  %s:%d: relative error %g > %g\n", __FILE__, __LINE__, e_, (double)(tol)); \
            (*failures_)++;                                                                     \
        }                                                                                       \
    } while (0)
#endif
