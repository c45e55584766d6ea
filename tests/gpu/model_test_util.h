/* Helpers of the whole-model GPU tests: make a part, run a prefill or a decode
 * step, read logits back. */
#ifndef PB_MODEL_TEST_UTIL_H
#define PB_MODEL_TEST_UTIL_H
#include "../../kernels/llama.h"
#include "kernel_test_util.h"

static inline struct llama_part_desc whole_model(const struct model_spec *m, int max_batch, int max_ctx)
{
    struct llama_part_desc d;
    memset(&d, 0, sizeof d);
    d.world = 1;
    d.n_layers = m->layers;
    d.has_embed = d.has_head = 1;
    d.max_batch = max_batch;
    d.max_context = max_ctx;
    d.max_rows = max_batch * max_ctx;
    return d;
}

static inline struct llama_part *make_part(const struct model_spec *m, const struct llama_part_desc *d, uint64_t seed)
{
    struct llama_part *p = NULL;
    if (llama_part_create(m, d, &p) != 0) return NULL;
    if (llama_part_init_random(p, seed) != 0) {
        llama_part_destroy(p);
        return NULL;
    }
    return p;
}

/* Whole forward of sequences [bo, bo + batch) of one part (world 1): tokens in,
 * logits stay in the part's buffer. */
static inline int forward(struct llama_part *p, const struct model_spec *m, const int *tokens, int bo, int batch,
                          int seq, int pos, int last_only)
{
    struct llama_call c = {bo, batch, seq, pos, NULL, last_only};
    cudaMemcpy(llama_part_tokens(p) + (size_t)bo * seq, tokens, (size_t)batch * seq * sizeof(int),
               cudaMemcpyHostToDevice);
    if (llama_embed(p, &c, 0) || llama_layers(p, 0, m->layers, &c, 0) || llama_head(p, &c, 0)) return 1;
    return cudaDeviceSynchronize() != cudaSuccess;
}

static inline void random_tokens(int *t, int n, int vocab, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int)((s >> 33) % (uint64_t)vocab);
    }
}
#endif
