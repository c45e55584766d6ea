/* Causal attention with grouped-query heads over the KV cache of one layer,
 * [max_batch][hkv][max_ctx][hd]; out is [rows, hq*hd] (call-local rows
 * r = b * seq + t). Query t of sequence b sits at position pos + t and sees keys
 * [0, pos + t]. hd is 64 or 128.
 * Prefill: q is [rows, hq*hd], already roped, and the cache already holds this
 * call's keys and values (k_rope_qkv wrote them).
 * Decode: the kernel ropes itself. It reads the un-roped qkv rows [batch,
 * (hq + 2 hkv) hd] as the qkv GEMV wrote them, ropes the query and the new key
 * (rope.cuh: the bits k_rope_qkv would give), writes the new key and value into
 * the cache at pos, and combines its KV splits in the block that finishes last:
 * one launch where rope, split and combine took three. Two kernels do this (the
 * key-a-lane one, attention.cu, and the spread one, attention_decode_spread.cu),
 * chosen with keys_per_block and warps_per_block. */
#ifndef PB_ATTENTION_H
#define PB_ATTENTION_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>

/* The decode kernel's default: the spread kernel (attention_decode_spread.cu) at
 * 64 keys and 4 warps a block. Measured on an H200 beside the key-a-lane kernel
 * (a warp per 32 keys, 128 keys a block, the default before) and every other
 * setting, Llama-2-7B, 32 layers under graph replay: 1 x 256 keys 0.140 against
 * 0.192 ms, 16 x 256 0.796 against 0.946, 64 x 256 2.476 against 3.107, 1 x 4224
 * 0.878 against 0.977; whole decode steps at 16 and 64 rows 5.823 against 6.060 and
 * 11.489 against 12.370 ms (docs/PERF.md). The fastest at every shape measured but
 * 1 x 256, where 256 keys x 16 warps took 0.122. */
#define ATTN_DECODE_CHUNK 64
#define ATTN_DECODE_WARPS 4
/* The default's kernel (attn_decode_default_stages), all three with the same bits:
 *  - when the batch's heads are so many that a one-wave grid of the bulk-copy
 *    kernel (attention_decode_bulk.cu) in one stage has one block a head, that
 *    kernel in one stage: each block works its head's splits in turn, the next
 *    one's copy under the current one's math, and combines them from its own
 *    shared memory, with no ticket. On an H200, Llama-2-7B, 32 layers under graph
 *    replay, grid for a 640-key cache (docs/PERF.md, 01bede2): 16 x 256 0.645
 *    against 0.814 ms (the register kernel), 64 x 256 2.157 against 2.813 (95% of
 *    the copy rate over the KV bytes); the steps 4.482 against 4.644 and 5.821
 *    against 6.565;
 *  - else from ATTN_DECODE_BULK_SPLITS splits a head (1024 keys), the bulk kernel
 *    in ATTN_DECODE_BULK_STAGES stages, one wave: at 1 x 4224 (66 splits) 0.731
 *    against 0.888 ms, the step 4.220 against 4.288;
 *  - else the register kernel (attention_decode_spread.cu): at 1 x 256 0.158
 *    against 0.170 for the bulk kernel in one stage (0.143 with the grid sized for
 *    the context), whose blocks hold one split each. */
#define ATTN_DECODE_BULK_SPLITS 16
#define ATTN_DECODE_BULK_STAGES 2
#define ATTN_DECODE_CHUNK_MIN 32  /* the smallest size: partials are laid out for it */
/* The spread kernel (attn_args.warps_per_block > 0: a key's row over D/8 lanes,
 * the block's keys split over its warps; attention_decode_spread.cu) takes these
 * {keys a block, warps a block} pairs; the key-a-lane kernel (warps_per_block 0)
 * takes 128 or 256 keys with a warp per 32 keys. */
#define ATTN_DECODE_SPREAD_SETTINGS                                                              \
    {{32, 2}, {32, 4}, {64, 2}, {64, 4}, {64, 8}, {128, 4}, {128, 8}, {128, 16}, {256, 8}, {256, 16}}
#define ATTN_DECODE_SPREAD_COUNT 10

struct attn_args {
    const __nv_bfloat16 *q;                  /* prefill */
    __nv_bfloat16 *k_cache, *v_cache;        /* this layer's cache (decode writes position pos) */
    __nv_bfloat16 *out;
    int batch, seq, batch_offset, pos;
    const int *pos_dev;      /* decode under a graph: position read on the device */
    int hq, hkv, hd, max_ctx;
    float *partials;         /* decode: attn_decode_partials_floats() floats */
    int pdl;                 /* decode kernel: programmatic launch (pdl.h) */
    const __nv_bfloat16 *qkv;  /* decode: the un-roped qkv rows */
    const float *inv_freq;     /* decode: [hd / 2], as k_rope_qkv takes it */
    int *counters;             /* decode: attn_decode_counters() ints, zero before the first call;
                                * each call leaves them zero again */
    int keys_per_block;        /* decode: keys a block (0: the default, ATTN_DECODE_CHUNK keys and
                                * ATTN_DECODE_WARPS warps, warps_per_block unread). With warps_per_block it
                                * sets the splits and the sums' order, and so the bits: fixed for a
                                * part, never chosen per call or from the call's batch */
    int warps_per_block;       /* decode: 0, the key-a-lane kernel (128 or 256 keys); else the spread
                                * kernel at {keys_per_block, warps_per_block}, a pair of
                                * ATTN_DECODE_SPREAD_SETTINGS */
    const int *pos_seq;      /* decode, serving: per-sequence positions [batch_offset + b], -1 for an
                              * empty slot (nothing read or written); pos bounds them (llama.h) */
    int decode_stages;       /* decode, spread kernel: 0, each lane loads its keys into registers
                              * (attention_decode_spread.cu); 1-4, the block copies them into shared
                              * memory that many splits ahead (attention_decode_bulk.cu, chunks of
                              * 32 or 64 keys). The same bits either way */
    int splits_per_block;    /* decode, the bulk kernel (decode_stages > 0, or the default where it
                              * takes it): the splits a block takes (0: as few as fill
                              * the device's resident blocks in one wave). Changes no bit */
};

/* Raise the shared-memory limit of the prefill kernel (once per device). */
int attn_setup(void);
/* Prefill (any seq, pos read on the host): tiled flash attention on tensor cores. */
int attn_prefill(const struct attn_args *a, cudaStream_t s);
/* One query per sequence (seq == 1): rope, split over the KV length, combine. */
int attn_decode(const struct attn_args *a, cudaStream_t s);
size_t attn_decode_partials_floats(int max_batch, int hq, int hd, int max_ctx);
size_t attn_decode_counters(int max_batch, int hq);
/* 1 if attn_decode takes keys_per_block = keys with warps_per_block = warps (keys 0: the default, any warps) */
int attn_decode_setting_supported(int keys, int warps);
/* The copy stages attn_decode takes for the call when it names no setting (0: the
 * register kernel; see ATTN_DECODE_BULK_SPLITS). */
int attn_decode_default_stages(const struct attn_args *a);
/* 1 if the spread setting {keys, warps} runs in `stages` copy stages (attn_args.decode_stages) */
int attn_decode_bulk_supported(int keys, int warps, int stages);
/* Whether a bulk launch of one block a head keeps its partials in shared memory
 * (default 1) or sends them through L2 with tickets, for the whole process: the
 * same bits; the benchmark compares. */
void attn_decode_bulk_set_local(int on);
#endif
