/* What bench_kernels' two files share: the error exits, the timing and the decode
 * attention's figures (bench_attention.cu). */
#ifndef PB_BENCH_KERNELS_H
#define PB_BENCH_KERNELS_H
#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include "../../kernels/attention.h"
#include "../../kernels/cuda_check.h"
#include "../../kernels/llama_internal.h"
#include "../../kernels/pdl.h"

#define TRY(x) do { if ((x) != 0) { fprintf(stderr, "failed: %s (line %d)\n", #x, __LINE__); exit(1); } } while (0)
#define CU(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

/* Median milliseconds of fn over iters runs after warm-up, timed with events. */
template <typename F> static double time_ms(F fn, int warm, int iters, cudaStream_t s)
{
    for (int i = 0; i < warm; i++) fn();
    CU(cudaStreamSynchronize(s));
    std::vector<double> t;
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    for (int i = 0; i < iters; i++) {
        CU(cudaEventRecord(a, s));
        fn();
        CU(cudaEventRecord(b, s));
        CU(cudaEventSynchronize(b));
        float ms;
        CU(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/* The decode attention (bench_attention.cu). A setting is {keys, warps} as attn_args
 * takes them (keys 0: the default), with the bulk kernel's stages and splits a block
 * (stages 0: the register kernel). */
const char *attn_setting_name(int keys, int warps, int stages = 0, int per_block = 0);
/* The decode attention's arguments for layer l of part p: batch sequences at position
 * pos (on the device when pos_dev is set), the part's default setting. */
struct attn_args decode_attn_args(struct llama_part *p, int l, int batch, int pos, const int *pos_dev);
/* The decode attention alone over every layer of part p at one setting, batch
 * sequences at position pos: plain launches, a graph with programmatic launch, and
 * that graph with the position on the device. Prints all three against the KV bytes
 * at the copy rate; returns the graph's ms. */
double attn_figure(struct llama_part *p, int batch, int pos, int keys, int warps, double copy_gbs, cudaStream_t s,
                   int stages = 0, int per_block = 0);
/* Every decode-attention setting at one batch and context; the fastest under graph
 * replay into best as {keys, warps, stages, splits a block}. */
void attn_sweep(struct llama_part *p, int batch, int pos, double copy_gbs, cudaStream_t s, int best[4]);
/* For a profiler (ncu -k regex:decode_): the default decode attention of two layers of
 * part p, batch sequences at position pos, plain stream launches. */
void attn_profile_launches(struct llama_part *p, int batch, int pos, cudaStream_t s);
#endif
