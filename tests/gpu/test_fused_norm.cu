/* The residual GEMV that also writes the next norm (gemm_rows_then_norm) gives
 * the bits of gemm_rows then k_rmsnorm, call after call and from a graph (its
 * ticket returns to zero), and a part that fuses its decode norms gives the
 * logits of one that does not, in plain launches, in a replayed graph under
 * programmatic launch, and split into two parts. */
#include "../../kernels/gemm.h"
#include "../../kernels/layer_kernels.h"
#include "../../kernels/llama_internal.h"
#include "model_test_util.h"

typedef __nv_bfloat16 bf16;

static const struct gemv_wave_cfg wave_default = gemv_wave_get();

static int ticket_is_zero(const int *t)
{
    int v = -1;
    cudaMemcpy(&v, t, sizeof v, cudaMemcpyDeviceToHost);
    return v == 0;
}

TEST(test_gemv_then_norm_equals_gemv_then_rmsnorm)
{
    const int M = 13, N = 4104, K = 688;
    bf16 *x = dev_random((size_t)M * K, 1.0f, 600, NULL), *w = dev_random((size_t)N * K, 0.1f, 601, NULL);
    bf16 *nw = dev_random(N, 1.0f, 602, NULL), *h0 = dev_random((size_t)M * N, 2.0f, 603, NULL);
    bf16 *hw, *hg, *nwant, *ngot;
    cudaMalloc((void **)&hw, (size_t)M * N * 2);
    cudaMalloc((void **)&hg, (size_t)M * N * 2);
    cudaMalloc((void **)&nwant, (size_t)M * N * 2);
    cudaMalloc((void **)&ngot, (size_t)M * N * 2);
    int *ticket;
    cudaMalloc((void **)&ticket, sizeof(int));
    cudaMemset(ticket, 0, sizeof(int));
    const int ms[5] = {1, 2, 3, 8, 13}, ks[2] = {1, 4};
    for (int s = 0; s < 2; s++) {
        gemv_wave_set({1, ks[s], ks[s]});
        for (int i = 0; i < 5; i++) {
            const int m = ms[i];
            cudaMemcpy(hw, h0, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);
            cudaMemcpy(hg, h0, (size_t)M * N * 2, cudaMemcpyDeviceToDevice);
            poison(nwant, (size_t)M * N), poison(ngot, (size_t)M * N);
            CHECK(gemm_rows(x, w, hw, m, N, K, 1, 0) == 0);
            CHECK(k_rmsnorm(hw, 1, 0, nw, nwant, m, N, 1e-5f, 0) == 0);
            CHECK(gemm_rows_then_norm(x, w, hg, m, N, K, 1, nw, 1e-5f, ngot, ticket, 0, i & 1) == 0);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            CHECK(bits_equal(hw, hg, (size_t)m * N));
            CHECK(bits_equal(nwant, ngot, (size_t)m * N));
            CHECK(ticket_is_zero(ticket));
        }
    }
    gemv_wave_set(wave_default);
    /* two calls captured in a graph, replayed twice: the same bits each time */
    cudaStream_t st;
    cudaStreamCreate(&st);
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    int rc = gemm_rows_then_norm(x, w, hg, 1, N, K, 0, nw, 1e-5f, ngot, ticket, st, 1);
    rc |= gemm_rows_then_norm(ngot, w, hg + N, 1, N, K, 0, nw, 1e-5f, ngot + N, ticket, st, 1);
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess && rc == 0);
    CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
    CHECK(gemm_rows(x, w, hw, 1, N, K, 0, 0) == 0 && k_rmsnorm(hw, 1, 0, nw, nwant, 1, N, 1e-5f, 0) == 0);
    CHECK(gemm_rows(nwant, w, hw + N, 1, N, K, 0, 0) == 0 && k_rmsnorm(hw + N, 1, 0, nw, nwant + N, 1, N, 1e-5f, 0) == 0);
    for (int r = 0; r < 2; r++) {
        poison(ngot, (size_t)2 * N);
        CHECK(cudaGraphLaunch(ge, st) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess);
        CHECK(bits_equal(nwant, ngot, (size_t)2 * N) && bits_equal(hw, hg, (size_t)2 * N));
        CHECK(ticket_is_zero(ticket));
    }
    CHECK(gemm_rows_then_norm(x, w, hg, 1, N, K, 0, NULL, 1e-5f, ngot, ticket, 0) != 0);
    CHECK(gemm_rows_then_norm(x, w, hg, 1, 100, K, 0, nw, 1e-5f, ngot, ticket, 0) != 0);
    cudaGraphExecDestroy(ge), cudaGraphDestroy(g), cudaStreamDestroy(st);
    cudaFree(x), cudaFree(w), cudaFree(nw), cudaFree(h0), cudaFree(hw), cudaFree(hg), cudaFree(nwant), cudaFree(ngot);
    cudaFree(ticket);
}

/* Prefill then `steps` decode steps of one sequence on `parts` parts splitting the
 * layers (the first with the embedding, the last with the head); logits of each
 * step into out[step]. graph: the steps replay one captured graph under
 * programmatic launch. */
static int decode_logits(const struct model_spec *m, int fuse, int parts, int graph, float **out, int steps)
{
    const int p0 = 7;
    struct llama_part *pp[2] = {NULL, NULL};
    int split = parts == 2 ? m->layers / 2 : m->layers;
    for (int i = 0; i < parts; i++) {
        struct llama_part_desc d = whole_model(m, 1, 32);
        d.first_layer = i ? split : 0;
        d.n_layers = parts == 1 ? m->layers : i ? m->layers - split : split;
        d.has_embed = i == 0;
        d.has_head = i == parts - 1;
        d.programmatic_launch = graph;
        pp[i] = make_part(m, &d, 41);
        if (!pp[i]) return 1;
        pp[i]->fuse_norm = fuse;
    }
    struct llama_part *first = pp[0], *last = pp[parts - 1];
    int tok[p0];
    random_tokens(tok, p0, m->vocab, 8);
    cudaMemcpy(llama_part_tokens(first), tok, sizeof tok, cudaMemcpyHostToDevice);
    const size_t hbytes = (size_t)m->hidden * 2;
    cudaStream_t s;
    cudaStreamCreate(&s);
    int *dpos;
    cudaMalloc((void **)&dpos, sizeof(int));
    auto step = [&](const struct llama_call *c) {
        int rc = llama_embed(first, c, s);
        for (int i = 0; i < parts; i++) {
            if (i) rc |= cudaMemcpyAsync(llama_part_hidden(pp[i]), llama_part_hidden(pp[i - 1]),
                                         (size_t)c->seq * hbytes, cudaMemcpyDeviceToDevice, s) != cudaSuccess;
            rc |= llama_layers(pp[i], pp[i]->d.first_layer, pp[i]->d.n_layers, c, s);
        }
        /* a fusing part leaves the head's norm written by its last product */
        if (fuse && c->seq == 1) rc |= !(last->pending.valid && last->pending.layer == -1);
        rc |= llama_head(last, c, s);
        rc |= llama_head(last, c, s);  /* a second head call takes no fused norm: the same logits */
        rc |= llama_argmax(last, c, llama_part_tokens(last), s);
        if (parts == 2) rc |= cudaMemcpyAsync(llama_part_tokens(first), llama_part_tokens(last), sizeof(int),
                                              cudaMemcpyDeviceToDevice, s) != cudaSuccess;
        return rc;
    };
    struct llama_call pre = {0, 1, p0, 0, NULL, 1};
    int rc = step(&pre);
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    int pos = p0;
    cudaMemcpy(dpos, &pos, sizeof pos, cudaMemcpyHostToDevice);
    struct llama_call dc = {0, 1, 1, 0, dpos, 0};
    if (graph) {
        rc |= cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess;
        rc |= step(&dc) | llama_advance_pos(dpos, 1, s);
        rc |= cudaStreamEndCapture(s, &g) != cudaSuccess;
        rc |= cudaGraphInstantiate(&ge, g, 0) != cudaSuccess;
    }
    for (int i = 0; i < steps && !rc; i++) {
        struct llama_call c = {0, 1, 1, p0 + i, NULL, 0};
        rc |= graph ? cudaGraphLaunch(ge, s) != cudaSuccess : step(&c);
        rc |= cudaStreamSynchronize(s) != cudaSuccess;
        out[i] = download(llama_part_logits(last), m->vocab);
    }
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    cudaFree(dpos);
    for (int i = 0; i < parts; i++) llama_part_destroy(pp[i]);
    return rc;
}

TEST(test_fused_decode_norms_give_the_same_logits)
{
    struct model_spec m = tiny_spec();
    enum { STEPS = 4 };
    for (int parts = 1; parts <= 2; parts++)
        for (int graph = 0; graph < 2; graph++) {
            float *want[STEPS] = {}, *got[STEPS] = {};
            CHECK(decode_logits(&m, 0, parts, graph, want, STEPS) == 0);
            CHECK(decode_logits(&m, 1, parts, graph, got, STEPS) == 0);
            for (int i = 0; i < STEPS; i++) {
                CHECK(want[i] && got[i] && !memcmp(want[i], got[i], (size_t)m.vocab * sizeof(float)));
                free(want[i]), free(got[i]);
            }
        }
}
