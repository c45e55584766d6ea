/* Per-kernel pricing against the H100 figures of docs/PERF.md: each kernel by its
 * own roofline, decode bound by the weights, prompts by the GEMM rate at their M. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/sim_kernels.h"
#include "../harness/exec/model/simulate.h"
#include "sim_fixture.h"
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
    struct sim_call c = sim_step_call(&m, &st, 1, 0);
    CHECK_EQ_INT(c.seq, 1);
    CHECK_EQ_INT(c.context, 200);
    /* tp attention halves carry 1/n of the layer's attention-side FLOPs. */
    double h = m.hidden, rows = 8 * 512;
    struct step half = {.kind = STEP_ATTENTION, .count = 1, .rows = 8 * 512, .batch = 8, .seq = 512, .context = 700,
                        .flops = (model_layer_flops(&m, 8, 512, 700) - 2 * rows * 3 * h * m.intermediate) / 2};
    c = sim_step_call(&m, &half, 2, 0);
    CHECK_EQ_INT(c.seq, 512);
    CHECK_EQ_INT(c.context, 700);
    CHECK_EQ_INT(c.tp, 2);
    struct step empty = {.kind = STEP_LAYERS, .count = 1, .rows = 128, .batch = 1};
    CHECK_EQ_INT(sim_step_call(&m, &empty, 1, 0).context, 128);   /* no seq given: a prefill */
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

static const struct step *first_layers_step(const struct schedule *s)
{
    for (int i = 0; i < s->n_steps; i++)
        if (s->steps[i].kind == STEP_LAYERS) return &s->steps[i];
    return NULL;
}

/* The kernel core tunes a part's short-prompt GEMMs at min(max_rows, 512) rows, the
 * whole batch's (kernels/gemm_class.h), so a pipeline's 1 x 128 microbatch of a 4 x 128
 * batch runs the 512-row algorithms. A profile with gemm_tuned_above prices those calls
 * at its points; calls at their part's rows (single, a 1 x 128 pipeline), long prompts
 * (one algorithm for every row count), decode (the GEMV table) and a profile without the
 * table are priced as before. */
TEST(test_microbatches_below_their_parts_tuning_take_the_tuned_above_fractions)
{
    static struct device_profile p, old;
    struct model_spec m;
    CHECK_EQ_INT(device_profile_load("h200", &p), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    CHECK_EQ_INT(sim_tune_rows(128, 128, 512), 512);
    CHECK_EQ_INT(sim_tune_rows(128, 128, 256), 256);
    CHECK_EQ_INT(sim_tune_rows(128, 256, 4096), 512);   /* tuning stops at 512 rows */
    CHECK_EQ_INT(sim_tune_rows(128, 512, 512), 0);      /* at its part's rows */
    CHECK_EQ_INT(sim_tune_rows(128, 1024, 2048), 0);    /* above the tuning: the gemm table, as before */
    CHECK_EQ_INT(sim_tune_rows(512, 1024, 4096), 0);    /* long prompts: one algorithm whatever the rows */
    CHECK_EQ_INT(sim_tune_rows(1, 1, 16), 0);           /* decode */
    CHECK_EQ_INT(sim_tune_rows(128, 128, 0), 0);
    old = p;
    p.kernels.n_gemm_tuned_above = 1;
    p.kernels.gemm_tuned_above[0] = (struct tuned_efficiency_point){
        .rows = 128, .tune_rows = 512, .compute = 0.5 * efficiency_at(p.kernels.gemm, p.kernels.n_gemm, 128, 0),
        .memory = 0.5 * efficiency_at(p.kernels.gemm, p.kernels.n_gemm, 128, 1)};

    struct schedule pipe, single, pipe1, long_pipe;
    CHECK_EQ_INT(plan_prefill("pipeline", &m, 2, 4, 128, 4, &pipe), PB_OK);
    CHECK_EQ_INT(sim_schedule_part_rows(&pipe), 512);
    const struct step *mb = first_layers_step(&pipe);
    CHECK(mb && mb->rows == 128);
    struct sim_call tuned = {.batch = 1, .seq = 128, .context = 128, .tp = 1, .tune_rows = 512};
    struct sim_call own = {.batch = 1, .seq = 128, .context = 128, .tp = 1};
    double at_tuning = sim_compute_ns(&p, &m, mb, 1, 512), at_own = sim_compute_ns(&p, &m, mb, 1, 0);
    CHECK_NEAR(at_tuning, mb->count * layer_ns(&p, &m, tuned), 1e-6);
    CHECK_NEAR(at_own, mb->count * layer_ns(&p, &m, own), 1e-6);
    CHECK(at_tuning > 1.3 * at_own);
    CHECK_NEAR(sim_compute_ns(&old, &m, mb, 1, 512), at_own, 1e-9);   /* a profile from before the table */

    CHECK_EQ_INT(plan_prefill("single", &m, 1, 4, 128, 1, &single), PB_OK);
    const struct step *whole = first_layers_step(&single);
    CHECK_EQ_INT(sim_schedule_part_rows(&single), 512);
    CHECK_NEAR(sim_compute_ns(&p, &m, whole, 1, 512), sim_compute_ns(&old, &m, whole, 1, 512), 1e-9);
    CHECK_EQ_INT(plan_prefill("pipeline", &m, 2, 1, 128, 1, &pipe1), PB_OK);
    CHECK_EQ_INT(sim_schedule_part_rows(&pipe1), 128);
    CHECK_EQ_INT(plan_prefill("pipeline", &m, 2, 8, 512, 4, &long_pipe), PB_OK);
    const struct step *long_mb = first_layers_step(&long_pipe);
    CHECK(long_mb && long_mb->rows == 1024);
    CHECK_NEAR(sim_compute_ns(&p, &m, long_mb, 1, 4096), sim_compute_ns(&old, &m, long_mb, 1, 4096), 1e-9);
    struct step decode = {.kind = STEP_LAYERS, .count = 1, .rows = 1, .batch = 1, .seq = 1, .context = 129};
    CHECK_NEAR(sim_compute_ns(&p, &m, &decode, 1, 4), sim_compute_ns(&old, &m, &decode, 1, 4), 1e-9);

    /* whole schedules: the 4-microbatch pipeline is slower with the table, the others are not */
    CHECK(simulated_ms(failures_, &p, &m, &pipe, NULL) > 1.2 * simulated_ms(failures_, &old, &m, &pipe, NULL));
    const struct schedule *same[] = {&single, &pipe1, &long_pipe};
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(simulated_ms(failures_, &p, &m, same[i], NULL), simulated_ms(failures_, &old, &m, same[i], NULL),
                   1e-9);
    schedule_free(&pipe);
    schedule_free(&single);
    schedule_free(&pipe1);
    schedule_free(&long_pipe);
}
