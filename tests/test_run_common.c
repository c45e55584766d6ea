/* What the single-process and MPI runs share (harness/run/run_common.c): latency
 * from the timed iterations, busy time from the profiled ones, the CUPTI
 * overhead between them, and single's output as the reference. */
#include <stdlib.h>
#include "../harness/run/run_common.h"
#include "test.h"

static void kernel(struct trace *t, uint64_t start_us, uint64_t end_us, int it)
{
    struct record r = {.kind = REC_KERNEL, .device = 0, .start_ns = start_us * 1000, .end_ns = end_us * 1000,
                       .iteration = it, .src_device = -1, .dst_device = -1};
    trace_add(t, &r);
}

static struct placement one_gpu;

TEST(test_latency_comes_from_timed_iterations_and_busy_time_from_profiled_ones)
{
    double timed[] = {10, 10, 10, 10}, profiled[] = {11, 11};
    struct point_result r = {.strategy = "single", .w = {.batch = 1, .seq = 100}, .n_devices = 1, .iters = 4,
                             .latency_ms = timed, .profile_iters = 2, .profiled_ms = profiled};
    struct trace t;
    trace_init(&t, 1);
    t.busy_known = 1;
    kernel(&t, 0, 1000, 0);   /* profiled iteration 0: 1 ms busy of a 2 ms window */
    kernel(&t, 1500, 2000, 0);
    kernel(&t, 5000, 7000, 1);   /* iteration 1: busy the whole 2 ms */
    run_summarise(&r, &t, &one_gpu, r.profile_iters);
    CHECK_NEAR(r.p50_ms, 10, 1e-12);
    CHECK_NEAR(r.tokens_per_s, 100 / 0.010, 1e-6);
    CHECK_NEAR(r.profiled_p50_ms, 11, 1e-12);
    CHECK_NEAR(r.cupti_overhead_pct, 10, 1e-9);
    CHECK(r.busy_known);
    CHECK_NEAR(r.metrics.gpu[0].window_ms, 2, 1e-12);
    CHECK_NEAR(r.metrics.gpu[0].utilisation, (1.5 / 2 + 1) / 2, 1e-12);
    trace_free(&t);
}

TEST(test_without_profiled_iterations_busy_time_and_overhead_are_unknown)
{
    double timed[] = {5, 7};
    struct point_result r = {.strategy = "single", .w = {.batch = 1, .seq = 1}, .n_devices = 1, .iters = 2,
                             .latency_ms = timed};
    struct trace t;
    trace_init(&t, 1);
    t.busy_known = 1;   /* CUPTI on, but --profile-iters 0 */
    run_summarise(&r, &t, &one_gpu, r.profile_iters);
    CHECK(!r.busy_known);
    CHECK(isnan(r.cupti_overhead_pct));
    CHECK_NEAR(r.metrics.gpu[0].window_ms, 6, 1e-12);   /* the event-timed mean stands in */
    trace_free(&t);
}

TEST(test_single_becomes_the_reference_and_others_are_compared_bit_for_bit)
{
    struct reference ref = {0};
    struct point_result single = {.strategy = "single", .p50_ms = 3}, naive = {.strategy = "naive"};
    uint16_t *a = calloc(4, sizeof *a), *b = calloc(4, sizeof *b);
    int *none = NULL;
    a[2] = b[2] = 0x3f80;   /* 1.0 */
    run_reference_or_check(&single, &ref, &a, 2, 2, &none);
    CHECK(a == NULL && ref.logits != NULL);
    CHECK_NEAR(ref.p50_ms, 3, 0);
    run_reference_or_check(&naive, &ref, &b, 2, 2, &none);
    CHECK(naive.logits_checked && naive.logits_match);
    CHECK_EQ_INT(strlen(naive.logits_fnv1a), 16);
    CHECK(!strcmp(naive.logits_fnv1a, single.logits_fnv1a));   /* same output, same fingerprint */
    char before[17];
    memcpy(before, naive.logits_fnv1a, sizeof before);
    b[3] = 0x3f80;
    naive.logits_match = 0;
    run_reference_or_check(&naive, &ref, &b, 2, 2, &none);
    CHECK(naive.logits_checked && !naive.logits_match);
    CHECK_NEAR(naive.max_abs_diff, 1, 0);
    CHECK(strcmp(naive.logits_fnv1a, before) != 0);
    free(b);
    run_reference_free(&ref);
}

/* A tensor-parallel placement (tp, or hybrid's stages of tp) is compared within a few
 * bf16 steps of the largest logit; a sequential one bit for bit. */
TEST(test_tensor_parallel_placements_are_compared_within_tolerance)
{
    struct reference ref = {0};
    static struct placement tp_inside, sequential;
    tp_inside.tensor_parallel = 1;
    tp_inside.tp_degree = 2;
    struct point_result single = {.strategy = "single"}, hybrid = {.strategy = "hybrid", .placement = &tp_inside},
                        pipeline = {.strategy = "pipeline", .placement = &sequential};
    uint16_t *a = calloc(4, sizeof *a), *b = calloc(4, sizeof *b), *c = calloc(4, sizeof *c);
    int *none = NULL;
    a[0] = 0x4100;                 /* 8.0 */
    b[0] = c[0] = 0x4100;
    a[1] = 0x3f80;                 /* 1.0 */
    b[1] = c[1] = 0x3f81;          /* one bf16 step above */
    run_reference_or_check(&single, &ref, &a, 2, 2, &none);
    run_reference_or_check(&hybrid, &ref, &b, 2, 2, &none);
    CHECK(hybrid.logits_checked && hybrid.logits_match);
    CHECK_NEAR(hybrid.tolerance, RUN_TP_REL_TOLERANCE, 0);
    run_reference_or_check(&pipeline, &ref, &c, 2, 2, &none);
    CHECK(pipeline.logits_checked && !pipeline.logits_match);
    CHECK_NEAR(pipeline.tolerance, 0, 0);
    free(b);
    free(c);
    run_reference_free(&ref);
}

TEST(test_prompt_tokens_depend_on_the_seed_alone)
{
    int x[64], y[64], z[64];
    run_prompt_tokens(x, 64, 1000, 7);
    run_prompt_tokens(y, 64, 1000, 7);
    run_prompt_tokens(z, 64, 1000, 8);
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK(memcmp(x, z, sizeof x) != 0);
    for (int i = 0; i < 64; i++) CHECK(x[i] >= 0 && x[i] < 1000);
}

TEST(test_a_given_prompt_replaces_the_seeded_one)
{
    int given[8] = {5, 4, 3, 2, 1, 0, 9, 8}, got[8], seeded[8], drawn[8];
    run_prompt_fill(got, given, 8, 1000, 7);
    CHECK(memcmp(got, given, sizeof got) == 0);
    run_prompt_fill(drawn, NULL, 8, 1000, 7);
    run_prompt_tokens(seeded, 8, 1000, 7);
    CHECK(memcmp(drawn, seeded, sizeof drawn) == 0);
}

TEST(test_tp_is_judged_by_relative_error_not_its_largest_difference)
{
    enum { N = 1024 };
    struct reference ref = {0};
    static struct placement sharded;
    sharded.tensor_parallel = 1;
    struct point_result single = {.strategy = "single"}, tp = {.strategy = "tp"},
                        far = {.strategy = "hybrid", .placement = &sharded};
    uint16_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    int *none = NULL;
    for (int i = 0; i < N; i++) a[i] = b[i] = c[i] = 0x4100;   /* 8.0 */
    b[7] = 0x4110;   /* 9.0: one value a whole unit off, the rest equal: rel error 1/(8*32) */
    for (int i = 0; i < N; i++) c[i] = 0x4110;   /* every value 9.0: rel error 1/8 */
    run_reference_or_check(&single, &ref, &a, 32, 32, &none);
    run_reference_or_check(&tp, &ref, &b, 32, 32, &none);
    CHECK(tp.logits_checked && tp.logits_match);
    CHECK_NEAR(tp.max_abs_diff, 1, 0);
    CHECK_NEAR(tp.rel_error, 1.0 / (8 * 32), 1e-12);
    CHECK_NEAR(tp.tolerance, RUN_TP_REL_TOLERANCE, 0);
    run_reference_or_check(&far, &ref, &c, 32, 32, &none);
    CHECK(far.logits_checked && !far.logits_match);
    CHECK_NEAR(far.rel_error, 1.0 / 8, 1e-12);
    free(b);
    free(c);
    run_reference_free(&ref);
}

TEST(test_tp_whose_greedy_tokens_part_from_singles_is_said_not_judged)
{
    struct reference ref = {0};
    static struct placement sharded;
    sharded.tensor_parallel = 1;
    struct point_result single = {.strategy = "single", .decode_tokens = 4, .w = {.batch = 2}},
                        tp = {.strategy = "tp", .placement = &sharded, .decode_tokens = 4, .w = {.batch = 2}},
                        naive = {.strategy = "naive", .decode_tokens = 4, .w = {.batch = 2}};
    uint16_t *a = calloc(4, sizeof *a), *b = calloc(4, sizeof *b), *c = calloc(4, sizeof *c);
    int *ta = malloc(2 * sizeof *ta), *tb = malloc(2 * sizeof *tb), *tc = malloc(2 * sizeof *tc);
    ta[0] = tb[0] = tc[0] = 3;
    ta[1] = 5;
    tb[1] = tc[1] = 6;   /* the second sequence's last token differs */
    b[0] = c[0] = 0x4100;
    run_reference_or_check(&single, &ref, &a, 2, 2, &ta);
    run_reference_or_check(&tp, &ref, &b, 2, 2, &tb);
    CHECK(tp.tokens_parted && !tp.logits_checked);
    run_reference_or_check(&naive, &ref, &c, 2, 2, &tc);   /* a sequential strategy must match bit for bit */
    CHECK(!naive.tokens_parted && naive.logits_checked && !naive.logits_match);
    free(b), free(c), free(tb), free(tc);
    run_reference_free(&ref);
}

TEST(test_tp_tolerance_grows_with_depth_past_four_layers)
{
    static struct placement shallow, deep;
    shallow.n_modules = 3;
    deep.n_modules = 34;
    for (int i = 0; i < deep.n_modules; i++) deep.modules[i].kind = i ? MODULE_LAYER : MODULE_EMBED;
    for (int i = 0; i < shallow.n_modules; i++) shallow.modules[i].kind = MODULE_LAYER;
    deep.modules[33].kind = MODULE_HEAD;
    CHECK_NEAR(run_tp_tolerance(&shallow), RUN_TP_REL_TOLERANCE, 0);
    CHECK_NEAR(run_tp_tolerance(&deep), RUN_TP_REL_TOLERANCE * 8, 1e-15);
}
