/* The MPI side of a multi-process run: who this rank is, and the few MPI calls
 * the harness makes, each bounded by a timeout so that a rank that died or hangs
 * stops the job with a message instead of leaving the others waiting forever.
 * CPU code: built only with `make MPI=1`, tested with mpirun on the CPU. */
#ifndef PB_MPI_WORLD_H
#define PB_MPI_WORLD_H
#include <stddef.h>

struct mpi_world {
    int rank, size;            /* MPI_COMM_WORLD */
    int local_rank, local_size;/* ranks on this host (MPI_Comm_split_type SHARED): rank -> GPU */
    char host[64];             /* MPI_Get_processor_name */
    double timeout_s;          /* longest wait for the other ranks (PB_MPI_TIMEOUT, default 600) */
};

/* MPI_Init (unless MPI is up already) and the fields above. */
int mpi_world_init(int *argc, char ***argv, struct mpi_world *w);
void mpi_world_finalize(void);

/* Every rank calls it after a phase with its own status. PB_OK when all ranks
 * succeeded; otherwise PB_ERR on every rank, with the lowest failing rank's
 * message (and its rank and host) in pb_last_error() and printed once by rank 0. */
int mpi_world_agree(const struct mpi_world *w, int status, const char *phase);

/* Print "rank R (host): msg" on stderr and MPI_Abort the whole job. */
_Noreturn void mpi_world_abort(const struct mpi_world *w, const char *msg);

/* Broadcast bytes from root; rank 0 gathers n bytes from every rank into
 * all[size * n] (all may be NULL elsewhere). Bounded by the timeout. */
int mpi_world_bcast(const struct mpi_world *w, void *buf, size_t n, int root, const char *what);
int mpi_world_gather(const struct mpi_world *w, const void *mine, void *all, size_t n, const char *what);
/* Point-to-point bytes (n may exceed INT_MAX: sent in pieces). */
int mpi_world_send(const struct mpi_world *w, const void *buf, size_t n, int to, const char *what);
int mpi_world_recv(const struct mpi_world *w, void *buf, size_t n, int from, const char *what);
/* Largest double over ranks, on every rank. */
int mpi_world_max(const struct mpi_world *w, double *v, const char *what);

/* Seconds on MPI's clock, for tests and progress. */
double mpi_world_time(void);
#endif
