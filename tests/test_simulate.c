/* The simulator on hand-built and planned schedules: the GPipe bubble, the ring
 * all-reduce, naive's 1/N utilisation, dependencies, streams and records. */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/device_profile.h"
#include "../harness/measure/metrics.h"
#include "../harness/exec/model/simulate.h"
#include "sim_fixture.h"
#include "test.h"

/* A profile with round numbers: 100 TFLOP/s (1e5 FLOP/ns), 1000 GB/s (1000 B/ns),
 * links at 100 GB/s; latencies and launch overhead zero unless a test sets them. */
static struct device_profile round_profile(void)
{
    struct device_profile p = {.name = "round", .gpu = "Round GPU", .memory_bytes = (uint64_t)80 << 30,
                               .bf16_tflops = 100, .bf16_peak_tflops = 100, .hbm_gbps = 1000,
                               .hbm_peak_gbps = 1000, .peer_link = LINK_NVLINK};
    for (int k = 0; k < LINK_KINDS; k++)
        p.link[k] = (struct link_profile){.present = 1, .gbps = 100, .peer_gbps = 100, .peak_gbps = 100};
    p.allreduce.bus_gbps = 100;
    return p;
}

static int add_compute(struct schedule *s, int dev, int stream, double flops, int dep)
{
    struct step st = {.kind = STEP_LAYERS, .device = dev, .stream = stream, .layer = dev, .count = 1,
                      .flops = flops, .rows = 1, .batch = 1, .n_deps = dep >= 0, .deps = {dep}};
    return schedule_add(s, &st);
}

static const struct record *find_step(const struct trace *t, int step, int iteration, enum record_kind k)
{
    for (int i = 0; i < t->n; i++)
        if (t->rec[i].kind == k && (int)t->rec[i].correlation == step && t->rec[i].iteration == iteration)
            return &t->rec[i];
    return NULL;
}

/* p stages on p GPUs, m microbatches, equal stages of 1 ms, free copies. */
static void gpipe_schedule(struct schedule *s, int p, int m)
{
    schedule_init(s, p);
    s->stages = p;
    s->microbatches = m;
    for (int mb = 0; mb < m; mb++) {
        int last = -1;
        for (int st = 0; st < p; st++) {
            if (st > 0) last = schedule_add_copy(s, st - 1, st, 0, mb, last);
            struct step c = {.kind = STEP_LAYERS, .device = st, .stage = st, .microbatch = mb,
                             .layer = st, .count = 1, .flops = 1e11, .n_deps = last >= 0, .deps = {last}};
            last = schedule_add(s, &c);
        }
    }
}

TEST(test_simulated_pipeline_has_the_gpipe_bubble)
{
    struct device_profile prof = round_profile();
    int cases[][2] = {{2, 1}, {2, 4}, {4, 8}, {3, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int p = cases[c][0], m = cases[c][1];
        struct schedule s;
        gpipe_schedule(&s, p, m);
        struct trace t;
        double latency;
        CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
        /* 1e11 FLOP at 1e5 FLOP/ns = 1 ms per stage and microbatch. */
        CHECK_NEAR(latency, m + p - 1, 1e-9);
        struct iteration_metrics im;
        CHECK_EQ_INT(metrics_iteration(&t, 0, &im), PB_OK);
        for (int d = 0; d < p; d++)
            CHECK_NEAR(metrics_bubble(&im, d), metrics_gpipe_bound(p, m, 1), 1e-9);
        trace_free(&t);
        schedule_free(&s);
    }
}

TEST(test_ring_allreduce_takes_the_ring_time)
{
    struct device_profile prof = round_profile();
    prof.launch_us = 2;
    prof.allreduce.step_latency_us = 3;
    prof.allreduce.bus_gbps = 300;
    int n = 4;
    uint64_t bytes = 1000000000;
    /* Rank r computes r ms, then all join one all-reduce. */
    struct schedule s;
    schedule_init(&s, n);
    int coll[8];
    for (int r = 0; r < n; r++) {
        int c = add_compute(&s, r, 0, r * 1e11, -1);
        struct step ar = {.kind = STEP_ALLREDUCE, .device = r, .collective = 7, .bytes = bytes,
                          .n_deps = 1, .deps = {c}};
        coll[r] = schedule_add(&s, &ar);
    }
    double expect_ns = 2e3 + 2.0 * (n - 1) * 3e3 + 2.0 * (n - 1) / n * bytes / 300.0;
    CHECK_NEAR(sim_allreduce_ns(&prof, bytes, n), expect_ns, 1e-6);
    CHECK_NEAR(sim_allreduce_ns(&prof, bytes, 1), 0, 0);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
    /* Rank r arrives after r ms plus its layer's launches; the last at 3 ms; every
     * rank's NCCL kernel ends together. */
    double launches = SIM_KERNELS_LAYER * 2e3;
    for (int r = 0; r < n; r++) {
        const struct record *rec = find_step(&t, coll[r], 0, REC_COMM);
        CHECK(rec != NULL);
        if (!rec) continue;
        CHECK_NEAR((double)rec->start_ns, r * 1e6 + launches, 1);
        CHECK_NEAR((double)rec->end_ns, 3e6 + launches + expect_ns, 1);
        CHECK_EQ_INT(rec->bytes, bytes);
        CHECK_EQ_INT(rec->device, r);
    }
    CHECK_NEAR(latency, (3e6 + launches + expect_ns) / 1e6, 1e-6);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_copy_takes_latency_plus_bytes_over_the_peer_link)
{
    struct device_profile prof = round_profile();
    prof.link[LINK_NVLINK].latency_us = 8;
    prof.link[LINK_NVLINK].peer_gbps = 400;
    CHECK_NEAR(sim_copy_ns(&prof, 4000000), 8e3 + 1e4, 1e-6);
    prof.peer_link = LINK_PCIE;   /* now the pcie figures apply */
    CHECK_NEAR(sim_copy_ns(&prof, 4000000), 4e4, 1e-6);
    CHECK_NEAR(sim_h2d_ns(&prof, 1000), 10, 1e-9);
}

TEST(test_compute_step_follows_the_roofline)
{
    struct device_profile prof = round_profile();
    prof.launch_us = 1;
    struct step math = {.kind = STEP_LAYERS, .count = 2, .flops = 1e9, .mem_bytes = 1e3};
    struct step mem = {.kind = STEP_LAYERS, .count = 2, .flops = 1e3, .mem_bytes = 1e9};
    /* 1e9 FLOP at 1e5/ns = 1e4 ns; 1e9 B at 1000 B/ns = 1e6 ns; 2 layers of kernels. */
    CHECK_NEAR(sim_compute_ns(&prof, NULL, &math, 1, 0), 1e4 + 2 * SIM_KERNELS_LAYER * 1e3, 1e-6);
    CHECK_NEAR(sim_compute_ns(&prof, NULL, &mem, 1, 0), 1e6 + 2 * SIM_KERNELS_LAYER * 1e3, 1e-6);
}

TEST(test_empty_step_work_comes_from_the_model)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct device_profile prof = round_profile();
    struct step empty = {.kind = STEP_LAYERS, .count = 4, .rows = 4096, .batch = 8};
    struct step full = empty;
    full.flops = 4 * model_layer_flops(&m, 8, 512, 512);
    full.mem_bytes = 4 * model_layer_bytes(&m, DTYPE_BF16, 8, 512, 512);
    CHECK(sim_compute_ns(&prof, &m, &empty, 1, 0) > 0);
    CHECK_NEAR(sim_compute_ns(&prof, &m, &empty, 1, 0), sim_compute_ns(&prof, &m, &full, 1, 0), 1e-6);
}

TEST(test_steps_on_one_stream_serialise_and_devices_overlap)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 2);
    int a = add_compute(&s, 0, 0, 1e11, -1);
    int b = add_compute(&s, 0, 0, 1e11, -1);   /* same stream, no dependency */
    int c = add_compute(&s, 1, 0, 1e11, -1);   /* another GPU */
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
    const struct record *ra = find_step(&t, a, 0, REC_KERNEL), *rb = find_step(&t, b, 0, REC_KERNEL),
                        *rc = find_step(&t, c, 0, REC_KERNEL);
    CHECK(ra && rb && rc);
    if (ra && rb && rc) {
        CHECK_EQ_INT(rb->start_ns, ra->end_ns);
        CHECK_EQ_INT(rc->start_ns, 0);
        CHECK_EQ_INT(rc->end_ns, ra->end_ns);
    }
    CHECK_NEAR(latency, 2.0, 1e-9);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_copy_on_its_own_stream_overlaps_the_next_compute)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 2);
    int a = add_compute(&s, 0, 0, 1e11, -1);
    int cp = schedule_add_copy(&s, 0, 1, 100000000, 0, a);   /* 1 ms at 100 GB/s, stream 1 */
    int b = add_compute(&s, 0, 0, 1e11, -1);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
    const struct record *rcp = find_step(&t, cp, 0, REC_MEMCPY), *rb = find_step(&t, b, 0, REC_KERNEL);
    CHECK(rcp && rb);
    if (rcp && rb) {
        CHECK_EQ_INT(rcp->start_ns, 1000000);
        CHECK_EQ_INT(rcp->end_ns, 2000000);
        CHECK_EQ_INT(rb->start_ns, 1000000);
        CHECK_EQ_INT(rcp->copy, COPY_PTOP);
        CHECK_EQ_INT(rcp->src_device, 0);
        CHECK_EQ_INT(rcp->dst_device, 1);
        CHECK_EQ_INT(rcp->bytes, 100000000);
    }
    trace_free(&t);
    schedule_free(&s);
}

/* Every record starts after the records of the steps it depends on have ended. */
static void check_deps_respected(int *failures_, const struct schedule *s, const struct trace *t)
{
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        for (int k = 0; k < t->n; k++) {
            const struct record *r = &t->rec[k];
            if (r->kind == REC_RANGE || (int)r->correlation != i || r->iteration != 0) continue;
            if (r->kind == REC_MEMCPY && r->copy == COPY_HTOD) continue;
            for (int d = 0; d < st->n_deps; d++)
                for (int q = 0; q < t->n; q++) {
                    const struct record *dr = &t->rec[q];
                    if (dr->kind == REC_RANGE || (int)dr->correlation != st->deps[d] || dr->iteration != 0)
                        continue;
                    CHECK(r->start_ns >= dr->end_ns);
                }
        }
    }
}

static int plan(const char *strategy, const char *model, int gpus, int batch, int seq,
                struct model_spec *m, struct schedule *s)
{
    PB_TRY(model_spec_load(model, m));
    return plan_prefill(strategy, m, gpus, batch, seq, 0, s);
}

TEST(test_naive_on_n_equal_gpus_is_busy_about_one_nth)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    for (int n = 2; n <= 8; n *= 2) {
        struct model_spec m;
        struct schedule s;
        CHECK_EQ_INT(plan("naive", "models/llama-2-7b.json", n, 8, 512, &m, &s), PB_OK);
        struct trace t;
        double latency;
        CHECK_EQ_INT(simulate_schedule(&prof, &m, &s, 3, &t, &latency), PB_OK);
        struct iteration_metrics im;
        CHECK_EQ_INT(metrics_mean(&t, 3, &im), PB_OK);
        CHECK_EQ_INT(im.n_devices, n);
        double mean = 0;
        for (int d = 0; d < n; d++) {
            /* Equal layer counts; embed and the head tilt the ends a little. */
            CHECK_NEAR(im.gpu[d].utilisation, 1.0 / n, 0.25 / n);
            mean += im.gpu[d].utilisation / n;
        }
        CHECK_NEAR(mean, 1.0 / n, 0.02);
        CHECK_NEAR(im.gpu[0].window_ms, latency, 1e-6);
        CHECK(t.predicted);
        check_deps_respected(failures_, &s, &t);
        trace_free(&t);
        schedule_free(&s);
    }
}

TEST(test_planned_pipeline_and_tp_respect_dependencies)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    const char *names[] = {"pipeline", "tp", "single", "optimal", "hybrid"};
    for (int i = 0; i < 5; i++) {
        struct model_spec m;
        struct schedule s;
        CHECK_EQ_INT(plan(names[i], "models/llama-2-7b.json", 4, 8, 128, &m, &s), PB_OK);
        struct trace t;
        double latency;
        CHECK_EQ_INT(simulate_schedule(&prof, &m, &s, 1, &t, &latency), PB_OK);
        CHECK(latency > 0);
        check_deps_respected(failures_, &s, &t);
        if (!strcmp(names[i], "tp")) {
            int comm = 0;
            for (int k = 0; k < t.n; k++) comm += t.rec[k].kind == REC_COMM;
            CHECK_EQ_INT(comm, 4 * (2 * m.layers + 1));
        }
        trace_free(&t);
        schedule_free(&s);
    }
}

TEST(test_pipeline_is_faster_than_naive_in_simulation)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    struct model_spec m;
    struct schedule naive, pipe;
    CHECK_EQ_INT(plan("naive", "models/llama-2-7b.json", 4, 8, 512, &m, &naive), PB_OK);
    CHECK_EQ_INT(plan("pipeline", "models/llama-2-7b.json", 4, 8, 512, &m, &pipe), PB_OK);
    CHECK(simulated_ms(failures_, &prof, &m, &pipe, NULL) < simulated_ms(failures_, &prof, &m, &naive, NULL));
    schedule_free(&naive);
    schedule_free(&pipe);
}

TEST(test_records_look_like_measured_ones)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 2);
    struct step layers = {.kind = STEP_LAYERS, .device = 0, .layer = 0, .count = 16, .flops = 1e9};
    int a = schedule_add(&s, &layers);
    schedule_add_copy(&s, 0, 1, 4096, 0, a);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 2, &t, &latency), PB_OK);
    CHECK_EQ_INT(t.predicted, 1);
    CHECK_EQ_INT(t.n_devices, 2);
    CHECK_EQ_INT(t.n, 2 * 3);   /* per iteration: a range, a kernel, a copy */
    const struct record *k1 = find_step(&t, a, 1, REC_KERNEL);
    CHECK(k1 && !strcmp(k1->name, "layers 0-15"));
    const struct record *k0 = find_step(&t, a, 0, REC_KERNEL);
    /* Iteration 1 starts where iteration 0 ended. */
    if (k0 && k1) CHECK_NEAR((double)(k1->start_ns - k0->start_ns), latency * 1e6, 1);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_offloaded_step_streams_its_weights_first)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 1);
    struct step st = {.kind = STEP_LAYERS, .device = 0, .layer = 0, .count = 1, .flops = 1e11,
                      .offloaded = 1, .bytes = 100000000};
    int a = schedule_add(&s, &st);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
    const struct record *h = find_step(&t, a, 0, REC_MEMCPY), *k = find_step(&t, a, 0, REC_KERNEL);
    CHECK(h && k);
    if (h && k) {
        CHECK_EQ_INT(h->copy, COPY_HTOD);
        CHECK_EQ_INT(h->end_ns - h->start_ns, 1000000);   /* 100 MB at 100 GB/s */
        CHECK_EQ_INT(k->start_ns, h->end_ns);
    }
    CHECK_NEAR(latency, 2.0, 1e-9);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_collective_missing_a_rank_is_reported)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 2);
    struct step ar = {.kind = STEP_ALLREDUCE, .device = 0, .collective = 0, .bytes = 8};
    schedule_add(&s, &ar);
    /* Rank 1 waits for its part of the call behind a step that waits for the call. */
    struct step c = {.kind = STEP_LAYERS, .device = 1, .count = 1, .flops = 1, .n_deps = 1, .deps = {0}};
    int x = schedule_add(&s, &c);
    ar.device = 1;
    ar.n_deps = 1;
    ar.deps[0] = x;
    schedule_add(&s, &ar);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_ERR);
    CHECK(strstr(pb_last_error(), "cannot finish"));
    schedule_free(&s);
}

TEST(test_collective_of_a_group_takes_the_ring_time_of_its_group_alone)
{
    struct device_profile prof = round_profile();
    prof.allreduce.step_latency_us = 3;
    uint64_t bytes = 1000000000;
    /* 4 devices in 2 groups of 2 (hybrid's stages): each group all-reduces on its own. */
    struct schedule s;
    schedule_init(&s, 4);
    schedule_set_groups(&s, 2);
    CHECK_EQ_INT(s.n_groups, 2);
    CHECK_EQ_INT(schedule_group_size(&s, 1), 2);
    CHECK_EQ_INT(schedule_group_rank(&s, 3), 1);
    int coll[4];
    for (int r = 0; r < 4; r++) {
        int c = add_compute(&s, r, 0, (r / 2) * 1e11, -1);   /* group 1 arrives 1 ms later */
        struct step ar = {.kind = STEP_ALLREDUCE, .device = r, .collective = r / 2, .group = r / 2,
                          .bytes = bytes, .n_deps = 1, .deps = {c}};
        coll[r] = schedule_add(&s, &ar);
    }
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_OK);
    double ring2 = sim_allreduce_ns(&prof, bytes, 2);
    CHECK(ring2 < sim_allreduce_ns(&prof, bytes, 4));
    for (int r = 0; r < 4; r++) {
        const struct record *rec = find_step(&t, coll[r], 0, REC_COMM);
        CHECK(rec != NULL);
        if (rec) CHECK_NEAR((double)rec->end_ns, (r / 2) * 1e6 + ring2, 1);
    }
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_collective_on_a_device_outside_its_group_is_refused)
{
    struct device_profile prof = round_profile();
    struct schedule s;
    schedule_init(&s, 4);
    schedule_set_groups(&s, 2);
    struct step ar = {.kind = STEP_ALLREDUCE, .device = 2, .collective = 0, .group = 0, .bytes = 8};
    schedule_add(&s, &ar);
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule(&prof, NULL, &s, 1, &t, &latency), PB_ERR);
    CHECK(strstr(pb_last_error(), "device 2, which is not in its group 0") != NULL);
    schedule_free(&s);
}

/* n ranks that arrive together at one all-reduce of `bytes`; its end in ns. */
static double one_allreduce_ns(const struct device_profile *prof, int n, uint64_t bytes, const int *ordinal,
                               enum allreduce_algo algo)
{
    struct schedule s;
    schedule_init(&s, n);
    int coll = -1;
    for (int r = 0; r < n; r++) {
        struct step ar = {.kind = STEP_ALLREDUCE, .device = r, .collective = 0, .bytes = bytes};
        coll = schedule_add(&s, &ar);
    }
    struct trace t;
    double latency = -1;
    if (simulate_schedule_allreduce(prof, NULL, &s, ordinal, algo, 1, &t, &latency) != PB_OK) return -1;
    const struct record *rec = find_step(&t, coll, 0, REC_COMM);
    double end = rec ? (double)rec->end_ns : -1;
    trace_free(&t);
    schedule_free(&s);
    return end;
}

/* The round profile with a 2 us launch and a peer all-reduce table: 400 GB/s peer
 * reads, a 1.5 us barrier, one-shot to 64 KiB, two-shot to 4 MiB. */
static struct device_profile peer_profile(void)
{
    struct device_profile p = round_profile();
    p.launch_us = 2;
    p.peer_allreduce = (struct peer_allreduce_profile){.present = 1, .read_gbps = 400, .latency_us = 1.5,
                                                       .oneshot_max_bytes = 1 << 16, .twoshot_max_bytes = 1 << 22};
    return p;
}

TEST(test_peer_allreduce_takes_its_own_formulas)
{
    struct device_profile prof = peer_profile();
    uint64_t bytes = 1 << 20;
    /* one-shot: launch + latency + (n-1) x bytes / read; two-shot: launch + 2 latencies + 2(n-1)/n x bytes / read */
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 4, 0), 2e3 + 1.5e3 + 3.0 * bytes / 400, 1e-6);
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_TWOSHOT, bytes, 4, 0), 2e3 + 3e3 + 1.5 * bytes / 400, 1e-6);
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 1, 0), 0, 0);
    /* ranks on one GPU read their own memory */
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 2, 1), 2e3 + 1.5e3 + 1.0 * bytes / 1000, 1e-6);
    /* without a peer_allreduce table: the peer link's copy rate and latency */
    struct device_profile bare = round_profile();
    bare.link[LINK_NVLINK].latency_us = 4;
    CHECK_NEAR(sim_peer_allreduce_ns(&bare, ALLREDUCE_ONESHOT, bytes, 2, 0), 4e3 + 1.0 * bytes / 100, 1e-6);
}

TEST(test_simulated_allreduce_follows_the_asked_algorithm_and_autos_table)
{
    struct device_profile prof = peer_profile();
    prof.allreduce.step_latency_us = 3;
    uint64_t small = 8192, mid = 1 << 20, large = 1 << 26;
    CHECK_NEAR(one_allreduce_ns(&prof, 2, small, NULL, ALLREDUCE_NCCL), sim_allreduce_ns(&prof, small, 2), 1);
    CHECK_NEAR(one_allreduce_ns(&prof, 2, small, NULL, ALLREDUCE_TWOSHOT),
               sim_peer_allreduce_ns(&prof, ALLREDUCE_TWOSHOT, small, 2, 0), 1);
    /* auto: one-shot, two-shot, then NCCL by size */
    CHECK_NEAR(one_allreduce_ns(&prof, 2, small, NULL, ALLREDUCE_AUTO),
               sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, small, 2, 0), 1);
    CHECK_NEAR(one_allreduce_ns(&prof, 2, mid, NULL, ALLREDUCE_AUTO),
               sim_peer_allreduce_ns(&prof, ALLREDUCE_TWOSHOT, mid, 2, 0), 1);
    CHECK_NEAR(one_allreduce_ns(&prof, 2, large, NULL, ALLREDUCE_AUTO), sim_allreduce_ns(&prof, large, 2), 1);
    /* logical devices on one GPU: no NCCL, so auto stays on peer memory (two-shot above the one-shot bound) */
    int shared[2] = {0, 0};
    CHECK_NEAR(one_allreduce_ns(&prof, 2, large, shared, ALLREDUCE_AUTO),
               sim_peer_allreduce_ns(&prof, ALLREDUCE_TWOSHOT, large, 2, 1), 1);
    /* the one-shot 8 KiB sum is cheaper than NCCL's ring on the same profile */
    CHECK(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, small, 2, 0) < sim_allreduce_ns(&prof, small, 2));
}

TEST(test_auto_without_a_table_takes_nccl_where_it_can)
{
    struct allreduce_table none = {0}, t = {.known = 1, .oneshot_max_bytes = 100, .twoshot_max_bytes = 1000};
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &none, 10, 1), ALLREDUCE_NCCL);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &none, 10, 0), ALLREDUCE_ONESHOT);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &t, 100, 1), ALLREDUCE_ONESHOT);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &t, 101, 1), ALLREDUCE_TWOSHOT);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &t, 1001, 1), ALLREDUCE_NCCL);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_AUTO, &t, 1001, 0), ALLREDUCE_TWOSHOT);
    CHECK_EQ_INT(allreduce_choose(ALLREDUCE_TWOSHOT, &t, 1, 1), ALLREDUCE_TWOSHOT);
}

/* Logical devices on one GPU: the event-synchronised sum moves every rank's bytes on
 * that GPU (one-shot n(n + 3), two-shot 5n - 1 times the message) after its measured
 * fixed cost, and the GPU's compute waits for it. */
TEST(test_shared_gpu_allreduce_sums_every_ranks_traffic_and_holds_the_gpu)
{
    struct device_profile prof = peer_profile();
    uint64_t bytes = 1 << 20;
    double before = sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 2, 1);
    prof.shared_gpu = (struct shared_gpu_profile){.present = 1, .oneshot_us = 30, .twoshot_us = 45, .gbps = 500};
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 2, 1), 30e3 + 10.0 * bytes / 500, 1e-6);
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_TWOSHOT, bytes, 2, 1), 45e3 + 9.0 * bytes / 500, 1e-6);
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 4, 1), 30e3 + 28.0 * bytes / 500, 1e-6);
    CHECK(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 2, 1) > before);
    /* distinct GPUs keep the peer formulas */
    CHECK_NEAR(sim_peer_allreduce_ns(&prof, ALLREDUCE_ONESHOT, bytes, 2, 0), 2e3 + 1.5e3 + 1.0 * bytes / 400, 1e-6);
    /* all-gather on one GPU: every rank copies every slice there */
    CHECK_NEAR(sim_peer_allgather_ns(&prof, bytes, 2, 1), 4 * (2e3 + 2.0 * bytes / 1000), 1e-6);

    /* rank 0 sums and then computes; rank 1 computes right after its arrival, on the
     * same GPU: its compute cannot start before the sum's kernels end */
    struct schedule s;
    schedule_init(&s, 2);
    int r0 = add_compute(&s, 0, 0, 1e6, -1), r1 = add_compute(&s, 1, 0, 1e6, -1);
    struct step a0 = {.kind = STEP_ALLREDUCE, .device = 0, .collective = 0, .bytes = bytes, .n_deps = 1, .deps = {r0}};
    struct step a1 = {.kind = STEP_ALLREDUCE, .device = 1, .collective = 0, .bytes = bytes, .n_deps = 1, .deps = {r1}};
    int ar0 = schedule_add(&s, &a0);
    schedule_add(&s, &a1);
    int after = add_compute(&s, 0, 0, 1e6, ar0);
    int shared[2] = {0, 0};
    struct trace t;
    double latency;
    CHECK_EQ_INT(simulate_schedule_allreduce(&prof, NULL, &s, shared, ALLREDUCE_ONESHOT, 1, &t, &latency), PB_OK);
    const struct record *sum = find_step(&t, ar0, 0, REC_COMM), *next = find_step(&t, after, 0, REC_KERNEL);
    const struct record *c0 = find_step(&t, r0, 0, REC_KERNEL), *c1 = find_step(&t, r1, 0, REC_KERNEL);
    CHECK(sum && next && c0 && c1);
    if (sum && next && c0 && c1) {
        CHECK(c1->start_ns >= c0->end_ns);   /* the two ranks' compute shares the GPU */
        CHECK_NEAR((double)sum->end_ns - (double)c1->end_ns, 30e3 + 10.0 * bytes / 500, 1);
        CHECK(next->start_ns >= sum->end_ns);
    }
    trace_free(&t);
    schedule_free(&s);
}

/* Compute of two logical devices on one GPU: where their steps' times from ready to
 * end overlap (the GPU interleaves them), each is priced at the measured slowdown;
 * a step alone on the GPU, or on a GPU of its own, is not. */
TEST(test_shared_gpu_compute_that_overlaps_is_slowed_and_alone_is_not)
{
    struct device_profile prof = round_profile();
    /* two independent steps of 1 ms each (1e11 FLOP at 100 TFLOP/s) on devices 0, 1,
     * then one more on device 0 after both */
    struct schedule s;
    schedule_init(&s, 2);
    int a = add_compute(&s, 0, 0, 1e11, -1), b = add_compute(&s, 1, 0, 1e11, -1);
    struct step last = {.kind = STEP_LAYERS, .device = 0, .stream = 0, .layer = 0, .count = 1, .flops = 1e11,
                        .rows = 1, .batch = 1, .n_deps = 2, .deps = {a, b}};
    int c = schedule_add(&s, &last);
    int shared[2] = {0, 0};
    /* one GPU: the three run one after the other */
    CHECK_NEAR(simulated_ms(failures_, &prof, NULL, &s, shared), 3.0, 1e-6);
    prof.shared_compute.layers = (struct shared_slowdown_table){1, {{.rows = 1, .slowdown = 1.25}}};
    /* another table: not what whole layers take */
    prof.shared_compute.tp = (struct shared_slowdown_table){1, {{.rows = 1, .slowdown = 3}}};
    struct trace t;
    double slowed;
    CHECK_EQ_INT(simulate_schedule_on(&prof, NULL, &s, shared, 1, &t, &slowed), PB_OK);
    CHECK_NEAR(slowed, 2 * 1.25 + 1.0, 1e-6);   /* a and b overlap; c runs alone */
    const struct record *rc = find_step(&t, c, 0, REC_KERNEL);
    CHECK(rc && rc->end_ns - rc->start_ns == 1000000);
    trace_free(&t);
    /* two GPUs: nothing shared, nothing slowed */
    CHECK_NEAR(simulated_ms(failures_, &prof, NULL, &s, NULL), 2.0, 1e-6);
    schedule_free(&s);
    /* tensor-parallel halves of two ranks on one GPU take the tp table */
    schedule_init(&s, 2);
    s.tp_world = 2;
    for (int r = 0; r < 2; r++) {
        struct step half = {.kind = STEP_ATTENTION, .device = r, .flops = 1e11, .rows = 1, .batch = 1};
        schedule_add(&s, &half);
    }
    CHECK_NEAR(simulated_ms(failures_, &prof, NULL, &s, shared), 2 * 3.0, 1e-6);
    schedule_free(&s);
}

/* Two logical devices' 1 x 128 microbatches of a 4 x 128 batch overlap on one GPU: they
 * run on parts tuned at 512 rows, so they take the tuned_above slowdown of (128, 512);
 * the same steps of a 1 x 128 batch take the ordinary one. */
TEST(test_shared_gpu_microbatches_below_their_tuning_take_the_tuned_above_slowdown)
{
    struct device_profile prof = round_profile();
    prof.shared_compute.layers = (struct shared_slowdown_table){1, {{.rows = 128, .slowdown = 1.25}}};
    prof.shared_compute.tuned_above = (struct shared_tuned_table){1, {{.rows = 128, .tune_rows = 512, .slowdown = 1.5}}};
    int shared[2] = {0, 0};
    for (int batch = 1; batch <= 4; batch += 3) {
        struct schedule s;
        schedule_init(&s, 2);
        for (int d = 0; d < 2; d++) {   /* 1 ms each, microbatch d (its sequence offset: d x (batch - 1) / 1) */
            struct step st = {.kind = STEP_LAYERS, .device = d, .count = 1, .flops = 1e11, .rows = 128, .seq = 128,
                              .context = 128, .batch = 1, .batch_offset = d * (batch - 1), .microbatch = d};
            schedule_add(&s, &st);
        }
        double ms = simulated_ms(failures_, &prof, NULL, &s, shared);
        CHECK_NEAR(ms, 2 * (batch == 4 ? 1.5 : 1.25), 1e-6);
        schedule_free(&s);
    }
}
