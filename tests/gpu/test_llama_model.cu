/* The whole kernel core: tiny model against the plain-C forward, decode with the
 * KV cache against prefill, graph replay, microbatches bit for bit, tensor
 * parallelism emulated on one GPU, cpu offload, and the byte count. */
#include "model_test_util.h"
#include "../../kernels/allreduce.h"
#include "../../kernels/llama_internal.h"
#include "../../kernels/pdl.h"

typedef __nv_bfloat16 bf16;

static void model_vs_cpu(int *failures_, struct model_spec m, int batch, int seq)
{
    struct llama_part_desc d = whole_model(&m, batch, 64);
    struct llama_part *p = make_part(&m, &d, 7);
    CHECK(p != NULL);
    if (!p) return;
    struct ref_model r;
    CHECK(ref_model_random(&m, 7, &r) == 0);
    int *tok = (int *)malloc((size_t)batch * seq * sizeof(int));
    random_tokens(tok, batch * seq, m.vocab, 3);
    size_t n = (size_t)batch * seq * m.vocab;
    poison(llama_part_logits(p), n);
    CHECK(forward(p, &m, tok, 0, batch, seq, 0, 0) == 0);
    float *got = download(llama_part_logits(p), n), *ref = (float *)malloc(n * 4);
    CHECK(ref_forward(&r, tok, batch, seq, ref) == 0);
    CHECK_REL(got, ref, n, REL_TOL_MODEL);
    free(got), free(ref), free(tok);
    ref_model_free(&r);
    llama_part_destroy(p);
}

TEST(test_tiny_model_matches_cpu_forward) { model_vs_cpu(failures_, tiny_spec(), 2, 37); }

TEST(test_tied_llama3_hd128_model_matches_cpu_forward)
{
    struct model_spec m = tiny_spec();
    m.heads = 2;
    m.kv_heads = 1;
    m.head_dim = 128;
    m.tie_embeddings = 1;
    m.rope_theta = 500000.0;
    m.rope.kind = ROPE_LLAMA3;
    m.rope.factor = 32;
    m.rope.low_freq_factor = 1;
    m.rope.high_freq_factor = 4;
    m.rope.original_max_position = 64;  /* small, so all three frequency bands occur */
    model_vs_cpu(failures_, m, 3, 29);
}

/* Prefill 20 tokens, then decode 6 one at a time: each step's logits equal the
 * prefill of the longer sequence at that position (bf16 tolerance). */
static void decode_vs_prefill(int *failures_, const int batch)
{
    struct model_spec m = tiny_spec();
    const int p0 = 20, steps = 6, total = p0 + steps, V = m.vocab;
    struct llama_part_desc d = whole_model(&m, batch, 64);
    struct llama_part *p = make_part(&m, &d, 11);
    struct llama_part *full = make_part(&m, &d, 11);
    CHECK(p && full);
    if (!p || !full) return;
    int tok[batch * total];
    random_tokens(tok, batch * total, V, 5);
    CHECK(forward(full, &m, tok, 0, batch, total, 0, 0) == 0);
    float *ref = download(llama_part_logits(full), (size_t)batch * total * V);
    int prompt[batch * p0];
    for (int b = 0; b < batch; b++) memcpy(prompt + b * p0, tok + b * total, p0 * sizeof(int));
    CHECK(forward(p, &m, prompt, 0, batch, p0, 0, 1) == 0);
    for (int s = 0; s < steps; s++) {
        int step_tok[batch];
        for (int b = 0; b < batch; b++) step_tok[b] = tok[b * total + p0 + s];
        poison(llama_part_logits(p), (size_t)batch * V);
        CHECK(forward(p, &m, step_tok, 0, batch, 1, p0 + s, 0) == 0);
        float *got = download(llama_part_logits(p), (size_t)batch * V);
        for (int b = 0; b < batch; b++)
            CHECK_REL(got + (size_t)b * V, ref + ((size_t)b * total + p0 + s) * V, V, 2e-2);
        free(got);
    }
    free(ref);
    llama_part_destroy(p);
    llama_part_destroy(full);
}

TEST(test_decode_with_cache_matches_longer_prefill) { decode_vs_prefill(failures_, 3); }
/* max_batch 1 decodes on the GEMV, not the tensor-core kernel (llama.h) */
TEST(test_decode_of_one_sequence_part_matches_longer_prefill) { decode_vs_prefill(failures_, 1); }

/* Greedy decode captured once in a CUDA graph (position on the device) and
 * replayed gives the same tokens and logit bits as plain launches. The graph's
 * part launches with programmatic dependent launch, so this also checks that
 * kernels starting early wait for their inputs. batch 1 takes the GEMV path; with
 * tail the graph's part leaves each norm to the GEMV before it (tail_norm) while
 * the plain part launches them; with early the graph's kernels after cuBLASLt's
 * (batch 2: the decode class) launch on its launch completion (pdl_set_early). */
static void graph_replay_case(int *failures_, const int batch, int tail, int early)
{
    struct model_spec m = tiny_spec();
    const int p0 = 9, steps = 5, V = m.vocab;
    struct llama_part_desc d = whole_model(&m, batch, 32), dg = d;
    dg.programmatic_launch = 1;
    struct llama_part *a = make_part(&m, &d, 13), *g = make_part(&m, &dg, 13);
    CHECK(a && g);
    if (!a || !g) return;
    a->tail_norm = 0;
    g->tail_norm = tail;
    int prompt[batch * p0];
    random_tokens(prompt, batch * p0, V, 6);
    CHECK(forward(a, &m, prompt, 0, batch, p0, 0, 1) == 0);
    CHECK(forward(g, &m, prompt, 0, batch, p0, 0, 1) == 0);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    int *dpos;
    CUDA_OK(cudaMalloc((void **)&dpos, sizeof(int)));
    int pos = p0;
    CUDA_OK(cudaMemcpy(dpos, &pos, sizeof pos, cudaMemcpyHostToDevice));
    struct llama_call plain0 = {0, batch, p0, 0, NULL, 1};
    CHECK(llama_argmax(a, &plain0, llama_part_tokens(a), 0) == 0);
    CHECK(llama_argmax(g, &plain0, llama_part_tokens(g), 0) == 0);
    CUDA_OK(cudaDeviceSynchronize());
    struct llama_call gc = {0, batch, 1, 0, dpos, 0};
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    const int early_before = pdl_early();
    pdl_set_early(early);
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    int rc = llama_embed(g, &gc, s) || llama_layers(g, 0, m.layers, &gc, s) || llama_head(g, &gc, s) ||
             llama_argmax(g, &gc, llama_part_tokens(g), s) || llama_advance_pos(dpos, 1, s);
    CUDA_OK(cudaStreamEndCapture(s, &graph));
    pdl_set_early(early_before);
    CHECK(rc == 0);
    if (early && batch > 1) CHECK(graph_launch_completion_edges(graph) > 0);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int step = 0; step < steps; step++) {
        struct llama_call c = {0, batch, 1, p0 + step, NULL, 0};
        CHECK(llama_embed(a, &c, 0) == 0 && llama_layers(a, 0, m.layers, &c, 0) == 0 && llama_head(a, &c, 0) == 0 &&
              llama_argmax(a, &c, llama_part_tokens(a), 0) == 0);
        CUDA_OK(cudaGraphLaunch(exec, s));
        CUDA_OK(cudaStreamSynchronize(s));
        CHECK(bits_equal(llama_part_logits(a), llama_part_logits(g), (size_t)batch * V));
        int ta[batch], tg[batch];
        cudaMemcpy(ta, llama_part_tokens(a), sizeof ta, cudaMemcpyDeviceToHost);
        cudaMemcpy(tg, llama_part_tokens(g), sizeof tg, cudaMemcpyDeviceToHost);
        CHECK(!memcmp(ta, tg, sizeof ta));
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    cudaFree(dpos);
    llama_part_destroy(a);
    llama_part_destroy(g);
}

TEST(test_decode_graph_replay_matches_plain_decode)
{
    graph_replay_case(failures_, 2, 0, 0);
    graph_replay_case(failures_, 2, 0, 1);
    graph_replay_case(failures_, 1, 0, 0);
    graph_replay_case(failures_, 1, 1, 0);
}

/* The decode class on gemm_tma for every linear (GEMM_TMA_FORCE at the parts'
 * creation; o and down in its K slices, gate-up through its fused SwiGLU): the
 * steps match the longer prefill, microbatches (1 + 3) give the whole batch's
 * bits, a graph replay with programmatic launch and early edges gives plain
 * launches' bits, and the logits are not those of the cuBLASLt class (it ran). */
TEST(test_decode_on_gemm_tma_matches_prefill_microbatches_and_graphs)
{
    const int mode = gemm_tma_mode();
    gemm_set_tma(GEMM_TMA_FORCE);
    struct model_spec m = tiny_spec();
    const int batch = 4, seq = 13, V = m.vocab, H = m.hidden;
    struct llama_part_desc d = whole_model(&m, batch, 32);
    struct llama_part *w = make_part(&m, &d, 41), *mb = make_part(&m, &d, 41);
    gemm_set_tma(GEMM_TMA_OFF);
    struct llama_part *lt = make_part(&m, &d, 41);
    gemm_set_tma(GEMM_TMA_FORCE);
    CHECK(w && mb && lt);
    if (w && mb && lt) {
        const struct part_dims *x = &w->dims;
        const int D = GEMM_CLASS_DECODE;
        CHECK(gemm_tma_serves(&w->gemm, x->qkv_n, H, D) && gemm_tma_serves(&w->gemm, 2 * x->inter_l, H, D));
        CHECK(gemm_tma_serves(&w->gemm, H, x->q_dim, D) && gemm_ksplit(&w->gemm, H, x->q_dim, D) == 2);
        CHECK(gemm_tma_serves(&w->gemm, H, x->inter_l, D) && gemm_ksplit(&w->gemm, H, x->inter_l, D) == 2);
        CHECK(!gemm_tma_serves(&lt->gemm, x->qkv_n, H, D));
        int tok[batch * seq], step[batch];
        random_tokens(tok, batch * seq, V, 42);
        random_tokens(step, batch, V, 43);
        for (struct llama_part *p : {w, mb, lt}) CHECK(forward(p, &m, tok, 0, batch, seq, 0, 0) == 0);
        CHECK(forward(w, &m, step, 0, batch, 1, seq, 0) == 0);
        CHECK(forward(lt, &m, step, 0, batch, 1, seq, 0) == 0);
        poison(llama_part_logits(mb), (size_t)batch * V);
        CHECK(forward(mb, &m, step, 0, 1, 1, seq, 0) == 0);
        CHECK(forward(mb, &m, step + 1, 1, 3, 1, seq, 0) == 0);
        CHECK(bits_equal(llama_part_logits(w), llama_part_logits(mb), (size_t)batch * V));
        float *got = download(llama_part_logits(w), (size_t)batch * V), *want = download(llama_part_logits(lt), (size_t)batch * V);
        CHECK_REL(got, want, (size_t)batch * V, REL_TOL_KERNEL);
        CHECK(!bits_equal(llama_part_logits(w), llama_part_logits(lt), (size_t)batch * V));
        free(got), free(want);
    }
    for (struct llama_part *p : {w, mb, lt}) llama_part_destroy(p);
    decode_vs_prefill(failures_, 4);
    graph_replay_case(failures_, 4, 0, 1);
    gemm_set_tma(mode);
}

/* A prompt through the short class on gemm_tma (GEMM_TMA_FORCE and
 * gemm_set_short_kslices at the parts' creation, parts of 128 rows) with o and
 * down in 2 K slices: llama_layers, where
 * the next half's norm adds the slices, gives the bits of llama_attention then
 * llama_mlp, which add them at once; microbatches (1 + 3) give the whole batch's
 * bits; the logits are within bf16 tolerance of a part whose gemm_tma takes K whole
 * (gemm_set_kslices(0)), and not its bits (the slices ran). */
TEST(test_prefill_k_slices_on_gemm_tma_match_microbatches_and_unsliced)
{
    const int mode = gemm_tma_mode();
    gemm_set_tma(GEMM_TMA_FORCE);
    gemm_set_short_kslices(1);
    struct model_spec m = tiny_spec();
    const int batch = 4, seq = 13, V = m.vocab, H = m.hidden, S = GEMM_CLASS_SHORT;
    struct llama_part_desc d = whole_model(&m, batch, 32);  /* 128 rows: the short class fits gemm_tma */
    struct llama_part *a = make_part(&m, &d, 47), *b = make_part(&m, &d, 47), *mb = make_part(&m, &d, 47);
    gemm_set_kslices(0);
    struct llama_part *whole = make_part(&m, &d, 47);
    gemm_set_kslices(1);
    gemm_set_short_kslices(0);
    gemm_set_tma(mode);
    CHECK(a && b && mb && whole);
    if (a && b && mb && whole) {
        for (int k : {a->dims.q_dim, a->dims.inter_l}) {
            CHECK(gemm_tma_serves(&a->gemm, H, k, S) && gemm_ksplit(&a->gemm, H, k, S) == 2);
            CHECK(gemm_tma_serves(&whole->gemm, H, k, S) && gemm_ksplit(&whole->gemm, H, k, S) == 0);
        }
        CHECK(gemm_partials_rows(&a->gemm, S) == d.max_rows);
        int tok[batch * seq];
        random_tokens(tok, batch * seq, V, 48);
        const size_t n = (size_t)batch * seq * V;
        for (struct llama_part *p : {a, whole}) CHECK(forward(p, &m, tok, 0, batch, seq, 0, 0) == 0);
        struct llama_call c = {0, batch, seq, 0, NULL, 0};
        cudaMemcpy(llama_part_tokens(b), tok, sizeof tok, cudaMemcpyHostToDevice);
        CHECK(llama_embed(b, &c, 0) == 0);
        for (int l = 0; l < m.layers; l++) CHECK(llama_attention(b, l, &c, 0) == 0 && llama_mlp(b, l, &c, 0) == 0);
        CHECK(llama_head(b, &c, 0) == 0);
        poison(llama_part_logits(mb), n);
        CHECK(forward(mb, &m, tok, 0, 1, seq, 0, 0) == 0);
        CHECK(forward(mb, &m, tok + seq, 1, 3, seq, 0, 0) == 0);
        CHECK(bits_equal(llama_part_hidden(a), llama_part_hidden(b), (size_t)batch * seq * H));
        CHECK(bits_equal(llama_part_logits(a), llama_part_logits(b), n));
        CHECK(bits_equal(llama_part_logits(a), llama_part_logits(mb), n));
        float *got = download(llama_part_logits(a), n), *want = download(llama_part_logits(whole), n);
        CHECK_REL(got, want, n, REL_TOL_KERNEL);
        CHECK(!bits_equal(llama_part_logits(a), llama_part_logits(whole), n));
        free(got), free(want);
    }
    for (struct llama_part *p : {a, b, mb, whole}) llama_part_destroy(p);
}

/* Sequences run as microbatches (1 + 3) give the logits of the whole batch bit for
 * bit, in prefill and in a decode step. */
TEST(test_microbatches_are_bit_identical_to_whole_batch)
{
    struct model_spec m = tiny_spec();
    const int batch = 4, seq = 37, V = m.vocab;
    struct llama_part_desc d = whole_model(&m, batch, 64);
    struct llama_part *w = make_part(&m, &d, 17), *mb = make_part(&m, &d, 17);
    CHECK(w && mb);
    if (!w || !mb) return;
    int tok[batch * seq];
    random_tokens(tok, batch * seq, V, 8);
    CHECK(forward(w, &m, tok, 0, batch, seq, 0, 0) == 0);
    poison(llama_part_logits(mb), (size_t)batch * seq * V);
    CHECK(forward(mb, &m, tok, 0, 1, seq, 0, 0) == 0);
    CHECK(forward(mb, &m, tok + seq, 1, 3, seq, 0, 0) == 0);
    CHECK(bits_equal(llama_part_logits(w), llama_part_logits(mb), (size_t)batch * seq * V));
    int step[batch] = {1, 2, 3, 4};
    CHECK(forward(w, &m, step, 0, batch, 1, seq, 0) == 0);
    CHECK(forward(mb, &m, step, 0, 2, 1, seq, 0) == 0);
    CHECK(forward(mb, &m, step + 2, 2, 2, 1, seq, 0) == 0);
    CHECK(bits_equal(llama_part_logits(w), llama_part_logits(mb), (size_t)batch * V));
    llama_part_destroy(w);
    llama_part_destroy(mb);
}

/* A part sized for 16 sequences (a pipeline stage of a 16-sequence run) called
 * with microbatches of 1, 4 and 11 sequences gives the whole batch's bits: in
 * prefill the GEMM algorithm was tuned for the part's max_rows, in decode the
 * 1-row and 4-row calls stay on the tensor-core kernel of the 16-row call. */
TEST(test_microbatches_of_a_16_sequence_part_are_bit_identical)
{
    struct model_spec m = tiny_spec();
    const int batch = 16, seq = 12, V = m.vocab, split[3][2] = {{0, 1}, {1, 4}, {5, 11}};
    struct llama_part_desc d = whole_model(&m, batch, 16);
    struct llama_part *w = make_part(&m, &d, 31), *mb = make_part(&m, &d, 31);
    CHECK(w && mb);
    if (!w || !mb) return;
    int tok[batch * seq], step[batch];
    random_tokens(tok, batch * seq, V, 14);
    random_tokens(step, batch, V, 15);
    CHECK(forward(w, &m, tok, 0, batch, seq, 0, 0) == 0);
    poison(llama_part_logits(mb), (size_t)batch * seq * V);
    for (int i = 0; i < 3; i++)
        CHECK(forward(mb, &m, tok + split[i][0] * seq, split[i][0], split[i][1], seq, 0, 0) == 0);
    CHECK(bits_equal(llama_part_logits(w), llama_part_logits(mb), (size_t)batch * seq * V));
    CHECK(forward(w, &m, step, 0, batch, 1, seq, 0) == 0);
    poison(llama_part_logits(mb), (size_t)batch * V);
    for (int i = 0; i < 3; i++)
        CHECK(forward(mb, &m, step + split[i][0], split[i][0], split[i][1], 1, seq, 0) == 0);
    CHECK(bits_equal(llama_part_logits(w), llama_part_logits(mb), (size_t)batch * V));
    llama_part_destroy(w);
    llama_part_destroy(mb);
}

/* A one-token step whose o and down take K in 2 slices (gemm_force_ksplit on tiny
 * parts sized for 4 sequences): llama_layers, where the next half's norm adds the
 * slices, gives the bits of llama_attention then llama_mlp, which add them at once;
 * microbatches of 1 and 3 give the whole batch's bits; the logits are within bf16
 * tolerance of an unsplit part's, and not its bits (the slices ran). */
TEST(test_decode_k_slices_fold_into_the_norms_bit_for_bit)
{
    struct model_spec m = tiny_spec();
    const int batch = 4, seq = 13, V = m.vocab, H = m.hidden;
    struct llama_part_desc d = whole_model(&m, batch, 32);
    struct llama_part *a = make_part(&m, &d, 23), *b = make_part(&m, &d, 23), *mb = make_part(&m, &d, 23),
                      *plain = make_part(&m, &d, 23);
    CHECK(a && b && mb && plain);
    if (!a || !b || !mb || !plain) return;
    for (struct llama_part *p : {a, b, mb}) {
        CHECK(gemm_force_ksplit(&p->gemm, H, p->dims.q_dim, 2) == 0);
        CHECK(gemm_force_ksplit(&p->gemm, H, p->dims.inter_l, 2) == 0);
    }
    int tok[batch * seq], step[batch];
    random_tokens(tok, batch * seq, V, 21);
    random_tokens(step, batch, V, 22);
    for (struct llama_part *p : {a, b, mb, plain}) CHECK(forward(p, &m, tok, 0, batch, seq, 0, 0) == 0);
    CHECK(forward(a, &m, step, 0, batch, 1, seq, 0) == 0);
    CHECK(forward(plain, &m, step, 0, batch, 1, seq, 0) == 0);
    struct llama_call c = {0, batch, 1, seq, NULL, 0};
    cudaMemcpy(llama_part_tokens(b), step, sizeof step, cudaMemcpyHostToDevice);
    CHECK(llama_embed(b, &c, 0) == 0);
    for (int l = 0; l < m.layers; l++) CHECK(llama_attention(b, l, &c, 0) == 0 && llama_mlp(b, l, &c, 0) == 0);
    CHECK(llama_head(b, &c, 0) == 0);
    CHECK(forward(mb, &m, step, 0, 1, 1, seq, 0) == 0);
    CHECK(forward(mb, &m, step + 1, 1, 3, 1, seq, 0) == 0);
    CHECK(bits_equal(llama_part_hidden(a), llama_part_hidden(b), (size_t)batch * H));
    CHECK(bits_equal(llama_part_logits(a), llama_part_logits(b), (size_t)batch * V));
    CHECK(bits_equal(llama_part_logits(a), llama_part_logits(mb), (size_t)batch * V));
    float *got = download(llama_part_logits(a), (size_t)batch * V), *want = download(llama_part_logits(plain), (size_t)batch * V);
    CHECK_REL(got, want, (size_t)batch * V, REL_TOL_KERNEL);
    CHECK(!bits_equal(llama_part_logits(a), llama_part_logits(plain), (size_t)batch * V));
    free(got), free(want);
    for (struct llama_part *p : {a, b, mb, plain}) llama_part_destroy(p);
}

TEST(test_layers_equal_attention_then_mlp)
{
    struct model_spec m = tiny_spec();
    struct llama_part_desc d = whole_model(&m, 2, 32);
    struct llama_part *a = make_part(&m, &d, 19), *b = make_part(&m, &d, 19);
    CHECK(a && b);
    if (!a || !b) return;
    int tok[2 * 13];
    random_tokens(tok, 26, m.vocab, 9);
    struct llama_call c = {0, 2, 13, 0, NULL, 0};
    for (struct llama_part *p : {a, b}) {
        cudaMemcpy(llama_part_tokens(p), tok, sizeof tok, cudaMemcpyHostToDevice);
        CHECK(llama_embed(p, &c, 0) == 0);
    }
    CHECK(llama_layers(a, 1, 1, &c, 0) == 0);
    CHECK(llama_attention(b, 1, &c, 0) == 0 && llama_mlp(b, 1, &c, 0) == 0);
    CHECK(bits_equal(llama_part_hidden(a), llama_part_hidden(b), (size_t)26 * m.hidden));
    llama_part_destroy(a);
    llama_part_destroy(b);
}

/* world ranks on one GPU, the all-reduce's residual form replaced by its arithmetic
 * on one device (every rank adds all ranks' partials to its own hidden rows): logits
 * (vocabulary slices side by side) within bf16 tolerance of world 1. */
static void tp_case(int *failures_, struct model_spec m, int world)
{
    const int batch = 2, seq = 21, V = m.vocab, Vl = V / world, H = m.hidden, rows = batch * seq;
    struct llama_part_desc d1 = whole_model(&m, batch, 32);
    struct llama_part *one = make_part(&m, &d1, 23);
    struct llama_part *r[4] = {0};
    for (int k = 0; k < world; k++) {
        struct llama_part_desc d = d1;
        d.rank = k;
        d.world = world;
        r[k] = make_part(&m, &d, 23);
        CHECK(r[k] != NULL);
        if (!r[k]) return;
    }
    int tok[batch * seq];
    random_tokens(tok, batch * seq, V, 10);
    CHECK(forward(one, &m, tok, 0, batch, seq, 0, 0) == 0);
    float *ref = download(llama_part_logits(one), (size_t)rows * V);
    struct llama_call c = {0, batch, seq, 0, NULL, 0};
    const void *partials[4];
    for (int k = 0; k < world; k++) partials[k] = llama_part_tp_partial(r[k]);
    for (int k = 0; k < world; k++) {
        cudaMemcpy(llama_part_tokens(r[k]), tok, sizeof tok, cudaMemcpyHostToDevice);
        CHECK(llama_embed(r[k], &c, 0) == 0);
    }
    for (int l = 0; l < m.layers; l++)
        for (int half = 0; half < 2; half++) {
            for (int k = 0; k < world; k++)
                CHECK((half ? llama_mlp(r[k], l, &c, 0) : llama_attention(r[k], l, &c, 0)) == 0);
            for (int k = 0; k < world; k++)
                CHECK(allreduce_add_partials(llama_part_hidden(r[k]), partials, world, (size_t)rows * H, 0) == 0);
        }
    float *got = (float *)malloc((size_t)rows * V * 4);
    for (int k = 0; k < world; k++) {
        CHECK(llama_head(r[k], &c, 0) == 0);
        float *part = download(llama_part_logits(r[k]), (size_t)rows * Vl);
        for (int i = 0; i < rows; i++) memcpy(got + (size_t)i * V + k * Vl, part + (size_t)i * Vl, Vl * 4);
        free(part);
    }
    CHECK_REL(got, ref, (size_t)rows * V, 2e-2);
    free(got), free(ref);
    llama_part_destroy(one);
    for (int k = 0; k < world; k++) llama_part_destroy(r[k]);
}

TEST(test_tensor_parallel_2_matches_single_gpu) { tp_case(failures_, tiny_spec(), 2); }
TEST(test_tensor_parallel_4_replicates_kv_heads)
{
    struct model_spec m = tiny_spec();
    m.intermediate = 704;  /* 176 columns a rank: 16-byte rows */
    tp_case(failures_, m, 4);
}

TEST(test_cpu_offload_is_bit_identical)
{
    struct model_spec m = tiny_spec();
    struct llama_part_desc d = whole_model(&m, 2, 32), dh = d;
    dh.weights_on_host = 1;
    struct llama_part *a = make_part(&m, &d, 29), *b = make_part(&m, &dh, 29);
    CHECK(a && b);
    if (!a || !b) return;
    CHECK(llama_part_bytes(&m, &dh) < llama_part_bytes(&m, &d));
    int tok[2 * 15];
    random_tokens(tok, 30, m.vocab, 12);
    CHECK(forward(a, &m, tok, 0, 2, 15, 0, 0) == 0);
    CHECK(forward(b, &m, tok, 0, 2, 15, 0, 0) == 0);
    CHECK(bits_equal(llama_part_logits(a), llama_part_logits(b), (size_t)30 * m.vocab));
    llama_part_destroy(a);
    llama_part_destroy(b);
}

TEST(test_part_bytes_is_what_create_takes)
{
    struct model_spec m = tiny_spec();
    m.vocab = 32000;  /* large enough that allocation granularity does not hide it */
    struct llama_part_desc d = whole_model(&m, 8, 512);
    uint64_t want = llama_part_bytes(&m, &d);
    size_t free0, free1, total;
    cudaDeviceSynchronize();
    cudaMemGetInfo(&free0, &total);
    struct llama_part *p = NULL;
    CHECK(llama_part_create(&m, &d, &p) == 0);
    cudaMemGetInfo(&free1, &total);
    double took = (double)free0 - (double)free1;
    if (!(took >= (double)want && took <= (double)want + (8 << 20))) {
        fprintf(stderr, "  llama_part_bytes %llu, create took %.0f bytes\n", (unsigned long long)want, took);
        (*failures_)++;
    }
    llama_part_destroy(p);
    /* a part that cannot fit is refused before cudaMalloc, with the numbers */
    struct model_spec big = tiny_spec();
    big.hidden = 65536;
    big.layers = 80;
    big.intermediate = 1 << 18;
    struct llama_part_desc db = whole_model(&big, 1, 16);
    p = NULL;
    CHECK(llama_part_create(&big, &db, &p) != 0);
    CHECK(p == NULL);
}
