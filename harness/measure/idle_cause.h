/* Idle time by cause (DESIGN.md), from the schedule's dependencies joined with the
 * trace: the same code for measured and predicted traces, since both tag every
 * record with the schedule step that issued it. */
#ifndef PB_IDLE_CAUSE_H
#define PB_IDLE_CAUSE_H
#include "metrics.h"

/* Every gap on a GPU inside the window (before its first work, between its busy
 * intervals, after its last) is charged by the step whose work ends it:
 * - peer wait: from the gap's start until the step's latest-finishing dependency
 *   ends, when that dependency ran on another device;
 * - host: the part of a gap after every dependency had ended (the work could have
 *   started: it waited on a launch, an event wait or a copy from the host);
 * - other: gaps ended by work no step claims, and the gap after this GPU's last work.
 * A step without dependencies depends on the previous pass's final steps (the
 * executors join every stream between a prefill and each decode pass). A
 * dependency's time is its latest record ending by the gap's end (within 1 us: clocks round), so a
 * trace of several passes of one schedule needs no pass numbers.
 * Fills idle_peer_wait_ms, idle_host_ms and idle_other_ms of m->gpu[0..n_devices)
 * for iteration `iteration` (all records if < 0); the three add up to idle_ms.
 * Busy time unknown: they stay NAN. */
int idle_causes_iteration(const struct trace *t, int iteration, const struct schedule *s,
                          struct iteration_metrics *m);
/* The intervals the split reads, without the rest of a record: an executor that keeps
 * records of only some passes (the cost model's long generations) keeps these of
 * every pass, 24 bytes a record, and splits them as idle_causes_iteration would the
 * whole trace. */
struct idle_event {
    uint64_t start, end;
    int device, step;   /* step -1: no step claims it */
};
struct idle_events {
    struct idle_event *e;
    int n, cap;
};
/* Append t's device records of `iteration` (all if < 0), their clock shifted by `offset`. */
int idle_events_add(struct idle_events *v, const struct trace *t, int iteration, uint64_t offset);
void idle_events_free(struct idle_events *v);
/* idle_causes_iteration on events of one iteration (reordered in place). */
int idle_causes_of_events(struct idle_event *e, int n, const struct schedule *s, struct iteration_metrics *m);
/* The mean over iterations [0, iters) (all records if iters <= 0), into m->gpu[d]. */
int idle_causes_mean(const struct trace *t, int iters, const struct schedule *s, struct iteration_metrics *m);
/* Busy time of each GPU by the kind of step that issued it (gpu_metrics.work_ms):
 * the union of its records' intervals per kind, mean over iterations [0, iters)
 * (all records if iters <= 0); work no step of s claims counts as untagged. */
int work_kinds_mean(const struct trace *t, int iters, const struct schedule *s, struct iteration_metrics *m);
/* The schedule that explains every pass of g: the prompt's, when the decode template
 * has its structure (or there is none); NULL otherwise (causes then unknown). */
const struct schedule *idle_causes_schedule(const struct program *g);
/* 1 when two schedules have the same steps on the same devices with the same
 * dependencies (a prefill and its decode passes do), so one explains both. */
int idle_causes_same_structure(const struct schedule *a, const struct schedule *b);
#endif
