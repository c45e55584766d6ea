/* Measurements become a profile: the slowest GPU and pair count, the base profile
 * supplies datasheet peaks, and the link kind follows from the measured speed. */
#include "../harness/exec/model/calibration.h"
#include "../harness/exec/model/sim_kernels.h"
#include "../base/check.h"
#include "test.h"

static struct calibration two_h200(void)
{
    struct calibration c = {.n_gpus = 2, .gpu = "NVIDIA H200", .memory_bytes = 150754820096ull,
                            .gemm_tflops = {790, 770}, .copy_gbps = {4300, 4250}, .launch_us = 2.5,
                            .peer_latency_us = 9, .peer_access = 1, .h2d_gbps = 53,
                            .h2d_latency_us = 11, .allreduce_bus_gbps = 301,
                            .allreduce_small_us = 12.5, .allreduce_bytes = 256u << 20,
                            .date = "2026-11-20"};
    c.peer_gbps[0][1] = 396;
    c.peer_gbps[1][0] = 390;
    return c;
}

TEST(test_calibration_knows_the_shipped_gpus)
{
    CHECK(!strcmp(calibration_base_name("NVIDIA H200"), "h200"));
    CHECK(!strcmp(calibration_base_name("NVIDIA H100 80GB HBM3"), "h100"));
    CHECK(!strcmp(calibration_base_name("NVIDIA A100-SXM4-80GB"), "a100"));
    CHECK(!strcmp(calibration_base_name("NVIDIA GeForce RTX 4090"), "rtx4090"));
    CHECK(calibration_base_name("NVIDIA B200") == NULL);
}

TEST(test_calibration_takes_the_slowest_gpu_and_pair)
{
    struct calibration c = two_h200();
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK(!strcmp(p.name, "h200-calibrated"));
    CHECK_EQ_INT(p.measured, 1);
    CHECK_NEAR(p.bf16_tflops, 770, 1e-9);
    CHECK_NEAR(p.bf16_peak_tflops, base.bf16_peak_tflops, 1e-9);
    CHECK_NEAR(p.hbm_gbps, 4250, 1e-9);
    CHECK_NEAR(p.launch_us, 2.5, 1e-9);
    CHECK_EQ_INT(p.peer_link, LINK_NVLINK);
    CHECK_NEAR(p.link[LINK_NVLINK].gbps, 390, 1e-9);
    CHECK_NEAR(p.link[LINK_NVLINK].peak_gbps, 450, 1e-9);
    CHECK_NEAR(p.link[LINK_PCIE].gbps, 53, 1e-9);
    CHECK_NEAR(p.allreduce.bus_gbps, 301, 1e-9);
    /* (12.5 us - one 2.5 us launch) over 2(N-1) = 2 steps. */
    CHECK_NEAR(p.allreduce.step_latency_us, 5, 1e-9);
    CHECK(strstr(p.gemm_source, "bench --calibrate 2026-11-20"));
}

TEST(test_calibration_without_nvlink_or_base)
{
    struct calibration c = two_h200();
    snprintf(c.gpu, sizeof c.gpu, "NVIDIA B200");
    c.peer_gbps[0][1] = 20;   /* PCIe speed: the link is PCIe */
    c.peer_gbps[1][0] = 21;
    c.peer_access = 0;
    struct device_profile p;
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_OK);
    CHECK_EQ_INT(p.peer_link, LINK_PCIE);
    CHECK(!p.link[LINK_NVLINK].present);
    CHECK_NEAR(p.link[LINK_PCIE].gbps, 53, 1e-9);
    CHECK_NEAR(p.link[LINK_PCIE].peer_gbps, 20, 1e-9);
    CHECK_NEAR(p.bf16_peak_tflops, 770, 1e-9);   /* no datasheet known: the measurement */
    CHECK(strstr(p.gemm_source, "not known"));
    CHECK(strstr(p.link[LINK_PCIE].source, "staged through the host"));
}

TEST(test_calibration_on_one_gpu_keeps_the_base_links)
{
    struct calibration c = two_h200();
    c.n_gpus = 1;
    c.peer_gbps[0][1] = c.peer_gbps[1][0] = 0;
    c.allreduce_bus_gbps = 0;
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_NEAR(p.link[LINK_NVLINK].gbps, base.link[LINK_NVLINK].gbps, 1e-9);
    CHECK_NEAR(p.allreduce.bus_gbps, base.allreduce.bus_gbps, 1e-9);
    CHECK_NEAR(p.bf16_tflops, 790, 1e-9);
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_OK);   /* placeholders, still valid */
}

TEST(test_calibration_with_nothing_measured_is_refused)
{
    struct calibration c = {.n_gpus = 0};
    struct device_profile p;
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_ERR);
    c.n_gpus = 1;
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_ERR);
}

/* Times a GEMM of M rows would take on a GPU whose kernels reach `ce` of the rate
 * and `me` of the bandwidth, plus one launch of `launch` us. */
static double shape_time_us(int m, double tflops, double gbps, double ce, double me, double launch)
{
    double n = CALIBRATION_SHAPE_N, k = CALIBRATION_SHAPE_K;
    double flops = 2.0 * m * n * k, bytes = (n * k + m * k + m * n) * 2.0;
    return fmax(flops / (tflops * 1e12 * ce), bytes / (gbps * 1e9 * me)) * 1e6 + launch;
}

TEST(test_gemm_shapes_become_efficiencies_that_give_back_the_times)
{
    struct calibration c = two_h200();
    for (int i = 0; i < CALIBRATION_SHAPES; i++)
        c.shape_us[i] = shape_time_us(calibration_shape_rows[i], 770, 4250, 0.8, 0.85, 2);
    struct efficiency_point t[PB_EFFICIENCY_POINTS];
    CHECK_EQ_INT(calibration_gemm_table(&c, 770, 4250, 2, t), CALIBRATION_SHAPES);
    /* M = 1, 16, 128 stream the 32 MiB weight; 512 and 4096 are compute-bound. */
    CHECK_NEAR(t[0].memory, 0.85, 1e-9);
    CHECK_NEAR(t[2].memory, 0.85, 1e-9);
    CHECK_NEAR(t[4].compute, 0.8, 1e-9);
    /* Lifted: the memory-bound points take the nearest compute-bound point's rate
     * (512's), the compute-bound ones the nearest memory-bound point's bandwidth. */
    CHECK_NEAR(t[0].compute, t[3].compute, 1e-12);
    CHECK_NEAR(t[3].compute, 0.8, 1e-9);
    CHECK_NEAR(t[4].memory, t[2].memory, 1e-12);
    /* Each point prices its own shape as it was measured. */
    for (int i = 0; i < CALIBRATION_SHAPES; i++) {
        double m = t[i].rows, n = CALIBRATION_SHAPE_N, k = CALIBRATION_SHAPE_K;
        double us = fmax(2 * m * n * k / (770e12 * t[i].compute), (n * k + m * k + m * n) * 2 / (4250e9 * t[i].memory)) * 1e6;
        CHECK_NEAR(us + 2, c.shape_us[i], 1e-6 * c.shape_us[i]);
    }
}

TEST(test_calibrated_profile_prices_kernels_and_launches_from_the_graph)
{
    struct calibration c = two_h200();
    c.graph_launch_us = 1.7;
    for (int i = 0; i < CALIBRATION_SHAPES; i++)
        c.shape_us[i] = shape_time_us(calibration_shape_rows[i], 770, 4250, 0.8, 0.85, 1.7);
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_NEAR(p.launch_us, 1.7, 1e-12);
    CHECK(strstr(p.launch_source, "CUDA graph"));
    CHECK_EQ_INT(p.kernels.present, 1);
    CHECK_EQ_INT(p.kernels.n_gemm, CALIBRATION_SHAPES);
    CHECK_EQ_INT(p.kernels.gemm[4].rows, 4096);
    CHECK_NEAR(p.kernels.gemm[4].compute, 0.8, 1e-9);
    /* What calibrate does not measure stays the base profile's. */
    CHECK_NEAR(p.kernels.attention_tflops, base.kernels.attention_tflops, 1e-12);
    CHECK_EQ_INT(p.kernels.n_gemv, base.kernels.n_gemv);
    CHECK(strstr(p.kernels.source, "bench --calibrate 2026-11-20"));
    CHECK(strstr(p.kernels.source, "kept"));
    /* Without a base, the rest are marked estimates; without shapes, no table at all. */
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.present, 1);
    CHECK(strstr(p.kernels.source, "estimates"));
    memset(c.shape_us, 0, sizeof c.shape_us);
    CHECK_EQ_INT(calibration_to_profile(&c, NULL, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.present, 0);
}

TEST(test_calibrated_peer_allreduce_finds_the_crossovers)
{
    struct calibration c = two_h200();
    /* sizes 8 KiB, 64 KiB, 512 KiB, 4 MiB, 16 MiB, 32 MiB */
    double one[] = {4.5, 5, 8, 40, 150, 300}, two[] = {6, 6, 8.5, 30, 100, 190}, nccl[] = {12, 13, 15, 35, 90, 150};
    for (int s = 0; s < CALIBRATION_AR_SIZES; s++) {
        c.ar_us[CALIBRATION_AR_ONESHOT][s] = one[s];
        c.ar_us[CALIBRATION_AR_TWOSHOT][s] = two[s];
        c.ar_us[CALIBRATION_AR_NCCL][s] = nccl[s];
    }
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.peer_allreduce.present, 1);
    /* one-shot wins up to 512 KiB; a peer sum (two-shot at 4 MiB: 30 < 35) up to 4 MiB */
    CHECK(p.peer_allreduce.oneshot_max_bytes == 524288);
    CHECK(p.peer_allreduce.twoshot_max_bytes == 4194304);
    /* latency: the 8 KiB one-shot less a 2.5 us launch; read: 32 MiB over the rest of its time */
    CHECK_NEAR(p.peer_allreduce.latency_us, 2.0, 1e-9);
    CHECK_NEAR(p.peer_allreduce.read_gbps, 33554432.0 / ((300 - 2.5 - 2.0) * 1e3), 1e-9);
    CHECK(strstr(p.peer_allreduce.source, "bench --calibrate 2026-11-20") != NULL);
}

TEST(test_calibration_without_peer_allreduce_times_keeps_the_base_table)
{
    struct calibration c = two_h200();
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK(p.peer_allreduce.oneshot_max_bytes == base.peer_allreduce.oneshot_max_bytes);
    CHECK(!strcmp(p.peer_allreduce.source, base.peer_allreduce.source));
}

/* A decode layer timed at known GEMV fractions: calibrate recovers them, and the
 * simulator then prices that layer at the measured time (the fit is to the layer
 * microbenchmark, nothing end to end). */
TEST(test_decode_layers_give_the_gemv_table_that_reproduces_them)
{
    static struct calibration c;
    c = two_h200();
    static struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &c.decode_model), PB_OK);
    /* The measured rates the profile will carry, so the layers are timed "on" it. */
    static struct device_profile at;
    at = base;
    at.bf16_tflops = 770;
    at.hbm_gbps = 4250;
    at.launch_us = 2.5;
    const double truth[CALIBRATION_DECODE_POINTS] = {0.72, 0.55, 0.31};
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++) {
        at.kernels.n_gemv = 1;
        at.kernels.gemv[0] = (struct efficiency_point){.rows = calibration_decode_batch[i], .compute = 1,
                                                       .memory = truth[i]};
        struct sim_call call = {.batch = calibration_decode_batch[i], .seq = 1,
                                .context = CALIBRATION_DECODE_CONTEXT, .tp = 1};
        c.decode_layer_us[i] = (sim_attention_half_ns(&at, &c.decode_model, &call) +
                                sim_mlp_half_ns(&at, &c.decode_model, &call)) / 1e3;
    }
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemv, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(p.kernels.gemv[i].rows, calibration_decode_batch[i]);
        CHECK_NEAR(p.kernels.gemv[i].memory, truth[i], 1e-9);
        struct sim_call call = {.batch = calibration_decode_batch[i], .seq = 1,
                                .context = CALIBRATION_DECODE_CONTEXT, .tp = 1};
        double ns = sim_attention_half_ns(&p, &c.decode_model, &call) + sim_mlp_half_ns(&p, &c.decode_model, &call);
        CHECK_NEAR(ns / 1e3, c.decode_layer_us[i], 1e-6);
    }
    CHECK(strstr(p.kernels.source, "one decode layer of llama-2-7b"));
    /* A layer faster than its other kernels alone cannot be explained: left out. */
    c.decode_layer_us[0] = 1;
    c.decode_layer_us[1] = c.decode_layer_us[2] = 0;   /* not measured */
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemv, base.kernels.n_gemv);
    CHECK(!strstr(p.kernels.source, "one decode layer"));
}

/* Prompt layers timed at known GEMM fractions: the table's points at their rows are
 * scaled until the simulator prices each layer at its measured time. */
TEST(test_prompt_layers_scale_the_gemm_points_at_their_rows)
{
    static struct calibration c;
    c = two_h200();
    static struct device_profile base, at, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &c.decode_model), PB_OK);
    c.graph_launch_us = 2.5;
    for (int i = 0; i < CALIBRATION_SHAPES; i++) c.shape_us[i] = 100 + 50.0 * i;   /* any table */
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &at), PB_OK);
    /* "Measure" each prompt layer on that table with its point at 0.9 x its fractions. */
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++) {
        static struct device_profile q;
        q = at;
        int rows = calibration_prompt_batch[i] * calibration_prompt_seq[i];
        for (int j = 0; j < q.kernels.n_gemm; j++)
            if (q.kernels.gemm[j].rows == rows) q.kernels.gemm[j].compute *= 0.9, q.kernels.gemm[j].memory *= 0.9;
        struct sim_call call = {.batch = calibration_prompt_batch[i], .seq = calibration_prompt_seq[i],
                                .context = calibration_prompt_seq[i], .tp = 1};
        c.prompt_layer_us[i] = (sim_attention_half_ns(&q, &c.decode_model, &call) +
                                sim_mlp_half_ns(&q, &c.decode_model, &call)) / 1e3;
    }
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    for (int j = 0; j < p.kernels.n_gemm; j++) {
        int prompt_row = p.kernels.gemm[j].rows == 128 || p.kernels.gemm[j].rows == 512 ||
                         p.kernels.gemm[j].rows == 4096;
        CHECK_NEAR(p.kernels.gemm[j].memory, at.kernels.gemm[j].memory * (prompt_row ? 0.9 : 1), 1e-9);
        CHECK_NEAR(p.kernels.gemm[j].compute, at.kernels.gemm[j].compute * (prompt_row ? 0.9 : 1), 1e-9);
    }
    CHECK(strstr(p.kernels.source, "(3 of 3 points)"));
}

/* Two logical ranks on one GPU: the one-shot's two sizes give the traffic rate (10
 * times the message over the two ranks) and each algorithm's fixed cost is its small
 * time less its traffic; the profile then gives back every measured time. */
TEST(test_calibrated_shared_gpu_allreduce_gives_back_its_timings)
{
    const double gbps = 3500, one_us = 30, two_us = 45, small = 8 << 10, large = 32 << 20;
    struct calibration c = two_h200();
    c.n_gpus = 1;
    c.shared_ar_us[0][0] = one_us + 10 * small / gbps / 1e3;
    c.shared_ar_us[0][1] = one_us + 10 * large / gbps / 1e3;
    c.shared_ar_us[1][0] = two_us + 9 * small / gbps / 1e3;
    c.shared_ar_us[1][1] = two_us + 9 * large / gbps / 1e3;
    struct shared_gpu_profile s;
    CHECK_EQ_INT(calibration_shared_gpu(&c, &s), PB_OK);
    CHECK_NEAR(s.gbps, gbps, 1e-6);
    CHECK_NEAR(s.oneshot_us, one_us, 1e-9);
    CHECK_NEAR(s.twoshot_us, two_us, 1e-9);
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.shared_gpu.present, 1);
    CHECK(strstr(p.shared_gpu.source, "two logical ranks on GPU 0") != NULL);
    /* not measured, or not growing with size: no section */
    c.shared_ar_us[0][1] = c.shared_ar_us[0][0];
    CHECK_EQ_INT(calibration_shared_gpu(&c, &s), PB_ERR);
    c.shared_ar_us[0][1] = 0;
    CHECK_EQ_INT(calibration_shared_gpu(&c, &s), PB_ERR);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.shared_gpu.present, 0);
}

/* The layer pairs on one GPU become a slowdown table by rows: decode batches below
 * prompt rows, each the pair over twice the layer alone; unmeasured points left out. */
TEST(test_calibrated_layer_pairs_become_the_shared_gpu_slowdown)
{
    struct calibration c = two_h200();
    struct shared_compute_profile t;
    CHECK_EQ_INT(calibration_shared_compute(&c, NULL, &t), PB_ERR);   /* nothing measured */
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++) {
        c.decode_layer_us[i] = 100 + 10 * i;
        c.decode_pair_us[i] = 2 * c.decode_layer_us[i] * 1.05;
    }
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++) {
        c.prompt_layer_us[i] = 150 * (i + 1);
        c.prompt_pair_us[i] = i == 1 ? 0 : 2 * c.prompt_layer_us[i] * 1.2;   /* 4 x 128 not measured */
    }
    CHECK_EQ_INT(calibration_shared_compute(&c, NULL, &t), PB_OK);   /* no pricing: the measured layer */
    CHECK_EQ_INT(t.layers.n, 5);
    CHECK_EQ_INT(t.tp.n, 0);   /* tp ranks not measured */
    int rows[] = {1, 4, 16, 128, 4096};
    double slow[] = {1.05, 1.05, 1.05, 1.2, 1.2};
    for (int i = 0; i < 5 && i < t.layers.n; i++) {
        CHECK_EQ_INT(t.layers.point[i].rows, rows[i]);
        CHECK_NEAR(t.layers.point[i].slowdown, slow[i], 1e-12);
    }
    /* between points: linear in log(rows) */
    CHECK_NEAR(shared_slowdown_at(&t.layers, sqrt(16.0 * 128)), 1.125, 1e-12);
    CHECK_NEAR(shared_slowdown_at(&t.layers, 1e6), 1.2, 1e-12);
    /* tp ranks: their own pair over twice one rank */
    c.prompt_tp_us[0] = 80;
    c.prompt_tp_pair_us[0] = 160 * 1.01;
    CHECK_EQ_INT(calibration_shared_compute(&c, NULL, &t), PB_OK);
    CHECK_EQ_INT(t.tp.n, 1);
    CHECK_NEAR(shared_slowdown_at(&t.tp, 128), 1.01, 1e-12);
    /* with a profile and the model: over twice the simulator's own layer, so that two
     * overlapping layers priced at the slowdown take the measured pair */
    struct device_profile h200;
    CHECK_EQ_INT(device_profile_load("h200", &h200), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &c.decode_model), 0);
    struct sim_call tp_call = {.batch = 1, .seq = 128, .context = 128, .tp = 2};
    double rank_us = (sim_attention_half_ns(&h200, &c.decode_model, &tp_call) +
                      sim_mlp_half_ns(&h200, &c.decode_model, &tp_call)) / 1e3;
    CHECK_EQ_INT(calibration_shared_compute(&c, &h200, &t), PB_OK);
    CHECK_NEAR(shared_slowdown_at(&t.tp, 128) * 2 * rank_us, c.prompt_tp_pair_us[0], 1e-9);
    struct device_profile base, p;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.shared_compute.layers.n, 5);
    CHECK(strstr(p.shared_compute.source, "two parts of GPU 0") != NULL);
}

/* The simulator's prompt layer of tuned point i on profile q, at the point's tune rows. */
static double tuned_point_layer_us(const struct device_profile *q, const struct model_spec *m, int i)
{
    int b = calibration_tuned_batch[i], seq = calibration_tuned_seq[i];
    struct sim_call call = {.batch = b, .seq = seq, .context = seq, .tp = 1,
                            .tune_rows = sim_tune_rows(seq, b * seq, calibration_tuned_part_rows[i])};
    return (sim_attention_half_ns(q, m, &call) + sim_mlp_half_ns(q, m, &call)) / 1e3;
}

/* Prompt layers on parts tuned above their rows, timed at known fractions (0.7 of the
 * gemm table's at the call's rows): calibrate gives those fractions back as the
 * gemm_tuned_above points, the simulator's layer at the tune rows gives back each
 * measured time, the pairs give the tuned_above slowdowns, and a point not measured or
 * not explainable is left out (the calls then take the gemm table, as before). */
TEST(test_layers_on_parts_tuned_above_their_rows_give_the_tuned_gemm_points)
{
    static struct calibration c;
    c = two_h200();
    static struct device_profile base, at, p, q;
    CHECK_EQ_INT(device_profile_load("h200", &base), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &c.decode_model), PB_OK);
    c.graph_launch_us = 2.5;
    for (int i = 0; i < CALIBRATION_SHAPES; i++) c.shape_us[i] = 100 + 50.0 * i;
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &at), PB_OK);
    CHECK_EQ_INT(at.kernels.n_gemm_tuned_above, 0);   /* nothing timed on tuned parts: no table */
    CHECK_EQ_INT(at.shared_compute.tuned_above.n, 0);
    double truth_c[CALIBRATION_TUNED_POINTS], truth_m[CALIBRATION_TUNED_POINTS];
    for (int i = 0; i < CALIBRATION_TUNED_POINTS; i++) {
        int rows = calibration_tuned_batch[i] * calibration_tuned_seq[i];
        int tune = sim_tune_rows(calibration_tuned_seq[i], rows, calibration_tuned_part_rows[i]);
        CHECK(tune > rows);
        truth_c[i] = 0.7 * efficiency_at(at.kernels.gemm, at.kernels.n_gemm, rows, 0);
        truth_m[i] = 0.7 * efficiency_at(at.kernels.gemm, at.kernels.n_gemm, rows, 1);
        q = at;
        q.kernels.n_gemm_tuned_above = 1;
        q.kernels.gemm_tuned_above[0] = (struct tuned_efficiency_point){.rows = rows, .tune_rows = tune,
                                                                        .compute = truth_c[i], .memory = truth_m[i]};
        c.tuned_layer_us[i] = tuned_point_layer_us(&q, &c.decode_model, i);
        c.tuned_pair_us[i] = 2 * c.tuned_layer_us[i] * 0.85;
    }
    /* the layer is slower on the tuned part than at its own rows' fractions */
    CHECK(c.tuned_layer_us[1] > tuned_point_layer_us(&at, &c.decode_model, 1) * 1.1);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemm_tuned_above, CALIBRATION_TUNED_POINTS);
    for (int i = 0; i < p.kernels.n_gemm_tuned_above; i++) {
        CHECK_EQ_INT(p.kernels.gemm_tuned_above[i].rows, calibration_tuned_batch[i] * calibration_tuned_seq[i]);
        CHECK_NEAR(p.kernels.gemm_tuned_above[i].compute, truth_c[i], 1e-9);
        CHECK_NEAR(p.kernels.gemm_tuned_above[i].memory, truth_m[i], 1e-9);
        CHECK_NEAR(tuned_point_layer_us(&p, &c.decode_model, i), c.tuned_layer_us[i], 1e-6);
    }
    CHECK_EQ_INT(p.kernels.gemm_tuned_above[0].tune_rows, 256);
    CHECK_EQ_INT(p.kernels.gemm_tuned_above[1].tune_rows, 512);
    CHECK(strstr(p.kernels.source, "gemm_tuned_above: bench --calibrate 2026-11-20") != NULL);
    CHECK(strstr(p.kernels.source, "128 at 512 x0.700") != NULL);
    CHECK_EQ_INT(p.shared_compute.tuned_above.n, CALIBRATION_TUNED_POINTS);
    CHECK_NEAR(shared_layer_slowdown_at(&p.shared_compute, 128, 512), 0.85, 1e-9);
    CHECK_NEAR(shared_layer_slowdown_at(&p.shared_compute, 256, 512), 0.85, 1e-9);
    CHECK_EQ_INT(p.shared_compute.layers.n, 0);   /* no ordinary pair timed: calls at their own rows are not slowed */
    CHECK_NEAR(shared_layer_slowdown_at(&p.shared_compute, 128, 0), 1, 0);
    CHECK(strstr(p.shared_compute.source, "tuned_above") != NULL);
    /* not measured, or faster than its other kernels alone: left out */
    c.tuned_layer_us[0] = 0;
    c.tuned_layer_us[2] = 1;
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemm_tuned_above, 1);
    CHECK_EQ_INT(p.kernels.gemm_tuned_above[0].tune_rows, 512);
    CHECK_EQ_INT(p.kernels.gemm_tuned_above[0].rows, 128);
    /* a base profile's points are not this card's: without measurements, none are kept */
    base.kernels.n_gemm_tuned_above = 1;
    base.kernels.gemm_tuned_above[0] = (struct tuned_efficiency_point){.rows = 128, .tune_rows = 512, .compute = 0.1,
                                                                       .memory = 0.1};
    memset(c.tuned_layer_us, 0, sizeof c.tuned_layer_us);
    CHECK_EQ_INT(calibration_to_profile(&c, &base, &p), PB_OK);
    CHECK_EQ_INT(p.kernels.n_gemm_tuned_above, 0);
}
