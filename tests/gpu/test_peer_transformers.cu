/* Our kernel core against transformers on the same weights: the references
 * scripts/make_peer_reference.py writes (folder in PB_PEER_DIR; make test-gpu
 * and scripts/gpu_check.sh write it when python3 has torch and transformers).
 * Both bf16 forwards are judged against the fp32 forward of those weights, by
 * peer_criterion.h: prefill logits of every case, and greedy decode tokens,
 * teacher-forced on the batch and on one-sequence parts (the two decode paths,
 * llama.h) and free running. Tensor parallelism has the same test on two
 * logical devices: test_peer_tp.c. */
#include "model_test_util.h"
#include "peer_criterion.h"
#include "peer_cases.h"

static struct llama_part *load_part(int *failures_, const struct model_spec *m, const struct peer_case *c,
                                    int max_batch, int max_context)
{
    struct llama_part_desc d = whole_model(m, max_batch, max_context);
    struct llama_part *p = NULL;
    CHECK(llama_part_create(m, &d, &p) == 0);
    if (p && llama_part_load_safetensors(p, c->dir) != 0) {
        CHECK(!"weights load from the reference's model.safetensors");
        llama_part_destroy(p);
        p = NULL;
    }
    return p;
}

static void prefill_case(int *failures_, const struct peer_case *c, const struct model_spec *m)
{
    struct llama_part *p = load_part(failures_, m, c, c->prefill_batch, c->prefill_seq);
    if (!p || forward(p, m, c->prefill_tokens, 0, c->prefill_batch, c->prefill_seq, 0, 0) != 0) {
        CHECK(!"prefill runs");
        llama_part_destroy(p);
        return;
    }
    int rows = c->prefill_batch * c->prefill_seq;
    float *ours = download(llama_part_logits(p), (size_t)rows * c->vocab);
    struct peer_prefill r;
    peer_measure_prefill(ours, c->prefill_bf16, c->prefill_fp32, rows, c->vocab, peer_limits_default.tie_factor, &r);
    char why[512];
    int failed = peer_judge_prefill(&r, &peer_limits_default, why, sizeof why);
    fprintf(stderr,
            "  %s prefill %dx%d: rel error vs fp32 ours %.4g, transformers' bf16 %.4g (ratio %.3f); "
            "greedy agreement ours %.4f, transformers' %.4f (%d near-ties); vs transformers' bf16 %.4g: %s\n",
            c->name, c->prefill_batch, c->prefill_seq, r.ours_error, r.theirs_error, r.ours_error / r.theirs_error,
            r.ours_agreement, r.theirs_agreement, r.near_ties, r.direct_error, failed ? why : "ok");
    CHECK(!failed);
    free(ours);
    llama_part_destroy(p);
}

TEST(test_peer_prefill_is_as_close_to_fp32_as_transformers_bf16) { peer_for_each_case(failures_, prefill_case); }

/* One forward pass of the first `batch` sequences, `seq` tokens from position
 * pos, its tokens already on the device; then greedy next tokens into the
 * part's token buffer, where the next pass reads them. */
static int greedy_pass(struct llama_part *p, const struct model_spec *m, int batch, int seq, int pos, int last_only)
{
    struct llama_call c = {0, batch, seq, pos, NULL, last_only};
    if (llama_embed(p, &c, 0) || llama_layers(p, 0, m->layers, &c, 0) || llama_head(p, &c, 0) ||
        llama_argmax(p, &c, llama_part_tokens(p), 0))
        return 1;
    return cudaDeviceSynchronize() != cudaSuccess;
}

/* Teacher-forced decode of `batch` sequences from `first`: prompt, then each
 * step fed the fp32 run's previous token; our logits of every step into
 * logits[(first + b) * steps + t]. */
static int decode_forced(struct llama_part *p, const struct model_spec *m, const struct peer_case *c, int first,
                         int batch, float *logits)
{
    const int V = c->vocab, P = c->prompt_len, T = c->steps;
    int *tok = (int *)malloc((size_t)batch * P * sizeof(int)), rc = 0;
    memcpy(tok, c->prompt + (size_t)first * P, (size_t)batch * P * sizeof(int));
    for (int t = 0; t < T && !rc; t++) {
        if (t == 0) {
            rc = forward(p, m, tok, 0, batch, P, 0, 1);
        } else {
            for (int b = 0; b < batch; b++) tok[b] = c->tokens_fp32[(first + b) * T + t - 1];
            rc = forward(p, m, tok, 0, batch, 1, P + t - 1, 0);
        }
        float *got = rc ? NULL : download(llama_part_logits(p), (size_t)batch * V);
        for (int b = 0; got && b < batch; b++)
            memcpy(logits + ((size_t)(first + b) * T + t) * V, got + (size_t)b * V, (size_t)V * sizeof(float));
        free(got);
    }
    free(tok);
    return rc;
}

/* Free-running greedy decode of the whole batch: our argmax fed back. */
static int decode_generated(struct llama_part *p, const struct model_spec *m, const struct peer_case *c, int *out)
{
    const int B = c->decode_batch, P = c->prompt_len, T = c->steps;
    int *next = (int *)malloc((size_t)B * sizeof(int)), rc = 0;
    cudaMemcpy(llama_part_tokens(p), c->prompt, (size_t)B * P * sizeof(int), cudaMemcpyHostToDevice);
    for (int t = 0; t < T && !rc; t++) {
        rc = greedy_pass(p, m, B, t ? 1 : P, t ? P + t - 1 : 0, t == 0) ||
             cudaMemcpy(next, llama_part_tokens(p), (size_t)B * sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess;
        for (int b = 0; b < B && !rc; b++) out[b * T + t] = next[b];
    }
    free(next);
    return rc;
}

static void judge_decode(int *failures_, const struct peer_case *c, const char *what, const struct peer_decode *d)
{
    char why[256];
    int failed = peer_judge_decode(d, why, sizeof why);
    fprintf(stderr, "    %s %s: %d of %d tokens compared (not near-ties), %s\n", c->name, what, d->compared,
            d->positions, failed ? why : "all equal to fp32's");
    CHECK(!failed);
}

static void argmax_rows(const float *logits, int rows, int vocab, int *out)
{
    for (int r = 0; r < rows; r++) out[r] = peer_argmax(logits + (size_t)r * vocab, vocab);
}

static void decode_case(int *failures_, const struct peer_case *c, const struct model_spec *m)
{
    const int B = c->decode_batch, T = c->steps, V = c->vocab, n = B * T;
    unsigned char *tie = (unsigned char *)malloc(n);
    int *ours = (int *)malloc(n * sizeof(int)), *theirs = (int *)malloc(n * sizeof(int));
    float *logits = (float *)malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) {
        const float *z = c->decode_fp32 + (size_t)i * V;
        tie[i] = (unsigned char)peer_near_tie(z, c->decode_bf16 + (size_t)i * V, V, peer_limits_default.tie_factor);
        CHECK_EQ_INT(c->tokens_fp32[i], peer_argmax(z, V));  /* the reference is consistent */
    }
    /* transformers' own bf16 by the same bar, for scale: its teacher-forced tokens
     * (its logits in the fp32 run's contexts) and its free-running generate */
    struct peer_decode d, g;
    argmax_rows(c->decode_bf16, n, V, theirs);
    peer_measure_forced(theirs, c->tokens_fp32, tie, B, T, &d);
    peer_measure_generated(c->tokens_bf16, c->tokens_fp32, tie, B, T, &g);
    fprintf(stderr, "  %s decode %dx%d after %d-token prompts, %d near-ties; transformers' bf16: teacher-forced %d "
            "of %d differ, generate %d of %d differ%s\n", c->name, B, T, c->prompt_len, d.near_ties, d.mismatches,
            d.compared, g.mismatches, g.compared,
            d.mismatches || g.mismatches ? " (transformers itself misses the bar here)" : "");

    struct llama_part *whole = load_part(failures_, m, c, B, c->prompt_len + T);
    if (whole && decode_forced(whole, m, c, 0, B, logits) == 0) {
        argmax_rows(logits, n, V, ours);
        peer_measure_forced(ours, c->tokens_fp32, tie, B, T, &d);
        fprintf(stderr, "    logits rel error vs fp32 ours %.4g, transformers' bf16 %.4g\n",
                ref_rel_error(logits, c->decode_fp32, (size_t)n * V),
                ref_rel_error(c->decode_bf16, c->decode_fp32, (size_t)n * V));
        judge_decode(failures_, c, "teacher-forced, batch part", &d);
    } else {
        CHECK(!"teacher-forced decode of the batch runs");
    }
    if (whole && decode_generated(whole, m, c, ours) == 0) {
        peer_measure_generated(ours, c->tokens_fp32, tie, B, T, &d);
        judge_decode(failures_, c, "generated, batch part", &d);
    } else {
        CHECK(!"greedy generation runs");
    }
    llama_part_destroy(whole);

    /* max_batch 1 decodes on the GEMV, the batch on the tensor-core kernel (llama.h) */
    struct llama_part *one = load_part(failures_, m, c, 1, c->prompt_len + T);
    int rc = one ? 0 : 1;
    for (int b = 0; b < B && !rc; b++) rc = decode_forced(one, m, c, b, 1, logits);
    CHECK(rc == 0);
    if (rc == 0) {
        argmax_rows(logits, n, V, ours);
        peer_measure_forced(ours, c->tokens_fp32, tie, B, T, &d);
        judge_decode(failures_, c, "teacher-forced, one-sequence part", &d);
    }
    llama_part_destroy(one);
    free(tie), free(ours), free(theirs), free(logits);
}

TEST(test_peer_decode_picks_fp32_tokens_outside_near_ties) { peer_for_each_case(failures_, decode_case); }
