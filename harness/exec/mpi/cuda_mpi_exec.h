/* The rank-local executor of an MPI run: the same schedules as the
 * single-process executor (executor.h), but this process owns one schedule
 * device (its rank) on one GPU. It issues only that device's steps; a STEP_COPY
 * becomes ncclSend on the source rank and ncclRecv on the destination rank, the
 * greedy tokens of a decode go back to the embedding's rank the same way (hybrid:
 * from rank r of the last stage to rank r of the first), and tensor-parallel
 * collectives run on the communicator of the rank's stage (all ranks, or split from
 * them), or (tp sums that --allreduce gives to peer memory) on its stage's memory
 * opened by CUDA IPC. */
#ifndef PB_CUDA_MPI_EXEC_H
#define PB_CUDA_MPI_EXEC_H
#include <nccl.h>
#include "../executor.h"
#include "mpi_world.h"

struct mpi_exec_config {
    struct cuda_config c;   /* c.n_devices: the schedule's; c.ordinal and c.use_graph are ignored */
    int device;             /* schedule device this rank runs (= its rank); >= n_devices: idle */
    int ordinal;            /* its CUDA ordinal */
    ncclComm_t comm;        /* all ranks, rank r = schedule device r */
    const struct mpi_world *world;   /* exchanges the peer all-reduce's IPC handles */
};

struct mpi_executor;

/* The world's impl for executor.h's mpi_executor_ops: the communicator of all ranks. */
struct mpi_exec_world {
    ncclComm_t comm;
    const struct mpi_world *world;   /* for the peer all-reduce's handle exchange */
};

int mpi_executor_create(const struct mpi_exec_config *x, struct mpi_executor **out);
void mpi_executor_destroy(struct mpi_executor *e);
/* One iteration of this rank's part; *ms from CUDA events on this rank. */
int mpi_executor_run(struct mpi_executor *e, int iteration, struct trace *t, double *ms);
/* The rank that holds the logits (head, or tp rank 0) and the generated tokens (embed). */
int mpi_executor_logits_rank(const struct mpi_executor *e);
int mpi_executor_tokens_rank(const struct mpi_executor *e);
#endif
