/* The kernel core's per-sequence decode positions (llama_call.pos_seq), which
 * serving's continuous batching runs on: one decode call over slots at different
 * positions gives each sequence the bits of a decode of it alone at its own
 * position, and a slot marked -1 leaves its KV cache as it was. */
#include "model_test_util.h"

/* Prefill sequence b alone into slot b with its own prompt length. */
static int prefill_slot(struct llama_part *p, const struct model_spec *m, const int *tok, int b, int len)
{
    return forward(p, m, tok, b, 1, len, 0, 1);
}

TEST(test_decode_at_per_sequence_positions_matches_each_sequence_alone)
{
    struct model_spec m = tiny_spec();
    const int batch = 4, V = m.vocab, len[4] = {9, 17, 5, 30};
    struct llama_part_desc d = whole_model(&m, batch, 64);
    d.max_rows = batch * 32;
    struct llama_part *p = make_part(&m, &d, 23), *ref = make_part(&m, &d, 23);
    CHECK(p && ref);
    if (!p || !ref) return;
    int tok[4][32];
    for (int b = 0; b < batch; b++) random_tokens(tok[b], 32, V, 40 + b);
    for (int b = 0; b < batch; b++) {
        CHECK(prefill_slot(p, &m, tok[b], b, len[b]) == 0);
        CHECK(prefill_slot(ref, &m, tok[b], b, len[b]) == 0);
    }
    /* Slot 2 sits the step out (-1); two steps, so the second reads what the first wrote. */
    int pos[4] = {len[0], len[1], -1, len[3]}, *d_pos = NULL;
    CUDA_OK(cudaMalloc((void **)&d_pos, sizeof pos));
    for (int step = 0; step < 2; step++) {
        int next[4] = {3 + step, 7 + step, 11, 13 + step};
        CUDA_OK(cudaMemcpy(d_pos, pos, sizeof pos, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(llama_part_tokens(p), next, sizeof next, cudaMemcpyHostToDevice));
        struct llama_call c = {0, batch, 1, pos[3], NULL, 0, d_pos};
        poison(llama_part_logits(p), (size_t)batch * V);
        CHECK(llama_embed(p, &c, 0) == 0 && llama_layers(p, 0, m.layers, &c, 0) == 0 && llama_head(p, &c, 0) == 0);
        CUDA_OK(cudaDeviceSynchronize());
        for (int b = 0; b < batch; b++) {
            if (pos[b] < 0) continue;
            CHECK(forward(ref, &m, &next[b], b, 1, 1, pos[b], 0) == 0);
            CHECK(bits_equal((const __nv_bfloat16 *)llama_part_logits(p) + (size_t)b * V,
                             (const __nv_bfloat16 *)llama_part_logits(ref) + (size_t)b * V, (size_t)V));
            pos[b]++;
        }
    }
    /* Slot 2's cache is its prefill's still: its first decode matches the reference's. */
    int two = 5;
    CHECK(forward(p, &m, &two, 2, 1, 1, len[2], 0) == 0);
    CHECK(forward(ref, &m, &two, 2, 1, 1, len[2], 0) == 0);
    CHECK(bits_equal((const __nv_bfloat16 *)llama_part_logits(p) + (size_t)2 * V,
                     (const __nv_bfloat16 *)llama_part_logits(ref) + (size_t)2 * V, (size_t)V));
    cudaFree(d_pos);
    llama_part_destroy(p);
    llama_part_destroy(ref);
}
