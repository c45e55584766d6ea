/* Measured serving (harness/serve/serve_exec.c through the CUDA executor's step
 * op): a served stream, whose requests join and leave the batch at step
 * boundaries in reused KV slots, each sequence at its own position, gives every
 * request the tokens a plain greedy generate of its prompt alone gives (the
 * kernel core on one whole-model part sized as the executor's, so prefill and
 * decode take the same kernels and bits). For single, and for naive and the
 * pipeline (two groups in flight) on two logical devices of one GPU. tp on
 * logical devices (peer-memory sums) serves the stream through as well; its
 * tokens are not compared: its logits are within bf16 tolerance of single's,
 * not bit-identical, and a near tie may go the other way. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cuda_runtime.h>
#include "../../harness/exec/executor.h"
#include "../../harness/serve/serve_exec.h"
#include "../../harness/serve/serve_stream.h"
#include "../../kernels/llama.h"
#include "../test.h"
#include "tiny_model.h"

#define N_REQ 7
#define SEED 11


/* Lengths that make requests join while others decode, finish at different steps
 * (one after its prefill alone) and reuse the slots given back; arrivals spread
 * over the first milliseconds so several prefills land between decode steps. */
static void make_stream(struct serve_request *req)
{
    static const int prompt[N_REQ] = {5, 9, 3, 12, 7, 4, 10}, output[N_REQ] = {4, 2, 6, 1, 5, 3, 7};
    static const double arrival[N_REQ] = {0, 0, 0.2, 0.5, 1.0, 3.0, 3.0};
    for (int i = 0; i < N_REQ; i++) req[i] = (struct serve_request){i, arrival[i], prompt[i], output[i]};
}

/* Plain greedy generate of one prompt: prefill, then one token at a time, on one
 * whole-model part with the executor's sizes (its decode path and prefill
 * algorithms depend on them). 0 on success. */
static int greedy_generate(const struct model_spec *m, int slots, int max_prompt, int max_context,
                           const struct serve_request *r, int *out)
{
    struct llama_part_desc d = {.device = 0, .rank = 0, .world = 1, .n_layers = m->layers, .has_embed = 1,
                                .has_head = 1, .max_batch = slots, .max_context = max_context,
                                .max_rows = slots * max_prompt, .programmatic_launch = 1};
    struct llama_part *p = NULL;
    int *d_next = NULL, prompt[64];
    int rc = cudaSetDevice(0) != cudaSuccess || llama_part_create(m, &d, &p) || llama_part_init_random(p, SEED) ||
             cudaMalloc((void **)&d_next, sizeof(int)) != cudaSuccess;
    serve_prompt_tokens(SEED, r->id, r->prompt_tokens, m->vocab, prompt);
    int pos = 0, seq = r->prompt_tokens;
    const int *in = prompt;
    for (int k = 0; !rc && k < r->output_tokens; k++) {
        struct llama_call c = {.batch_offset = 0, .batch = 1, .seq = seq, .pos = pos, .last_only = 1};
        rc = cudaMemcpy(llama_part_tokens(p), in, (size_t)seq * sizeof(int), cudaMemcpyHostToDevice) != cudaSuccess ||
             llama_embed(p, &c, 0) || llama_layers(p, 0, m->layers, &c, 0) || llama_head(p, &c, 0) ||
             llama_argmax(p, &c, d_next, 0) ||
             cudaMemcpy(&out[k], d_next, sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess;
        pos += seq;
        seq = 1;
        in = &out[k];
    }
    cudaFree(d_next);
    if (p) llama_part_destroy(p);
    return rc;
}

/* Serve the stream under `name` on the logical devices `ordinal` with `groups`
 * groups of at most ceil(max_batch / groups); on success x holds every request's
 * tokens (the caller closes it). */
static int serve_stream(const char *name, int n_dev, const int *ordinal, int max_batch, int groups,
                        enum allreduce_algo allreduce, const struct serve_request *req, struct model_spec *m,
                        struct serve_exec *x, struct serve_request_result *res)
{
    static struct placement p;
    static struct device_map map;
    memset(x, 0, sizeof *x);
    if (model_spec_load(gpu_tiny_config(), m)) return 1;
    const struct strategy *st = strategy_find(name);
    struct machine mc = {.gpus = n_dev, .cpu_memory = 1ull << 34, .policy = MAP_AUTO};
    for (int d = 0; d < n_dev; d++) mc.gpu_memory[d] = 1ull << 30;
    struct workload w = {.batch = max_batch, .seq = 8, .context = 8, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    if (!st || st->place(m, &w, &mc, &p)) return 1;
    map.n = n_dev;
    for (int d = 0; d < n_dev; d++) map.ordinal[d] = ordinal[d];
    struct serve_exec_config c = {.ops = &cuda_executor_ops, .m = m, .st = st, .p = &p, .map = &map,
                                  .dtype = DTYPE_BF16, .seed = SEED, .allreduce = allreduce};
    if (serve_exec_open(x, &c, req, N_REQ, max_batch, groups, 1 << 20) || serve_exec_reset(x, req, N_REQ)) return 1;
    struct serve_policy pol = {.max_batch = max_batch, .groups = groups, .kv_capacity_tokens = 1 << 20,
                               .max_context = m->max_position};
    struct serve_executor ex = serve_exec_executor(x);
    struct serve_totals tot;
    return serve_engine_run(&ex, &pol, req, N_REQ, res, &tot);
}

/* The test stream served by `name` on n_dev logical devices of GPU 0; 0 on success,
 * else the error printed. */
static int serve_test_stream(const char *name, int n_dev, int groups, enum allreduce_algo algo,
                             struct serve_request *req, struct model_spec *m, struct serve_exec *x,
                             struct serve_request_result *res)
{
    int ordinal[2] = {0, 0};
    make_stream(req);
    int rc = serve_stream(name, n_dev, ordinal, 3, groups, algo, req, m, x, res);
    if (rc) fprintf(stderr, "  %s on %d logical devices: %s\n", name, n_dev, pb_last_error());
    return rc;
}

static void check_served_equals_generate(int *failures_, const char *name, int n_dev, int groups)
{
    struct serve_request req[N_REQ];
    struct serve_request_result res[N_REQ];
    struct model_spec m;
    struct serve_exec x;
    int rc = serve_test_stream(name, n_dev, groups, ALLREDUCE_AUTO, req, &m, &x, res);
    CHECK_EQ_INT(rc, 0);
    for (int i = 0; !rc && i < N_REQ; i++) {
        int want[16];
        CHECK_EQ_INT(res[i].status, SERVE_DONE);
        CHECK_EQ_INT(greedy_generate(&m, x.slots, x.max_prompt, x.max_context, &req[i], want), 0);
        const int *got = serve_exec_tokens(&x, i);
        int same = got && !memcmp(got, want, (size_t)req[i].output_tokens * sizeof(int));
        if (!same) {
            fprintf(stderr, "  %s, request %d (prompt %d, %d tokens): served", name, i, req[i].prompt_tokens,
                    req[i].output_tokens);
            for (int k = 0; got && k < req[i].output_tokens; k++) fprintf(stderr, " %d", got[k]);
            fprintf(stderr, ", generate");
            for (int k = 0; k < req[i].output_tokens; k++) fprintf(stderr, " %d", want[k]);
            fprintf(stderr, "\n");
        }
        CHECK(same);
    }
    if (!rc) serve_results_free(res, N_REQ);
    serve_exec_close(&x);
}

TEST(test_serve_single_gives_each_request_its_greedy_generate)
{
    check_served_equals_generate(failures_, "single", 1, 1);
}

TEST(test_serve_naive_on_two_logical_devices_gives_each_request_its_greedy_generate)
{
    check_served_equals_generate(failures_, "naive", 2, 1);
}

TEST(test_serve_pipeline_with_two_groups_on_two_logical_devices_gives_each_request_its_greedy_generate)
{
    check_served_equals_generate(failures_, "pipeline", 2, 2);
}

TEST(test_serve_tp_on_two_logical_devices_serves_every_request)
{
    struct serve_request req[N_REQ];
    struct serve_request_result res[N_REQ];
    struct model_spec m;
    struct serve_exec x;
    int rc = serve_test_stream("tp", 2, 1, ALLREDUCE_ONESHOT, req, &m, &x, res);
    CHECK_EQ_INT(rc, 0);
    for (int i = 0; !rc && i < N_REQ; i++) {
        const int *got = serve_exec_tokens(&x, i);
        CHECK_EQ_INT(res[i].status, SERVE_DONE);
        for (int k = 0; got && k < req[i].output_tokens; k++) CHECK(got[k] >= 0 && got[k] < m.vocab);
    }
    if (!rc) serve_results_free(res, N_REQ);
    serve_exec_close(&x);
}
