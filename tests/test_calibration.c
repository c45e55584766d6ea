/* Measurements become a profile: the slowest GPU and pair count, the base profile
 * supplies datasheet peaks, and the link kind follows from the measured speed. */
#include "../harness/exec/model/calibration.h"
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
