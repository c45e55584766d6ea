/* MPI calls with a deadline. Collectives are started non-blocking and polled:
 * MPI has no timeout of its own, and a blocking call on a job where one rank
 * died in CUDA or NCCL would wait forever. On timeout the job is aborted with a
 * message naming this rank and what it waited for. */
#include <mpi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../../../base/check.h"
#include "mpi_world.h"

#define CHUNK (1 << 30)   /* MPI counts are int: large buffers go in pieces */

int mpi_world_init(int *argc, char ***argv, struct mpi_world *w)
{
    memset(w, 0, sizeof *w);
    int provided = 0, already = 0;
    MPI_Initialized(&already);   /* tests start MPI themselves */
    if (!already && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return pb_fail("MPI_Init_thread failed (is this run under mpirun?)");
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    /* Ranks sharing a host share its GPUs: the local rank picks the GPU. */
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &w->local_rank);
    MPI_Comm_size(local, &w->local_size);
    MPI_Comm_free(&local);
    int len = 0;
    char name[MPI_MAX_PROCESSOR_NAME];
    MPI_Get_processor_name(name, &len);
    snprintf(w->host, sizeof w->host, "%.*s", len, name);
    const char *t = getenv("PB_MPI_TIMEOUT");
    w->timeout_s = t && atof(t) > 0 ? atof(t) : 600;
    return PB_OK;
}

void mpi_world_finalize(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

_Noreturn void mpi_world_abort(const struct mpi_world *w, const char *msg)
{
    fprintf(stderr, "bench: error: rank %d (%s): %s\n", w->rank, w->host, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);   /* MPI_Abort does not return; this keeps _Noreturn honest */
}

/* Poll until the request completes or the deadline passes (then abort). */
static void wait_for(const struct mpi_world *w, MPI_Request *req, const char *what)
{
    double deadline = MPI_Wtime() + w->timeout_s;
    int done = 0;
    for (;;) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        if (MPI_Wtime() > deadline) {
            char msg[512];
            snprintf(msg, sizeof msg, "no answer from the other ranks within %.0f s while %s; another rank "
                     "has failed or hangs (see its message above); aborting the job (PB_MPI_TIMEOUT sets the "
                     "limit in seconds)", w->timeout_s, what);
            mpi_world_abort(w, msg);
        }
        /* Sleep briefly: ranks may share cores (--oversubscribe, CI). */
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

int mpi_world_agree(const struct mpi_world *w, int status, const char *phase)
{
    int mine = status == PB_OK ? INT_MAX : w->rank, first = INT_MAX;
    MPI_Request req;
    MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &req);
    wait_for(w, &req, phase);
    if (first == INT_MAX) return PB_OK;
    /* The failing rank's message and host go to everyone, so every rank stops for the same reason. */
    char msg[PB_ERROR_LEN + 96];
    if (w->rank == first) snprintf(msg, sizeof msg, "rank %d (%s) failed while %s: %s", w->rank, w->host, phase,
                                   status == PB_OK ? "?" : pb_last_error());
    MPI_Ibcast(msg, sizeof msg, MPI_CHAR, first, MPI_COMM_WORLD, &req);
    wait_for(w, &req, phase);
    msg[sizeof msg - 1] = 0;
    if (w->rank == 0) fprintf(stderr, "bench: error: %s\n", msg);
    snprintf(pb_last_error(), PB_ERROR_LEN, "%.*s", PB_ERROR_LEN - 1, msg);
    return PB_ERR;
}

int mpi_world_bcast(const struct mpi_world *w, void *buf, size_t n, int root, const char *what)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        int len = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        MPI_Ibcast((char *)buf + off, len, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        wait_for(w, &req, what);
    }
    return PB_OK;
}

int mpi_world_gather(const struct mpi_world *w, const void *mine, void *all, size_t n, const char *what)
{
    if (n > INT_MAX) return pb_fail("internal: gather of %zu bytes per rank", n);
    MPI_Request req;
    MPI_Igather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &req);
    wait_for(w, &req, what);
    return PB_OK;
}

int mpi_world_send(const struct mpi_world *w, const void *buf, size_t n, int to, const char *what)
{
    for (size_t off = 0; off < n || off == 0; off += CHUNK) {
        int len = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        MPI_Isend((const char *)buf + off, len, MPI_BYTE, to, 7, MPI_COMM_WORLD, &req);
        wait_for(w, &req, what);
        if (n == 0) break;
    }
    return PB_OK;
}

int mpi_world_recv(const struct mpi_world *w, void *buf, size_t n, int from, const char *what)
{
    for (size_t off = 0; off < n || off == 0; off += CHUNK) {
        int len = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Request req;
        MPI_Irecv((char *)buf + off, len, MPI_BYTE, from, 7, MPI_COMM_WORLD, &req);
        wait_for(w, &req, what);
        if (n == 0) break;
    }
    return PB_OK;
}

int mpi_world_max(const struct mpi_world *w, double *v, const char *what)
{
    double in = *v;
    MPI_Request req;
    MPI_Iallreduce(&in, v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, &req);
    wait_for(w, &req, what);
    return PB_OK;
}

double mpi_world_time(void) { return MPI_Wtime(); }
