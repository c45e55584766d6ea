/* Holistic Trace Analysis reads our traces right: its temporal breakdown and its
 * comm/compute overlap, per rank, agree with our own metrics within 2% on a simulated
 * tp point and on a trace in the measured (CUPTI) form. HTA comes from PyPI into a venv
 * under the build folder; without the network the test says so and passes. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include "../base/check.h"
#include "../harness/run/simulate_run.h"
#include "test.h"

#define VENV "build/hta-venv"

/* 1 when HTA imports (installing it the first time), 0 when it cannot be had. */
static int hta_available(void)
{
    static int known = -1;
    if (known >= 0) return known;
    if (system(VENV "/bin/python -c 'import hta' >/dev/null 2>&1") == 0) return known = 1;
    int rc = system("(python3 -m venv " VENV " && timeout 600 " VENV "/bin/pip install -q HolisticTraceAnalysis) "
                    ">/dev/null 2>&1 && " VENV "/bin/python -c 'import hta' >/dev/null 2>&1");
    if (rc != 0)
        fprintf(stderr, "  skipped: HolisticTraceAnalysis could not be installed from PyPI into %s (no network, "
                "or no python3 venv); the HTA checks did not run\n", VENV);
    return known = rc == 0;
}

struct hta_rank {
    double idle_us, compute_us, non_compute_us, kernel_us, overlap;
};

/* HTA's numbers for the rank-N.json files in dir; returns the ranks read. */
static int hta_read(const char *dir, struct hta_rank *out, int cap)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, VENV "/bin/python tests/hta_breakdown.py %s 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int n = 0, rank;
    char ov[64];
    struct hta_rank h;
    while (n < cap && fscanf(p, "%d %lf %lf %lf %lf %63s", &rank, &h.idle_us, &h.compute_us, &h.non_compute_us,
                             &h.kernel_us, ov) == 6) {
        h.overlap = strtod(ov, NULL);   /* "nan" without communication */
        if (rank >= 0 && rank < cap) out[rank] = h;
        n++;
    }
    pclose(p);
    return n;
}

static int within_2pct(double theirs, double ours)
{
    double scale = fmax(fabs(ours), 1e-9);
    if (fabs(theirs - ours) / scale <= 0.02) return 1;
    fprintf(stderr, "  HTA %.6g against ours %.6g\n", theirs, ours);
    return 0;
}

/* Ours, from the records of GPU d over every iteration: HTA's kernel time is our own
 * span (first to last kernel; HTA counts copies too, so the traces here end on a
 * kernel), its compute our compute union, its idle the own span less all activity, and
 * its overlap the compute time during NCCL kernels over their time. */
static void check_against_ours(int *failures_, const struct trace *t, const struct hta_rank *h, int n)
{
    struct iteration_metrics all;
    CHECK_EQ_INT(metrics_iteration(t, -1, &all), PB_OK);
    for (int d = 0; d < n; d++) {
        const struct gpu_metrics *g = &all.gpu[d];
        double busy = g->window_ms - g->idle_ms;   /* all activity, copies included */
        CHECK(within_2pct(h[d].kernel_us, g->own_span_ms * 1e3));
        CHECK(within_2pct(h[d].compute_us, g->compute_ms * 1e3));
        CHECK(within_2pct(h[d].non_compute_us + h[d].compute_us, busy * 1e3));
        CHECK(within_2pct(h[d].idle_us + h[d].kernel_us, (2 * g->own_span_ms - busy) * 1e3));
        if (g->comm_ms > 0) {
            double overlap = (g->compute_ms + g->comm_ms + g->copy_ms - busy) / g->comm_ms;
            CHECK(within_2pct(h[d].overlap + 1, overlap + 1));
        }
    }
}

/* Point r's trace t as trace_hta_write lays it out (hta/00-<tag>/rank-<d>.json), read by
 * HTA into h[2] and checked against our metrics of t. */
static void hta_check_point(int *failures_, const struct point_result *r, const struct trace *t, const char *tag,
                            struct hta_rank *h)
{
    char dir[256], folder[400];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(trace_hta_write(dir, NULL, r, &t, 1), PB_OK);
    snprintf(folder, sizeof folder, "%s/hta/00-%s", dir, tag);
    CHECK_EQ_INT(hta_read(folder, h, 2), 2);
    check_against_ours(failures_, t, h, 2);
}

TEST(test_hta_reads_a_simulated_tp_point_as_we_do)
{
    if (!hta_available()) return;
    struct device_profile prof;
    struct model_spec m;
    CHECK_EQ_INT(device_profile_load("h200", &prof), PB_OK);
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    struct workload w = {.batch = 8, .seq = 128, .context = 128, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    struct machine mc = {.gpus = 2, .cpu_memory = (uint64_t)512 << 30, .budgets_from_user = 1};
    for (int d = 0; d < 2; d++) mc.gpu_memory[d] = prof.memory_bytes;
    static struct placement p;
    const struct strategy *tp = strategy_find("tp");
    CHECK_EQ_INT(tp->place(&m, &w, &mc, &p), PB_OK);
    struct point_result r;
    struct trace t;
    CHECK_EQ_INT(simulate_point(&prof, &m, tp, &p, &w, 0, &r, &t), PB_OK);
    struct hta_rank h[2];
    hta_check_point(failures_, &r, &t, "tp-b8-s128", h);
    point_result_free(&r);
    trace_free(&t);
}

static void add(struct trace *t, enum record_kind kind, int device, int stream, int iteration, double start_us,
                double end_us, const char *name)
{
    struct record r = {.kind = kind, .device = device, .stream = stream, .iteration = iteration,
                       .start_ns = (uint64_t)(start_us * 1e3), .end_ns = (uint64_t)(end_us * 1e3),
                       .src_device = -1, .dst_device = -1};
    if (kind == REC_MEMCPY) {
        r.copy = COPY_PTOP;
        r.src_device = device;
        r.dst_device = 1 - device;
        r.bytes = 1 << 20;
    }
    snprintf(r.name, sizeof r.name, "%s", name);
    trace_add(t, &r);
}

/* Two GPUs, two iterations as CUPTI records them: GEMMs, an NCCL all-reduce on a
 * second stream that overlaps a GEMM by a third of its time, a peer copy, idle gaps
 * within and between the iterations. */
TEST(test_hta_reads_a_measured_trace_as_we_do)
{
    if (!hta_available()) return;
    struct trace t;
    trace_init(&t, 2);
    for (int it = 0; it < 2; it++)
        for (int d = 0; d < 2; d++) {
            double b = 1000.0 * it + 10 * d;
            add(&t, REC_KERNEL, d, 0, it, b, b + 300, "sm90_xmma_gemm_bf16bf16_bf16f32");
            add(&t, REC_COMM, d, 1, it, b + 200, b + 500, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)");
            add(&t, REC_MEMCPY, d, 2, it, b + 510, b + 540, "Memcpy PtoP");
            add(&t, REC_KERNEL, d, 0, it, b + 550, b + 700, "void rmsnorm_kernel<256>(bf16*, bf16 const*, int)");
        }
    struct point_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.strategy, sizeof r.strategy, "tp");
    r.w.batch = 1;
    r.w.seq = 16;
    struct hta_rank h[2];
    hta_check_point(failures_, &r, &t, "tp-b1-s16", h);
    CHECK(within_2pct(h[0].overlap, 100.0 / 300));   /* the GEMM runs 100 of the all-reduce's 300 us */
    trace_free(&t);
}
