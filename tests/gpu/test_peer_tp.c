/* The peer test for tensor parallelism: the same references and the same
 * verdict as test_peer_transformers.cu (peer_criterion.h), but our side is `tp`
 * run by the CUDA executor on two logical devices of one GPU, its sums through
 * the peer-memory all-reduce (one-shot and two-shot), weights loaded from the
 * reference's model.safetensors and the reference's own prompts (and, where two
 * GPUs are visible, on GPUs 0 and 1 through NCCL). tp adds the shards' bf16
 * partial products to the residual in fp32 in rank order and rounds once (as single's
 * GEMM epilogue does, but the partials are rounded first); the question is whether it stays as close to the fp32 forward as
 * transformers' bf16 does. The llama3 shape has one kv head: tp replicates it. */
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "../../harness/exec/executor.h"
#include "../test.h"
#include "cpu_reference.h"
#include "peer_criterion.h"
#include "peer_cases.h"

/* One tp run of `batch` prompts of `seq` tokens on two devices (two logical
 * devices of GPU 0, or GPUs 0 and 1 for NCCL), `tokens` greedy decode passes
 * after them (0: prefill only); outputs in *out. */
static int run_tp(const struct peer_case *c, const struct model_spec *m, enum allreduce_algo algo,
                  const int *prompt, int batch, int seq, int tokens, struct exec_outputs *out)
{
    int two_gpus = algo == ALLREDUCE_NCCL;
    memset(out, 0, sizeof *out);
    const struct strategy *st = strategy_find("tp");
    struct machine mc = {.gpus = 2, .cpu_memory = 1ull << 34, .policy = MAP_AUTO};
    mc.gpu_memory[0] = mc.gpu_memory[1] = 1ull << 32;
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    static struct placement p;
    if (!st || st->place(m, &w, &mc, &p)) return 1;
    struct program g;
    if (program_plan(st, m, &p, &w, tokens, &g)) return 1;
    struct device_map map = {.n = 2, .ordinal = {0, two_gpus}};
    struct exec_config x = {.m = m, .p = &p, .g = &g, .map = &map, .world = exec_world_single(), .seed = 7,
                            .weights = c->dir, .prompt = prompt, .use_graph = 1, .label = "tp", .allreduce = algo};
    const struct executor_ops *ops = &cuda_executor_ops;
    void *e = NULL;
    double ms;
    int rc = ops->create(&x, &e) || ops->run(e, 0, NULL, &ms) || ops->outputs(e, out);
    if (e) ops->destroy(e);
    program_free(&g);
    return rc;
}

static float *logits_as_float(const struct exec_outputs *o)
{
    size_t n = (size_t)o->rows * o->vocab;
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; f && i < n; i++) f[i] = ref_from_bits(o->logits[i]);
    return f;
}

static void free_outputs(struct exec_outputs *o)
{
    free(o->logits);
    free(o->tokens);
}

static void prefill_case(int *failures_, const struct peer_case *c, const struct model_spec *m,
                         enum allreduce_algo algo)
{
    struct exec_outputs o;
    int rc = run_tp(c, m, algo, c->prefill_tokens, c->prefill_batch, c->prefill_seq, 0, &o);
    CHECK_EQ_INT(rc, 0);
    if (rc || o.rows != c->prefill_batch * c->prefill_seq || o.vocab != c->vocab) {
        CHECK(!"tp prefill gives every position's logits");
        free_outputs(&o);
        return;
    }
    float *ours = logits_as_float(&o);
    struct peer_prefill r;
    peer_measure_prefill(ours, c->prefill_bf16, c->prefill_fp32, o.rows, c->vocab, peer_limits_default.tie_factor,
                         &r);
    char why[512];
    int failed = peer_judge_prefill(&r, &peer_limits_default, why, sizeof why);
    fprintf(stderr,
            "  %s tp(2, %s) prefill %dx%d: rel error vs fp32 ours %.4g, transformers' bf16 %.4g (ratio %.3f); "
            "greedy agreement ours %.4f, transformers' %.4f; vs transformers' bf16 %.4g: %s\n",
            c->name, allreduce_algo_name(algo), c->prefill_batch, c->prefill_seq, r.ours_error, r.theirs_error,
            r.ours_error / r.theirs_error, r.ours_agreement, r.theirs_agreement, r.direct_error,
            failed ? why : "ok");
    CHECK(!failed);
    free(ours);
    free_outputs(&o);
}

/* Free-running greedy decode: token 0 is the argmax of the prompt's last
 * position, token t the one the t-th decode pass picks (the executor hands back
 * the last pass's tokens, so one run per t). */
static int tp_generate(const struct peer_case *c, const struct model_spec *m, int *out)
{
    const int B = c->decode_batch, P = c->prompt_len, T = c->steps, V = c->vocab;
    struct exec_outputs o;
    if (run_tp(c, m, ALLREDUCE_AUTO, c->prompt, B, P, 0, &o) || o.rows != B * P) {
        free_outputs(&o);
        return 1;
    }
    float *z = logits_as_float(&o);
    for (int b = 0; z && b < B; b++) out[b * T] = peer_argmax(z + ((size_t)b * P + P - 1) * V, V);
    free(z);
    free_outputs(&o);
    for (int t = 1; t < T; t++) {
        if (run_tp(c, m, ALLREDUCE_AUTO, c->prompt, B, P, t, &o) || o.count != B) {
            free_outputs(&o);
            return 1;
        }
        for (int b = 0; b < B; b++) out[b * T + t] = o.tokens[b];
        free_outputs(&o);
    }
    return 0;
}

static void decode_case(int *failures_, const struct peer_case *c, const struct model_spec *m)
{
    const int B = c->decode_batch, T = c->steps, V = c->vocab, n = B * T;
    unsigned char *tie = malloc(n);
    int *ours = malloc(n * sizeof *ours);
    for (int i = 0; i < n; i++)
        tie[i] = (unsigned char)peer_near_tie(c->decode_fp32 + (size_t)i * V, c->decode_bf16 + (size_t)i * V, V,
                                              peer_limits_default.tie_factor);
    int rc = tp_generate(c, m, ours);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        struct peer_decode d;
        peer_measure_generated(ours, c->tokens_fp32, tie, B, T, &d);
        char why[256];
        int failed = peer_judge_decode(&d, why, sizeof why);
        fprintf(stderr, "  %s tp(2) generate %dx%d: %d of %d tokens compared (not near-ties), %s\n", c->name, B, T,
                d.compared, d.positions, failed ? why : "all equal to fp32's");
        CHECK(!failed);
    }
    free(tie);
    free(ours);
}

static void prefill_both(int *failures_, const struct peer_case *c, const struct model_spec *m)
{
    prefill_case(failures_, c, m, ALLREDUCE_ONESHOT);
    prefill_case(failures_, c, m, ALLREDUCE_TWOSHOT);
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) == cudaSuccess && gpus >= 2) prefill_case(failures_, c, m, ALLREDUCE_NCCL);
}

TEST(test_peer_tp_prefill_is_as_close_to_fp32_as_transformers_bf16) { peer_for_each_case(failures_, prefill_both); }

TEST(test_peer_tp_generate_picks_fp32_tokens_outside_near_ties) { peer_for_each_case(failures_, decode_case); }
