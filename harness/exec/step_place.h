/* Which process issues which step of a schedule: every step in one process, or
 * an MPI rank's share (rank r = logical device r). Plain C, so CPU tests check
 * the rule both CUDA executors' one issue loop (exec/cuda/cuda_exec_issue.c) follows. */
#ifndef PB_STEP_PLACE_H
#define PB_STEP_PLACE_H
#include "../../strategies/strategy.h"

/* What this process does with one step: issue it (on its device), only take
 * delivery of rows another process sends (MPI: the receiving end of a copy, or
 * of the greedy tokens), or nothing (another rank's step). */
enum step_role { STEP_NOT_HERE, STEP_ISSUED, STEP_RECEIVED };

struct step_here {
    int device, stream;        /* this process's (logical device, stream) for it */
    enum step_role role;
};

/* The first later step that consumes step i's output, -1 if none. */
int exec_consumer(const struct schedule *s, int i);
/* One process runs every device: each step is issued on its own (device, stream). */
struct step_here step_place_all(const struct schedule *s, int i);
/* Where a decode's greedy tokens travel between processes: the steps of kind `from`
 * (the head, or tp's all-gather where heads hold vocabulary slices) on device d hand
 * them to the embedding on device to[d]; -1, or d itself: they stay on d. */
struct token_route {
    enum step_kind from;
    int to[PB_MAX_DEVICES];
};
/* A route on which nothing travels. */
void token_route_none(struct token_route *r);
/* Rank `rank`'s role in step i. A copy is issued by its source rank and received
 * by its destination rank, on the stream of the step that reads the rows; the
 * embedding's rank a step of `tokens` sends greedy tokens to receives that step on
 * stream 0 (NULL: nothing travels). */
struct step_here step_place_rank(const struct schedule *s, int i, int rank, const struct token_route *tokens);
#endif
