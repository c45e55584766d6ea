/* One timeline from every rank's trace. Each rank records activity on its own
 * clock (CUPTI's timestamp: host time of that node); rank 0 measures how far
 * each rank's clock is from its own and shifts that rank's records onto rank 0's
 * clock before computing metrics. See docs/MPI.md for the method and its error. */
#ifndef PB_TRACE_GATHER_H
#define PB_TRACE_GATHER_H
#include <stdint.h>
#include "../../measure/trace.h"
#include "mpi_world.h"

/* A rank's clock against rank 0's: its_time - rank0_time, and the round trip of
 * the exchange that measured it (the offset is right to within rtt / 2). */
struct clock_offset {
    int64_t offset_ns;
    uint64_t rtt_ns;
};

typedef uint64_t (*clock_now_fn)(void);

/* Cristian's method, the best of `rounds` ping-pongs between rank 0 and each
 * rank in turn (the one with the shortest round trip). Every rank calls it; on
 * rank 0 out[0..size) is filled (out[0] is zero), elsewhere out may be NULL. */
int clock_offsets_measure(const struct mpi_world *w, clock_now_fn now, int rounds, struct clock_offset *out);

/* Every rank sends its records; rank 0 receives them into *merged (initialised
 * here, n_devices the largest of all ranks), each rank's times shifted by its
 * offset onto rank 0's clock and its host ranges named "rank R: ...". Dropped
 * records add up; busy time is known only if every rank knew it. */
int trace_gather(const struct mpi_world *w, const struct trace *local, const struct clock_offset *offsets,
                 struct trace *merged);

/* Shift one rank's records onto rank 0's clock (what trace_gather applies). */
void trace_shift(struct record *rec, int n, int64_t offset_ns);
#endif
