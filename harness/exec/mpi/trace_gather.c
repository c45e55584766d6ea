/* Gathering traces over MPI with clock-offset correction. The records are sent
 * as raw bytes: every rank runs the same build on the same architecture. */
#include <stdlib.h>
#include <string.h>
#include "../../../base/check.h"
#include "trace_gather.h"

/* One exchange: rank 0 notes t0, asks, the rank answers with its clock, rank 0
 * notes t1. The answer was read somewhere in [t0, t1]: assume the middle. */
static int ping(const struct mpi_world *w, clock_now_fn now, int peer, int64_t *offset, uint64_t *rtt)
{
    char token = 1;
    uint64_t t0 = now();
    PB_TRY(mpi_world_send(w, &token, 1, peer, "measuring clock offsets"));
    uint64_t theirs = 0;
    PB_TRY(mpi_world_recv(w, &theirs, sizeof theirs, peer, "measuring clock offsets"));
    uint64_t t1 = now();
    *rtt = t1 - t0;
    *offset = (int64_t)(theirs - (t0 + (t1 - t0) / 2));
    return PB_OK;
}

static int pong(const struct mpi_world *w, clock_now_fn now)
{
    char token = 0;
    PB_TRY(mpi_world_recv(w, &token, 1, 0, "measuring clock offsets"));
    uint64_t mine = now();
    return mpi_world_send(w, &mine, sizeof mine, 0, "measuring clock offsets");
}

int clock_offsets_measure(const struct mpi_world *w, clock_now_fn now, int rounds, struct clock_offset *out)
{
    if (rounds < 1) rounds = 1;
    if (w->rank != 0) {
        for (int k = 0; k < rounds; k++) PB_TRY(pong(w, now));
        return PB_OK;
    }
    out[0] = (struct clock_offset){0, 0};
    for (int r = 1; r < w->size; r++) {
        out[r] = (struct clock_offset){0, UINT64_MAX};
        for (int k = 0; k < rounds; k++) {
            int64_t off;
            uint64_t rtt;
            PB_TRY(ping(w, now, r, &off, &rtt));
            /* The shortest round trip bounds the error tightest (rtt / 2). */
            if (rtt < out[r].rtt_ns) out[r] = (struct clock_offset){off, rtt};
        }
    }
    return PB_OK;
}

void trace_shift(struct record *rec, int n, int64_t offset_ns)
{
    for (int i = 0; i < n; i++) {
        rec[i].start_ns = (uint64_t)((int64_t)rec[i].start_ns - offset_ns);
        rec[i].end_ns = (uint64_t)((int64_t)rec[i].end_ns - offset_ns);
    }
}

/* Host ranges of all ranks share one row in trace.json: say whose they are. */
static void name_ranges(struct record *rec, int n, int rank)
{
    for (int i = 0; i < n; i++) {
        if (rec[i].kind != REC_RANGE) continue;
        char name[sizeof rec[i].name];
        snprintf(name, sizeof name, "rank %d: %s", rank, rec[i].name);
        memcpy(rec[i].name, name, sizeof name);
    }
}

/* What travels besides the records. */
struct trace_head {
    int64_t n;
    int n_devices, busy_known, predicted;
    uint64_t dropped;
};

static int append(struct trace *merged, const struct record *rec, int n)
{
    for (int i = 0; i < n; i++) PB_TRY(trace_add(merged, &rec[i]));
    return PB_OK;
}

static int receive_rank(const struct mpi_world *w, int r, const struct trace_head *h, int64_t offset,
                        struct trace *merged)
{
    struct record *rec = malloc(((size_t)h->n + 1) * sizeof *rec);
    if (!rec) return pb_fail("out of host memory for %lld records of rank %d", (long long)h->n, r);
    int rc = mpi_world_recv(w, rec, (size_t)h->n * sizeof *rec, r, "gathering traces");
    if (rc == PB_OK) {
        trace_shift(rec, (int)h->n, offset);
        name_ranges(rec, (int)h->n, r);
        rc = append(merged, rec, (int)h->n);
    }
    free(rec);
    return rc;
}

int trace_gather(const struct mpi_world *w, const struct trace *local, const struct clock_offset *offsets,
                 struct trace *merged)
{
    struct trace_head mine = {local->n, local->n_devices, local->busy_known, local->predicted, local->dropped};
    struct trace_head *heads = w->rank == 0 ? calloc((size_t)w->size, sizeof *heads) : NULL;
    if (w->rank == 0 && !heads) return pb_fail("out of host memory gathering traces");
    int rc = mpi_world_gather(w, &mine, heads, sizeof mine, "gathering trace sizes");
    if (w->rank != 0) {
        return rc == PB_OK ? mpi_world_send(w, local->rec, (size_t)local->n * sizeof *local->rec, 0,
                                            "gathering traces") : rc;
    }
    int n_devices = 0;
    for (int r = 0; r < w->size; r++) n_devices = heads[r].n_devices > n_devices ? heads[r].n_devices : n_devices;
    trace_init(merged, n_devices);
    merged->busy_known = 1;
    for (int r = 0; rc == PB_OK && r < w->size; r++) {
        merged->dropped += heads[r].dropped;
        merged->busy_known &= heads[r].busy_known != 0;
        merged->predicted |= heads[r].predicted;
        if (r == 0) {
            rc = append(merged, local->rec, local->n);
            name_ranges(merged->rec, merged->n, 0);
        } else {
            rc = receive_rank(w, r, &heads[r], offsets[r].offset_ns, merged);
        }
    }
    free(heads);
    return rc;
}
