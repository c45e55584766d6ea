/* Filling a part's weights: deterministic random values generated on the GPU, or
 * a Hugging Face safetensors folder read on the host and copied in. Both walk the
 * same pieces (part_pieces), so a shard gets exactly its slice of each tensor. */
#include <stdlib.h>
#include <string.h>
#include "../models/safetensors.h"
#include "cuda_check.h"
#include "llama_internal.h"
#include "weight_hash.h"

__global__ void init_piece_kernel(bf16 *dst, int rows, int cols, int full_cols, int row0, int col0, uint64_t key,
                                  int is_norm)
{
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cols, c = i % cols;
        uint64_t index = (uint64_t)(row0 + r) * full_cols + col0 + c;
        dst[i] = __float2bfloat16(is_norm ? 1.0f : weight_normal(key, index, PB_INIT_STD));
    }
}

static int init_pieces(const struct weight_piece *w, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        uint64_t key = weight_key(seed, w[i].name);
        init_piece_kernel<<<1024, 256>>>(w[i].dst, w[i].rows, w[i].cols, w[i].full_cols, w[i].row0, w[i].col0, key,
                                         w[i].is_norm);
        cudaCheckLaunch();
    }
    return PB_OK;
}

/* Every piece of the part: embedding, its layers, the head. */
typedef int (*piece_fn)(const struct weight_piece *w, int n, void *ctx);

static int for_each_piece(struct llama_part *p, piece_fn fn, void *ctx)
{
    struct weight_piece w[PIECES_MAX];
    if (p->d.has_embed) PB_TRY(fn(w, part_pieces(p, PIECES_EMBED, w), ctx));
    for (int l = 0; l < p->d.n_layers; l++) PB_TRY(fn(w, part_pieces(p, l, w), ctx));
    if (p->d.has_head) PB_TRY(fn(w, part_pieces(p, PIECES_HEAD, w), ctx));
    return PB_OK;
}

static int random_fn(const struct weight_piece *w, int n, void *ctx) { return init_pieces(w, n, *(uint64_t *)ctx); }

int llama_part_init_random(struct llama_part *p, uint64_t seed)
{
    PB_TRY(for_each_piece(p, random_fn, &seed));
    cudaCheck(cudaDeviceSynchronize());
    return PB_OK;
}

struct load_ctx {
    struct st_files files;
    unsigned char *raw;     /* host buffer for a piece's rows as stored */
    uint16_t *conv;         /* the piece in bf16 */
    size_t raw_cap, conv_cap;
};

static int grow(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return PB_OK;
    void *n = realloc(*buf, need);
    if (!n) return pb_fail("out of host memory (%zu bytes for a weight)", need);
    *buf = n;
    *cap = need;
    return PB_OK;
}

static int load_piece(struct load_ctx *c, const struct weight_piece *w)
{
    const struct st_tensor *t = st_find(&c->files, w->name);
    if (!t) return pb_fail("safetensors: tensor %s is missing", w->name);
    int shape_ok = w->is_norm ? (t->ndim == 1 && t->shape[0] == w->full_cols)
                              : (t->ndim == 2 && t->shape[0] == w->full_rows && t->shape[1] == w->full_cols);
    if (!shape_ok) {
        char got[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (w->is_norm) return pb_fail("safetensors: tensor %s has shape [%s], expected [%d]", w->name, got, w->full_cols);
        return pb_fail("safetensors: tensor %s has shape [%s], expected [%d, %d]", w->name, got, w->full_rows,
                       w->full_cols);
    }
    int es = st_dtype_size(t->dtype);
    if (!es) return pb_fail("safetensors: tensor %s has dtype %s (BF16, F16 or F32 expected)", w->name, t->dtype_name);
    size_t row_bytes = (size_t)w->full_cols * es;
    size_t raw_bytes = row_bytes * w->rows, n = (size_t)w->rows * w->cols;
    PB_TRY(grow((void **)&c->raw, &c->raw_cap, raw_bytes));
    PB_TRY(grow((void **)&c->conv, &c->conv_cap, n * 2));
    PB_TRY(st_read(&c->files, t, (uint64_t)w->row0 * row_bytes, raw_bytes, c->raw));
    for (int r = 0; r < w->rows; r++)
        st_to_bf16(t->dtype, c->raw + r * row_bytes + (size_t)w->col0 * es, c->conv + (size_t)r * w->cols, w->cols);
    cudaCheck(cudaMemcpy(w->dst, c->conv, n * 2, cudaMemcpyDefault));
    return PB_OK;
}

static int load_fn(const struct weight_piece *w, int n, void *ctx)
{
    for (int i = 0; i < n; i++) PB_TRY(load_piece((struct load_ctx *)ctx, &w[i]));
    return PB_OK;
}

int llama_part_load_safetensors(struct llama_part *p, const char *folder)
{
    struct load_ctx c;
    memset(&c, 0, sizeof c);
    PB_TRY(st_open(folder, &c.files));
    int rc = for_each_piece(p, load_fn, &c);
    st_close(&c.files);
    free(c.raw);
    free(c.conv);
    return rc;
}
