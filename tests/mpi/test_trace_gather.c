/* Trace gathering on synthetic records: each rank's clock is skewed on purpose
 * (rank r runs r x 5 ms + r x 123 ns ahead); after the offsets are measured and
 * the records gathered, rank 0 sees one timeline on its own clock. */
#include <stdlib.h>
#include <time.h>
#include "../../base/check.h"
#include "../../harness/measure/metrics.h"
#include "../../harness/exec/mpi/trace_gather.h"
#include "../test.h"

#define SKEW_NS 5000000ll

static int g_rank;

static uint64_t real_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int64_t skew(int rank) { return rank * (SKEW_NS + 123); }
static uint64_t skewed_ns(void) { return real_ns() + (uint64_t)skew(g_rank); }

static struct mpi_world world(void)
{
    struct mpi_world w;
    mpi_world_init(NULL, NULL, &w);
    g_rank = w.rank;
    return w;
}

TEST(test_clock_offsets_recover_an_injected_skew_within_half_a_round_trip)
{
    struct mpi_world w = world();
    struct clock_offset *off = calloc((size_t)w.size, sizeof *off);
    CHECK_EQ_INT(clock_offsets_measure(&w, skewed_ns, 32, off), PB_OK);
    for (int r = 0; w.rank == 0 && r < w.size; r++) {
        double err = (double)(off[r].offset_ns - skew(r));
        CHECK(fabs(err) <= off[r].rtt_ns / 2.0 + 1);
        CHECK(r == 0 || off[r].rtt_ns > 0);
    }
    free(off);
}

/* Rank r ran one kernel on GPU r during true time [1 + 2r, 3 + 2r) ms after
 * `base`, a memcpy, and a host range; its records carry its own skewed clock. */
static void synthetic_trace(int rank, uint64_t base, struct trace *t)
{
    trace_init(t, rank + 1);
    t->busy_known = 1;
    t->dropped = 2;
    uint64_t mine = base + (uint64_t)skew(rank), ms = 1000000;
    struct record k = {.kind = REC_KERNEL, .device = rank, .start_ns = mine + (1 + 2 * rank) * ms,
                       .end_ns = mine + (3 + 2 * rank) * ms, .src_device = -1, .dst_device = -1};
    snprintf(k.name, sizeof k.name, "layers on rank %d", rank);
    trace_add(t, &k);
    struct record h = {.kind = REC_RANGE, .device = -1, .start_ns = mine, .end_ns = mine + ms,
                       .src_device = -1, .dst_device = -1};
    snprintf(h.name, sizeof h.name, "iteration 0");
    trace_add(t, &h);
}

TEST(test_gathered_records_land_on_rank0s_clock_and_give_one_window)
{
    struct mpi_world w = world();
    struct clock_offset *off = calloc((size_t)w.size, sizeof *off);
    CHECK_EQ_INT(clock_offsets_measure(&w, skewed_ns, 32, off), PB_OK);
    uint64_t base = 1000000000000ull;
    struct trace local, merged = {0};
    synthetic_trace(w.rank, base, &local);
    CHECK_EQ_INT(trace_gather(&w, &local, off, &merged), PB_OK);
    if (w.rank == 0) {
        CHECK_EQ_INT(merged.n, 2 * w.size);
        CHECK_EQ_INT(merged.n_devices, w.size);
        CHECK_EQ_INT((long long)merged.dropped, 2 * w.size);
        CHECK_EQ_INT(merged.busy_known, 1);
        double tol_ns = 0;
        for (int r = 0; r < w.size; r++) tol_ns = off[r].rtt_ns / 2.0 + 1 > tol_ns ? off[r].rtt_ns / 2.0 + 1 : tol_ns;
        for (int i = 0; i < merged.n; i++) {
            const struct record *rec = &merged.rec[i];
            if (rec->kind == REC_KERNEL) {
                double want = base + (1 + 2.0 * rec->device) * 1e6;
                CHECK_NEAR((double)rec->start_ns, want, tol_ns);
            } else {
                CHECK(strncmp(rec->name, "rank ", 5) == 0);
            }
        }
        /* Kernels back to back, one GPU after another: the window is 2 ms per rank,
         * each GPU busy for 2 ms of it. Uncorrected, the skew would stretch it by 5 ms a rank. */
        struct iteration_metrics m;
        CHECK_EQ_INT(metrics_iteration(&merged, -1, &m), PB_OK);
        for (int d = 0; d < w.size; d++) {
            CHECK_NEAR(m.gpu[d].window_ms, 2.0 * w.size, 2 * tol_ns / 1e6);
            CHECK_NEAR(m.gpu[d].compute_ms, 2.0, 1e-9);
        }
        trace_free(&merged);
    }
    trace_free(&local);
    free(off);
}

TEST(test_shift_moves_start_and_end_by_the_offset)
{
    struct record r[2] = {{.start_ns = 5000, .end_ns = 6000}, {.start_ns = 100, .end_ns = 200}};
    trace_shift(r, 2, 50);
    CHECK_EQ_INT((long long)r[0].start_ns, 4950);
    CHECK_EQ_INT((long long)r[1].end_ns, 150);
    trace_shift(r, 2, -50);
    CHECK_EQ_INT((long long)r[0].start_ns, 5000);
}

TEST(test_a_rank_with_no_records_still_gathers_and_unknown_busy_time_wins)
{
    struct mpi_world w = world();
    struct clock_offset *off = calloc((size_t)w.size, sizeof *off);
    struct trace local, merged = {0};
    trace_init(&local, 1);
    local.busy_known = w.rank != w.size - 1;   /* one rank ran without CUPTI */
    CHECK_EQ_INT(trace_gather(&w, &local, off, &merged), PB_OK);
    if (w.rank == 0) {
        CHECK_EQ_INT(merged.n, 0);
        CHECK_EQ_INT(merged.busy_known, 0);
        trace_free(&merged);
    }
    trace_free(&local);
    free(off);
}
