/* The kernel core: a bf16 Llama forward that every strategy shares. It knows
 * shards (rank, world) but nothing of strategies. Host-callable from C.
 * Every function returns PB_OK or PB_ERR after printing what failed;
 * none allocates device memory except llama_part_create. */
#ifndef PB_LLAMA_H
#define PB_LLAMA_H
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
/* inside the C block: model_spec.h has no guards of its own and .cu files include this */
#include "../models/model_spec.h"

/* Which slice of the model one device holds. For tensor parallelism rank/world
 * split heads (kv heads replicated when kv_heads < world), MLP columns and
 * lm_head rows (vocabulary); with world == 1 a part holds whole layers. */
struct llama_part_desc {
    int device;                 /* CUDA device ordinal the memory lives on */
    int rank, world;            /* tensor-parallel shard */
    int first_layer, n_layers;  /* layers held: [first_layer, first_layer + n_layers) */
    int has_embed, has_head;    /* embed_tokens; final norm + lm_head */
    int max_batch;              /* sequences in the KV cache: the run's whole batch, also for a
                                 * pipeline stage that sees it in microbatches. It picks the
                                 * decode path (below) */
    int max_context;            /* KV cache length per sequence */
    int max_rows;               /* tokens of the whole batch in one pass (max_batch x longest seq);
                                 * the hidden/logits/token buffers hold this many rows. Short
                                 * prompts' GEMM algorithms are tuned at this many rows (below) */
    int weights_on_host;        /* cpu offload: weights in pinned host memory, streamed per call */
    int programmatic_launch;    /* our kernels with programmatic dependent launch (kernels/pdl.h):
                                 * each starts while the one before it ends. A graph captured from
                                 * such calls has programmatic edges: introspect it with edge data */
};

/* Paths are chosen per part, never per call, so that a microbatch gives exactly
 * the bits the whole batch gives for the same rows (both depend on the part alone):
 *  - decode (one-token steps): max_batch == 1 runs every linear on the CUDA-core
 *    GEMV, the fastest at one row; any larger max_batch runs them through
 *    cuBLASLt's decode class (one algorithm per shape, timed at max_batch rows and
 *    shared by the process's parts of that max_batch, as the short prompts' are),
 *    whatever rows a call has, so a 1-row microbatch of a 16-sequence pipeline
 *    takes the algorithms the single run does. A whole part's (world 1) o and down
 *    may take K in slices whose partials the next norm adds (gemm.h:
 *    gemm_prepare_residual), a choice of the same timing. The paths give different
 *    bits, so parts of one run must share max_batch;
 *  - prefill of prompts up to 256 tokens: one cuBLASLt algorithm per shape, timed
 *    at the part's max_rows (capped at 512) and shared by every part of the process
 *    with that max_rows; a part of at most 128 rows may take gemm_tma instead, a
 *    whole part's o and down with K in slices as above once gemm_set_short_kslices
 *    allows it (off by default). Separate processes (MPI
 *    ranks) time separately: a near tie goes to the same candidate
 *    (kernels/gemm_lt.cu), but that is not a guarantee. */
struct llama_part;              /* opaque: weights, KV cache, scratch, cuBLAS handle */

/* Device bytes a part needs (weights, KV cache, activations, workspace), to refuse early. */
uint64_t llama_part_bytes(const struct model_spec *m, const struct llama_part_desc *d);

/* Allocate a part on d->device (the caller has set the device). */
int llama_part_create(const struct model_spec *m, const struct llama_part_desc *d, struct llama_part **out);
void llama_part_destroy(struct llama_part *p);

/* Weights: deterministic random values (normal, std 0.02; norms 1). Each element
 * is a function of (seed, tensor name, element index in the full tensor), so any
 * placement or shard sees exactly the values the single-GPU model has. */
int llama_part_init_random(struct llama_part *p, uint64_t seed);

/* Weights from a Hugging Face folder (model.safetensors or a sharded index);
 * bf16, fp16 or fp32 on disk are converted to bf16. */
int llama_part_load_safetensors(struct llama_part *p, const char *folder);

/* Hidden state and logit buffers the part owns (bf16, [max_rows, hidden] and
 * [max_rows, vocab / world]); copies between devices target these. A call for
 * sequences [batch_offset, batch_offset + batch) reads and writes rows
 * [batch_offset * seq, (batch_offset + batch) * seq) of them (last_only head:
 * rows [batch_offset, batch_offset + batch) of logits), so pipeline microbatches
 * in flight on different devices never share rows. Scratch (q/k/v, MLP) is
 * shared: calls on one part are serialised on one stream. */
void *llama_part_hidden(struct llama_part *p);
/* A tensor-parallel part's (world > 1, with layers) partial products, rows as in
 * the hidden buffer (the same offsets); NULL for any other part. */
void *llama_part_tp_partial(struct llama_part *p);
void *llama_part_logits(struct llama_part *p);
int *llama_part_tokens(struct llama_part *p);  /* device int[max_rows] token ids */

/* One forward call on `rows` = batch * seq tokens of sequences
 * [batch_offset, batch_offset + batch), positions [pos, pos + seq) of each. */
struct llama_call {
    int batch_offset, batch, seq;
    int pos;                    /* first position (0 for prefill); ignored if pos_device */
    const int *pos_device;      /* decode under a CUDA graph: position read on the device */
    int last_only;              /* head: logits of each sequence's last position only */
    const int *pos_seq;         /* decode, serving: device int[max_batch], sequence k's position at
                                 * [k] (-1: no sequence there, its rows are left alone in the KV
                                 * cache); pos then bounds them all. NULL: every sequence at pos */
};

int llama_embed(struct llama_part *p, const struct llama_call *c, cudaStream_t s);
/* Layers [layer, layer + count) of this part, in place on the hidden buffer.
 * Layer numbers are the model's (0 .. layers-1), inside [first_layer, first_layer + n_layers). */
int llama_layers(struct llama_part *p, int layer, int count, const struct llama_call *c, cudaStream_t s);
/* Tensor parallel halves (world > 1): the output projection (o, down) writes this
 * rank's partial product to the call's rows of llama_part_tp_partial and leaves the
 * hidden buffer (the residual, the same on every rank) as it was; the all-reduce's
 * residual form (allreduce.h: hidden = bf16(hidden + sum of the ranks' partials),
 * rounded once) completes the residual add. With world 1 the GEMM adds it. */
int llama_attention(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s);
int llama_mlp(struct llama_part *p, int layer, const struct llama_call *c, cudaStream_t s);
int llama_head(struct llama_part *p, const struct llama_call *c, cudaStream_t s);
/* Greedy: argmax over this part's logits of each sequence's last row -> next tokens,
 * written to d_next[batch_offset + b] (so d_next may be llama_part_tokens for decode). */
int llama_argmax(struct llama_part *p, const struct llama_call *c, int *d_next, cudaStream_t s);
/* The same over tensor-parallel logits gathered on one device: `world` slabs, rank w's
 * [max_rows, vocab_local] logits at gathered + w * rank_stride elements (bf16), rank w
 * holding token ids [w * vocab_local, (w + 1) * vocab_local). */
int llama_argmax_gathered(const void *gathered, int world, size_t rank_stride, int vocab_local,
                          const struct llama_call *c, int *d_next, cudaStream_t s);
/* *pos_device += by on stream s: advances a graph-captured decode step's position. */
int llama_advance_pos(int *pos_device, int by, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
