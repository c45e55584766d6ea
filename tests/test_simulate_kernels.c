/* Per-kernel pricing against the H100 figures of docs/PERF.md: each kernel by its
 * own roofline, decode bound by the weights, prompts by the GEMM rate at their M. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/sim_kernels.h"
#include "../harness/exec/model/simulate.h"
#include "test.h"

static int load(struct device_profile *p, struct model_spec *m)
{
    PB_TRY(device_profile_load("h100", p));
    return model_spec_load("models/llama-2-7b.json", m);
}

static double layer_ns(const struct device_profile *p, const struct model_spec *m, struct sim_call c)
{
    return sim_attention_half_ns(p, m, &c) + sim_mlp_half_ns(p, m, &c);
}

/* Predicted single-GPU latency of one pass (ms) as bench --simulate computes it. */
static double pass_ms(const struct device_profile *p, const struct model_spec *m, int batch, int seq)
{
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc = {.gpus = 1, .gpu_memory = {(uint64_t)80 << 30}, .budgets_from_user = 1};
    const struct strategy *st = strategy_find("single");
    struct placement *pl = malloc(sizeof *pl);
    struct schedule s;
    struct trace t;
    double ms = -1;
    if (pl && st->place(m, &w, &mc, pl) == PB_OK && st->plan(m, pl, &w, &s) == PB_OK) {
        if (simulate_schedule(p, m, &s, 1, &t, &ms) == PB_OK) trace_free(&t);
        schedule_free(&s);
    }
    free(pl);
    return ms;
}

TEST(test_decode_layer_is_bound_by_its_weight_bytes)
{
    struct device_profile p;
    struct model_spec m;
    CHECK_EQ_INT(load(&p, &m), PB_OK);
    struct sim_call c = {.batch = 1, .seq = 1, .context = 193, .tp = 1};
    double weights = (double)(model_layer_params(&m) - 2 * (uint64_t)m.hidden) * 2;
    double floor = weights / (p.hbm_gbps * efficiency_at(p.kernels.gemv, p.kernels.n_gemv, 1, 1));
    /* Seven kernels a decode layer (two norms, four GEMVs with SwiGLU riding the
     * gate-up one, attention with its rope); the KV cache and activations add about 1%. */
    double rest = layer_ns(&p, &m, c) - 7 * p.launch_us * 1e3;
    CHECK(rest >= floor);
    CHECK_NEAR(rest / floor, 1.0, 0.02);
}

TEST(test_prefill_8x512_layer_lands_on_the_measured_layer_time)
{
    struct device_profile p;
    struct model_spec m;
    CHECK_EQ_INT(load(&p, &m), PB_OK);
    /* docs/PERF.md (H100, 84fcfe4): single 8x512 took 91.28 ms; lm_head is 1.07 of the
     * 54.1 TFLOP whose GEMMs alone took 78.13 / 81.07 ms (kernel core runs A / B), so
     * 1.58 ms; the 32 layers share the rest: 2.803 ms a layer. */
    double measured_ns = (91.28 - 1.07 / 54.1 * (78.13 + 81.07) / 2) / 32 * 1e6;
    struct sim_call c = {.batch = 8, .seq = 512, .context = 512, .tp = 1};
    CHECK_NEAR(layer_ns(&p, &m, c) / measured_ns, 1.0, 0.10);
}

TEST(test_single_pass_predictions_are_within_15_percent_of_the_h100)
{
    struct device_profile p;
    struct model_spec m;
    CHECK_EQ_INT(load(&p, &m), PB_OK);
    /* docs/PERF.md (H100, 84fcfe4, CUPTI paused): 91.28 ms at 8x512, 6.45 ms at 1x128. */
    CHECK_NEAR(pass_ms(&p, &m, 8, 512) / 91.28, 1.0, 0.15);
    CHECK_NEAR(pass_ms(&p, &m, 1, 128) / 6.45, 1.0, 0.15);
}

TEST(test_prompt_gemms_run_at_the_rate_of_their_m)
{
    struct device_profile p;
    struct model_spec m;
    CHECK_EQ_INT(load(&p, &m), PB_OK);
    double launch = p.launch_us * 1e3;
    /* 4096 rows: compute-bound at the 8x512 efficiency. */
    double big = sim_linear_ns(&p, 4096, 4096, 4096, 0, 0) - launch;
    CHECK_NEAR(big, 2.0 * 4096 * 4096 * 4096 / (p.bf16_tflops * 1e3 * p.kernels.gemm[p.kernels.n_gemm - 1].compute),
               1e-6);
    /* 128 rows: the weight streams at the 1x128 bandwidth, not the GEMM rate. */
    double small = sim_linear_ns(&p, 128, 4096, 4096, 0, 0) - launch;
    double bytes = (4096.0 * 4096 + 2 * 128.0 * 4096) * 2;
    CHECK_NEAR(small, bytes / (p.hbm_gbps * efficiency_at(p.kernels.gemm, p.kernels.n_gemm, 128, 1)), 1e-6);
    /* Decode at 16 rows streams the weights at the profile's lower 16-row efficiency:
     * slower than 1 row by the ratio of the two. */
    double one = sim_linear_ns(&p, 1, 4096, 4096, 0, 1) - launch;
    double sixteen = sim_linear_ns(&p, 16, 4096, 4096, 0, 1) - launch;
    CHECK(sixteen > one * efficiency_at(p.kernels.gemv, p.kernels.n_gemv, 1, 1) /
                            efficiency_at(p.kernels.gemv, p.kernels.n_gemv, 16, 1) * 0.99);
}

TEST(test_decode_step_carries_its_kv_length)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct step st = {.kind = STEP_LAYERS, .count = 4, .rows = 4, .batch = 4, .seq = 1, .context = 200,
                      .flops = 4 * model_layer_flops(&m, 4, 1, 200)};
    struct sim_call c = sim_step_call(&m, &st, 1);
    CHECK_EQ_INT(c.seq, 1);
    CHECK_EQ_INT(c.context, 200);
    /* tp attention halves carry 1/n of the layer's attention-side FLOPs. */
    double h = m.hidden, rows = 8 * 512;
    struct step half = {.kind = STEP_ATTENTION, .count = 1, .rows = 8 * 512, .batch = 8, .seq = 512, .context = 700,
                        .flops = (model_layer_flops(&m, 8, 512, 700) - 2 * rows * 3 * h * m.intermediate) / 2};
    c = sim_step_call(&m, &half, 2);
    CHECK_EQ_INT(c.seq, 512);
    CHECK_EQ_INT(c.context, 700);
    CHECK_EQ_INT(c.tp, 2);
    struct step empty = {.kind = STEP_LAYERS, .count = 1, .rows = 128, .batch = 1};
    CHECK_EQ_INT(sim_step_call(&m, &empty, 1).context, 128);   /* no seq given: a prefill */
}

TEST(test_tensor_parallel_halves_shrink_with_the_world)
{
    struct device_profile p;
    struct model_spec m;
    CHECK_EQ_INT(load(&p, &m), PB_OK);
    struct sim_call one = {.batch = 8, .seq = 512, .context = 512, .tp = 1}, two = one;
    two.tp = 2;
    double r_attn = sim_attention_half_ns(&p, &m, &two) / sim_attention_half_ns(&p, &m, &one);
    double r_mlp = sim_mlp_half_ns(&p, &m, &two) / sim_mlp_half_ns(&p, &m, &one);
    /* GEMMs and attention halve; the replicated RMSNorm does not. */
    CHECK(r_attn > 0.5 && r_attn < 0.56);
    CHECK(r_mlp > 0.5 && r_mlp < 0.56);
}
