/* Idle time by cause and MBU / MFU on hand-built traces where each cause is known,
 * and on the cost model's traces (the same code reads both). */
#include <stdlib.h>
#include "../base/check.h"
#include "../harness/exec/model/simulate.h"
#include "../harness/measure/hw_use.h"
#include "../harness/measure/idle_cause.h"
#include "../harness/run/simulate_run.h"
#include "test.h"

/* A step on `device` waiting for dep (-1: none). */
static int add_step(struct schedule *s, enum step_kind kind, int device, int dep)
{
    struct step st = {.kind = kind, .device = device, .src = -1, .dst = -1};
    if (dep >= 0) st.deps[st.n_deps++] = dep;
    return schedule_add(s, &st);
}

/* A record of `step` (-1: untagged) on `device`, times in us. */
static void add_rec(struct trace *t, enum record_kind kind, int device, int step, uint64_t start_us,
                    uint64_t end_us, int iteration)
{
    struct record r = {.kind = kind, .device = device, .start_ns = start_us * 1000, .end_ns = end_us * 1000,
                       .iteration = iteration, .src_device = -1, .dst_device = -1,
                       .has_step = step >= 0, .step = step};
    trace_add(t, &r);
}

/* Step 0 on GPU 0, then step 1 (`second`) on GPU 1 waiting for it; an empty trace. */
static void two_gpu_chain(struct schedule *s, struct trace *t, enum step_kind second)
{
    schedule_init(s, 2);
    add_step(s, STEP_LAYERS, 0, -1);
    add_step(s, second, 1, 0);
    trace_init(t, 2);
}

static void split(const struct trace *t, const struct schedule *s, int iters, struct iteration_metrics *m)
{
    metrics_mean(t, iters, m);
    idle_causes_mean(t, iters, s, m);
}

static void check_adds_up(int *failures_, const struct iteration_metrics *m)
{
    for (int d = 0; d < m->n_devices; d++) {
        const struct gpu_metrics *g = &m->gpu[d];
        CHECK_NEAR(g->idle_peer_wait_ms + g->idle_host_ms + g->idle_other_ms, g->idle_ms, 1e-9);
        CHECK(g->idle_peer_wait_ms >= 0 && g->idle_host_ms >= 0 && g->idle_other_ms >= -1e-12);
    }
}

TEST(test_gpu_waiting_for_a_copy_from_another_gpu_is_peer_wait)
{
    struct schedule s;
    schedule_init(&s, 2);
    add_step(&s, STEP_LAYERS, 0, -1);   /* 0 */
    add_step(&s, STEP_COPY, 0, 0);      /* 1: 0 -> 1 */
    add_step(&s, STEP_LAYERS, 1, 1);    /* 2 */
    struct trace t;
    trace_init(&t, 2);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 100, 0);
    add_rec(&t, REC_MEMCPY, 0, 1, 100, 110, 0);
    add_rec(&t, REC_KERNEL, 1, 2, 115, 215, 0);   /* 5 us after the copy: the event wait */
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK_NEAR(m.gpu[1].idle_peer_wait_ms, 0.110, 1e-12);
    CHECK_NEAR(m.gpu[1].idle_host_ms, 0.005, 1e-12);
    CHECK_NEAR(m.gpu[1].idle_other_ms, 0, 1e-12);
    /* GPU 0 has nothing left after its copy: that wait is no dependency's. */
    CHECK_NEAR(m.gpu[0].idle_peer_wait_ms, 0, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_host_ms, 0, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_other_ms, 0.105, 1e-12);
    check_adds_up(failures_, &m);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_gaps_with_every_dependency_done_are_host_launch_gaps)
{
    struct schedule s;
    schedule_init(&s, 1);
    add_step(&s, STEP_EMBED, 0, -1);
    add_step(&s, STEP_LAYERS, 0, 0);
    struct trace t;
    trace_init(&t, 1);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 20, 0);
    add_rec(&t, REC_KERNEL, 0, 1, 25, 60, 0);    /* 5 us launch gap between steps */
    add_rec(&t, REC_KERNEL, 0, 1, 70, 100, 0);   /* 10 us between kernels of one step */
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK_NEAR(m.gpu[0].idle_ms, 0.015, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_host_ms, 0.015, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_peer_wait_ms, 0, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_other_ms, 0, 1e-12);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_gap_before_work_no_step_claims_is_other)
{
    struct schedule s;
    schedule_init(&s, 1);
    add_step(&s, STEP_EMBED, 0, -1);
    add_step(&s, STEP_LAYERS, 0, 0);
    struct trace t;
    trace_init(&t, 1);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    add_rec(&t, REC_MEMCPY, 0, -1, 20, 30, 0);   /* a library's own copy */
    add_rec(&t, REC_KERNEL, 0, 1, 30, 40, 0);
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK_NEAR(m.gpu[0].idle_other_ms, 0.010, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_host_ms, 0, 1e-12);
    trace_free(&t);
    schedule_free(&s);
}

/* Two passes of one schedule (a prefill and a decode pass): the second pass's first
 * step waits for the first pass's last step, on the other GPU. */
TEST(test_next_pass_waits_for_the_last_pass_on_another_gpu)
{
    struct schedule s;
    struct trace t;
    two_gpu_chain(&s, &t, STEP_HEAD);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    add_rec(&t, REC_KERNEL, 1, 1, 12, 30, 0);
    add_rec(&t, REC_KERNEL, 0, 0, 32, 40, 0);
    add_rec(&t, REC_KERNEL, 1, 1, 41, 60, 0);
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK_NEAR(m.gpu[0].idle_peer_wait_ms, 0.020, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_host_ms, 0.002, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_other_ms, 0.020, 1e-12);   /* after its last work */
    /* GPU 1 waits for the pass it belongs to, not the earlier one. */
    CHECK_NEAR(m.gpu[1].idle_peer_wait_ms, 0.020, 1e-12);
    CHECK_NEAR(m.gpu[1].idle_host_ms, 0.003, 1e-12);
    CHECK_NEAR(m.gpu[1].idle_other_ms, 0, 1e-12);
    check_adds_up(failures_, &m);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_idle_causes_are_the_mean_over_iterations)
{
    struct schedule s;
    struct trace t;
    two_gpu_chain(&s, &t, STEP_LAYERS);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    add_rec(&t, REC_KERNEL, 1, 1, 10, 20, 0);
    add_rec(&t, REC_KERNEL, 0, 0, 100, 130, 1);
    add_rec(&t, REC_KERNEL, 1, 1, 130, 140, 1);
    struct iteration_metrics m;
    split(&t, &s, 2, &m);
    CHECK_NEAR(m.gpu[1].idle_peer_wait_ms, (0.010 + 0.030) / 2, 1e-12);
    check_adds_up(failures_, &m);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_unknown_busy_time_leaves_causes_unknown)
{
    struct schedule s;
    schedule_init(&s, 1);
    add_step(&s, STEP_LAYERS, 0, -1);
    struct trace t;
    trace_init(&t, 1);
    t.busy_known = 0;
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK(isnan(m.gpu[0].idle_peer_wait_ms) && isnan(m.gpu[0].idle_host_ms) && isnan(m.gpu[0].idle_other_ms));
    trace_free(&t);
    schedule_free(&s);
}

static int plan_point(const char *strategy, int gpus, const struct workload *w, struct model_spec *m,
                      struct placement *p, struct schedule *s)
{
    PB_TRY(model_spec_load("models/llama-2-7b.json", m));
    struct machine mc = {.gpus = gpus, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = (uint64_t)140 << 30;
    const struct strategy *st = strategy_find(strategy);
    if (!st) return pb_fail("no strategy %s", strategy);
    PB_TRY(st->place(m, w, &mc, p));
    return st->plan(m, p, w, s);
}

/* The cost model's naive split: GPU 1 waits for GPU 0's layers, and the split
 * says so, from the same code that reads a CUPTI trace. */
TEST(test_predicted_naive_split_waits_on_the_peer)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct model_spec m;
    static struct placement p;
    struct schedule s;
    CHECK_EQ_INT(plan_point("naive", 2, &w, &m, &p, &s), PB_OK);
    struct trace t;
    double ms;
    CHECK_EQ_INT(simulate_schedule(&prof, &m, &s, 2, &t, &ms), PB_OK);
    struct iteration_metrics im;
    split(&t, &s, 2, &im);
    check_adds_up(failures_, &im);
    /* GPU 1 idles about half the window, nearly all of it waiting for GPU 0. */
    CHECK(im.gpu[1].idle_peer_wait_ms > 0.9 * im.gpu[1].idle_ms);
    CHECK(im.gpu[1].idle_ms > 0.3 * im.gpu[1].window_ms);
    trace_free(&t);
    schedule_free(&s);
}

TEST(test_decode_passes_share_the_prefill_dependencies)
{
    const char *names[] = {"single", "naive", "auto", "optimal", "pipeline", "tp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct workload w = {.batch = 4, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
        struct model_spec m;
        static struct placement p;
        struct schedule pre, dec;
        CHECK_EQ_INT(plan_point(names[i], 2, &w, &m, &p, &pre), PB_OK);
        struct workload d = w;
        d.mode = MODE_DECODE;
        d.seq = 1;
        d.context = 129;
        CHECK_EQ_INT(strategy_find(names[i])->plan(&m, &p, &d, &dec), PB_OK);
        if (!idle_causes_same_structure(&pre, &dec)) fprintf(stderr, "  %s: decode differs\n", names[i]);
        CHECK(idle_causes_same_structure(&pre, &dec));
        schedule_free(&pre);
        schedule_free(&dec);
    }
}

TEST(test_mbu_and_mfu_are_the_steps_work_over_the_window_at_the_ceilings)
{
    struct schedule s;
    schedule_init(&s, 2);
    struct step a = {.kind = STEP_LAYERS, .device = 0, .flops = 4e12, .mem_bytes = 2e9};
    struct step c = {.kind = STEP_COPY, .device = 0, .src = 0, .dst = 1, .bytes = 1000000, .mem_bytes = 5e9};
    struct step b = {.kind = STEP_HEAD, .device = 1, .flops = 1e12, .mem_bytes = 1e9};
    schedule_add(&s, &a);
    schedule_add(&s, &c);
    schedule_add(&s, &b);
    struct step_work w = {0};
    step_work_add(&w, &s, 2);   /* two passes */
    CHECK_NEAR(w.flops[0], 8e12, 1);
    CHECK_NEAR(w.bytes[0], 4e9, 1);   /* the copy's bytes are a link's, not the memory roofline's */
    CHECK_NEAR(w.bytes[1], 2e9, 1);
    struct iteration_metrics m = {.n_devices = 2};
    for (int d = 0; d < 2; d++) m.gpu[d] = (struct gpu_metrics){.window_ms = 10, .known = 1};
    hw_use_fill(&m, &w, 4000, 800);   /* GB/s, TFLOP/s */
    CHECK_NEAR(m.gpu[0].mbu, 4e9 / (0.010 * 4000e9), 1e-12);
    CHECK_NEAR(m.gpu[0].mfu, 8e12 / (0.010 * 800e12), 1e-12);
    CHECK_NEAR(m.gpu[1].mfu, 2e12 / (0.010 * 800e12), 1e-12);
    hw_use_fill(&m, &w, 0, 800);   /* no ceiling: unknown, never zero */
    CHECK(isnan(m.gpu[0].mbu));
    schedule_free(&s);
}

/* Decode at one sequence reads every weight once a token: the cost model's run of it
 * sits near the copy-rate roofline (MBU well above its MFU). */
TEST(test_predicted_decode_is_bandwidth_bound)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    struct workload w = {.batch = 1, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct model_spec m;
    static struct placement p;
    struct schedule s;
    CHECK_EQ_INT(plan_point("single", 1, &w, &m, &p, &s), PB_OK);
    struct program g;
    CHECK_EQ_INT(program_plan(strategy_find("single"), &m, &p, &w, 16, &g), PB_OK);
    struct step_work work;
    step_work_of_program(&g, &work);
    /* 16 decode passes read the weights 16 times; the prefill once more. */
    CHECK(work.bytes[0] > 16.0 * 2 * 6.5e9 && work.bytes[0] < 18.0 * 2 * 7e9);
    /* Later passes attend to more positions: more bytes than 16 copies of the first. */
    struct step_work first = {0};
    step_work_add(&first, &g.prompt, 1);
    step_work_add(&first, &g.decode, 16);
    CHECK(work.bytes[0] > first.bytes[0]);
    program_free(&g);
    schedule_free(&s);
}

TEST(test_busy_time_splits_by_the_kind_of_step)
{
    struct schedule s;
    schedule_init(&s, 1);
    add_step(&s, STEP_EMBED, 0, -1);
    add_step(&s, STEP_LAYERS, 0, 0);
    struct trace t;
    trace_init(&t, 1);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    add_rec(&t, REC_KERNEL, 0, 1, 10, 50, 0);
    add_rec(&t, REC_KERNEL, 0, 1, 40, 60, 0);    /* overlaps: counted once */
    add_rec(&t, REC_MEMCPY, 0, -1, 60, 65, 0);
    struct iteration_metrics m;
    metrics_mean(&t, 1, &m);
    CHECK_EQ_INT(work_kinds_mean(&t, 1, &s, &m), PB_OK);
    CHECK_NEAR(m.gpu[0].work_ms[STEP_EMBED], 0.010, 1e-12);
    CHECK_NEAR(m.gpu[0].work_ms[STEP_LAYERS], 0.050, 1e-12);
    CHECK_NEAR(m.gpu[0].work_ms[PB_WORK_UNTAGGED], 0.005, 1e-12);
    CHECK_NEAR(m.gpu[0].work_ms[STEP_HEAD], 0, 1e-12);
    trace_free(&t);
    schedule_free(&s);
}

/* --simulate fills the new columns through run_attribute, as a measured run does. */
TEST(test_simulated_point_has_idle_causes_and_mbu)
{
    struct device_profile prof;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    struct workload w = {.batch = 1, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct model_spec m;
    static struct placement p;
    struct schedule s;
    CHECK_EQ_INT(plan_point("naive", 2, &w, &m, &p, &s), PB_OK);
    schedule_free(&s);
    struct point_result r;
    struct trace t;
    CHECK_EQ_INT(simulate_point(&prof, &m, strategy_find("naive"), &p, &w, 4, &r, &t), PB_OK);
    check_adds_up(failures_, &r.metrics);
    for (int d = 0; d < 2; d++) {
        CHECK(!isnan(r.metrics.gpu[d].idle_peer_wait_ms));
        CHECK(r.metrics.gpu[d].mbu > 0 && r.metrics.gpu[d].mbu < 1);
        CHECK(r.metrics.gpu[d].mfu > 0 && r.metrics.gpu[d].mfu < r.metrics.gpu[d].mbu);
        CHECK(r.metrics.gpu[d].work_ms[STEP_LAYERS] > 0);
    }
    /* Decode on two GPUs: each waits for the other between tokens. */
    CHECK(r.metrics.gpu[0].idle_peer_wait_ms > 0.5 * r.metrics.gpu[0].idle_ms);
    CHECK(r.metrics.gpu[1].idle_peer_wait_ms > 0.5 * r.metrics.gpu[1].idle_ms);
    point_result_free(&r);
    trace_free(&t);
}

/* Clocks round: a dependency that "ends" a few ns after its dependant starts is still
 * what the dependant waited for. */
TEST(test_dependency_ending_just_after_the_gap_is_still_the_one_waited_for)
{
    struct schedule s;
    struct trace t;
    two_gpu_chain(&s, &t, STEP_HEAD);
    add_rec(&t, REC_KERNEL, 0, 0, 0, 10, 0);
    add_rec(&t, REC_KERNEL, 1, 1, 10, 30, 0);
    struct record r = {.kind = REC_KERNEL, .device = 0, .start_ns = 29998, .end_ns = 40000, .src_device = -1,
                       .dst_device = -1, .has_step = 1, .step = 0};
    trace_add(&t, &r);   /* the next pass's first step, 2 ns "before" the head ends */
    struct iteration_metrics m;
    split(&t, &s, 1, &m);
    CHECK_NEAR(m.gpu[0].idle_peer_wait_ms, 0.019998, 1e-12);
    CHECK_NEAR(m.gpu[0].idle_host_ms, 0, 1e-12);
    trace_free(&t);
    schedule_free(&s);
}
