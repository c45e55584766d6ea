/* The peer-memory all-reduce across MPI ranks (kernels/allreduce.h): each rank
 * allocates its peer-visible memory, exports it as a CUDA IPC handle, the handles
 * go round the MPI world, and each rank opens every other rank's. Ranks on
 * different hosts cannot open each other's memory: the create call fails then,
 * with a message to use --allreduce nccl. */
#ifndef PB_CUDA_MPI_PEER_H
#define PB_CUDA_MPI_PEER_H
#include "../../../kernels/allreduce.h"
#include "mpi_world.h"

struct mpi_peer {
    int active;                          /* 1: this rank is one of the n ranks below */
    struct peer_rank_memory mem;         /* this rank's */
    void *opened[PEER_MAX_RANKS];        /* peers' memory opened by IPC (NULL: own or none) */
    struct peer_comm comm;
};

/* Every world rank calls it (collective) with its own tp group: world ranks first ..
 * first + n - 1 (first = -1: none; such a rank takes part in the exchange only).
 * `capacity`: elements of the largest sum. */
int mpi_peer_create(const struct mpi_world *w, int first, int n, size_t capacity, struct mpi_peer *out);
void mpi_peer_destroy(struct mpi_peer *p);
#endif
