/* Metrics on synthetic records: the definitions of DESIGN.md, checked by hand. */
#include "../harness/measure/metrics.h"
#include "test.h"

static void add(struct trace *t, enum record_kind kind, int dev, uint64_t start_us, uint64_t end_us, int it)
{
    struct record r = {.kind = kind, .device = dev, .start_ns = start_us * 1000, .end_ns = end_us * 1000,
                       .iteration = it, .src_device = -1, .dst_device = -1};
    trace_add(t, &r);
}

static void add_copy(struct trace *t, int src, int dst, uint64_t bytes, uint64_t start_us, uint64_t end_us,
                     int it)
{
    struct record r = {.kind = REC_MEMCPY, .device = src, .start_ns = start_us * 1000,
                       .end_ns = end_us * 1000, .iteration = it, .copy = COPY_PTOP,
                       .src_device = src, .dst_device = dst, .bytes = bytes};
    trace_add(t, &r);
}

TEST(test_overlapping_kernels_count_once)
{
    struct trace t;
    trace_init(&t, 1);
    add(&t, REC_KERNEL, 0, 0, 100, 0);
    add(&t, REC_KERNEL, 0, 50, 150, 0);   /* overlaps the first: union 0..150 */
    add(&t, REC_KERNEL, 0, 200, 300, 0);  /* gap 150..200 */
    struct iteration_metrics m;
    CHECK_EQ_INT(metrics_iteration(&t, 0, &m), 0);
    CHECK_NEAR(m.gpu[0].window_ms, 0.300, 1e-12);
    CHECK_NEAR(m.gpu[0].compute_ms, 0.250, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_ms, 0.050, 1e-12);
    CHECK_NEAR(m.gpu[0].utilisation, 0.250 / 0.300, 1e-12);
    CHECK_NEAR(m.gpu[0].own_span_ms, 0.300, 1e-12);
    CHECK(m.gpu[0].known);
    trace_free(&t);
}

TEST(test_gpu_that_waits_shows_idle_in_shared_window)
{
    /* GPU 0 works 0..100, copies 100..110; GPU 1 works 110..210. */
    struct trace t;
    trace_init(&t, 2);
    add(&t, REC_KERNEL, 0, 0, 100, 0);
    add_copy(&t, 0, 1, 1000000, 100, 110, 0);
    add(&t, REC_KERNEL, 1, 110, 210, 0);
    struct iteration_metrics m;
    CHECK_EQ_INT(metrics_iteration(&t, 0, &m), 0);
    CHECK_NEAR(m.gpu[0].window_ms, 0.210, 1e-12);
    CHECK_NEAR(m.gpu[1].window_ms, 0.210, 1e-12);
    CHECK_NEAR(m.gpu[0].copy_ms, 0.010, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_ms, 0.100, 1e-12);
    CHECK_NEAR(m.gpu[1].idle_ms, 0.110, 1e-12);
    /* Utilisation counts kernels only, not the copy. */
    CHECK_NEAR(m.gpu[0].utilisation, 0.100 / 0.210, 1e-12);
    CHECK_NEAR(m.gpu[1].utilisation, 0.100 / 0.210, 1e-12);
    /* HTA's own span hides the wait: GPU 1 looks fully busy. */
    CHECK_NEAR(m.gpu[1].own_span_ms, 0.100, 1e-12);
    CHECK_EQ_INT(m.n_links, 1);
    CHECK_EQ_INT(m.link[0].src, 0);
    CHECK_EQ_INT(m.link[0].dst, 1);
    CHECK_EQ_INT(m.link[0].bytes, 1000000);
    CHECK_NEAR(m.link[0].ms, 0.010, 1e-12);
    CHECK_NEAR(m.link[0].gbps, 100.0, 1e-9);   /* 1 MB in 10 us */
    CHECK_NEAR(metrics_bubble(&m, 1), 0.110 / 0.210, 1e-12);
    trace_free(&t);
}

TEST(test_nccl_kernels_are_comm_and_count_in_utilisation)
{
    struct trace t;
    trace_init(&t, 2);
    add(&t, REC_KERNEL, 0, 0, 100, 0);
    add(&t, REC_COMM, 0, 100, 120, 0);
    add(&t, REC_KERNEL, 1, 0, 90, 0);
    add(&t, REC_COMM, 1, 90, 120, 0);
    struct iteration_metrics m;
    CHECK_EQ_INT(metrics_iteration(&t, 0, &m), 0);
    CHECK_NEAR(m.gpu[0].comm_ms, 0.020, 1e-12);
    CHECK_NEAR(m.gpu[1].comm_ms, 0.030, 1e-12);
    CHECK_NEAR(m.gpu[0].utilisation, 1.0, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_ms, 0.0, 1e-12);
    /* All-reduce time is the union over GPUs: 90..120. */
    CHECK_NEAR(m.allreduce_ms, 0.030, 1e-12);
    trace_free(&t);
}

TEST(test_memset_is_busy_but_neither_kernel_nor_copy)
{
    struct trace t;
    trace_init(&t, 1);
    add(&t, REC_MEMSET, 0, 0, 10, 0);
    add(&t, REC_KERNEL, 0, 20, 40, 0);
    struct iteration_metrics m;
    metrics_iteration(&t, 0, &m);
    CHECK_NEAR(m.gpu[0].window_ms, 0.040, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_ms, 0.010, 1e-12);
    CHECK_NEAR(m.gpu[0].copy_ms, 0.0, 1e-12);
    CHECK_NEAR(m.gpu[0].utilisation, 0.5, 1e-12);
    trace_free(&t);
}

TEST(test_host_ranges_do_not_widen_the_window)
{
    struct trace t;
    trace_init(&t, 1);
    add(&t, REC_KERNEL, 0, 100, 200, 0);
    struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = 0, .end_ns = 500000, .iteration = 0};
    trace_add(&t, &r);
    struct iteration_metrics m;
    metrics_iteration(&t, 0, &m);
    CHECK_NEAR(m.gpu[0].window_ms, 0.100, 1e-12);
    trace_free(&t);
}

TEST(test_iterations_are_separate_and_mean_averages_them)
{
    struct trace t;
    trace_init(&t, 1);
    add(&t, REC_KERNEL, 0, 0, 100, 0);
    add(&t, REC_KERNEL, 0, 1000, 1050, 1);
    add(&t, REC_KERNEL, 0, 1100, 1200, 1);
    struct iteration_metrics a, b, mean;
    metrics_iteration(&t, 0, &a);
    metrics_iteration(&t, 1, &b);
    CHECK_NEAR(a.gpu[0].window_ms, 0.100, 1e-12);
    CHECK_NEAR(b.gpu[0].window_ms, 0.200, 1e-12);
    CHECK_NEAR(b.gpu[0].compute_ms, 0.150, 1e-12);
    CHECK_EQ_INT(metrics_mean(&t, 2, &mean), 0);
    CHECK_NEAR(mean.gpu[0].window_ms, 0.150, 1e-12);
    CHECK_NEAR(mean.gpu[0].compute_ms, 0.125, 1e-12);
    CHECK_NEAR(mean.gpu[0].utilisation, (1.0 + 0.75) / 2, 1e-12);
    trace_free(&t);
}

TEST(test_unknown_busy_time_is_nan_never_zero)
{
    struct trace t;
    trace_init(&t, 2);
    t.busy_known = 0;
    struct record r = {.kind = REC_RANGE, .device = -1, .start_ns = 0, .end_ns = 2000000, .iteration = 0};
    trace_add(&t, &r);
    struct iteration_metrics m;
    CHECK_EQ_INT(metrics_iteration(&t, 0, &m), 0);
    CHECK(!m.gpu[0].known);
    CHECK(isnan(m.gpu[0].utilisation));
    CHECK(isnan(m.gpu[1].idle_ms));
    CHECK(isnan(metrics_bubble(&m, 0)));
    CHECK_NEAR(m.gpu[0].window_ms, 2.0, 1e-12);
    trace_free(&t);
}

TEST(test_percentiles_interpolate_linearly)
{
    double v[] = {5, 1, 4, 2, 3};
    CHECK_NEAR(metrics_percentile(v, 5, 50), 3.0, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 5, 0), 1.0, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 5, 100), 5.0, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 5, 90), 4.6, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 5, 99), 4.96, 1e-12);
    CHECK_EQ_INT(v[0], 5);   /* the input is not reordered */
    CHECK(isnan(metrics_percentile(v, 0, 50)));
    double one = 7;
    CHECK_NEAR(metrics_percentile(&one, 1, 90), 7.0, 1e-12);
}

TEST(test_gpipe_bound)
{
    CHECK_NEAR(metrics_gpipe_bound(2, 4, 1), 1.0 / 5.0, 1e-12);
    CHECK_NEAR(metrics_gpipe_bound(4, 8, 1), 3.0 / 11.0, 1e-12);
    CHECK_NEAR(metrics_gpipe_bound(1, 1, 1), 0.0, 1e-12);
    /* V interleaved chunks per stage: (p-1)/(V*m+p-1) */
    CHECK_NEAR(metrics_gpipe_bound(4, 8, 2), 3.0 / 19.0, 1e-12);
}

TEST(test_links_are_per_ordered_pair)
{
    struct trace t;
    trace_init(&t, 2);
    add_copy(&t, 0, 1, 500, 0, 10, 0);
    add_copy(&t, 0, 1, 500, 5, 15, 0);   /* overlapping: union 0..15 */
    add_copy(&t, 1, 0, 200, 20, 30, 0);
    struct iteration_metrics m;
    metrics_iteration(&t, 0, &m);
    CHECK_EQ_INT(m.n_links, 2);
    CHECK_EQ_INT(m.link[0].bytes, 1000);
    CHECK_NEAR(m.link[0].ms, 0.015, 1e-12);
    CHECK_EQ_INT(m.link[1].src, 1);
    CHECK_EQ_INT(m.link[1].bytes, 200);
    trace_free(&t);
}
