/* CUDA IPC handles of every rank's peer all-reduce memory, exchanged through the
 * MPI world (see cuda_mpi_peer.h). */
#include <string.h>
#include "../cuda/cuda_exec_internal.h"
#include "cuda_mpi_peer.h"

struct peer_card {
    int valid;
    char host[64];
    cudaIpcMemHandle_t handle;
};

/* Rank 0 gathers every rank's card and broadcasts them all. */
static int exchange(const struct mpi_world *w, const struct peer_card *mine, struct peer_card *all)
{
    PB_TRY(mpi_world_gather(w, mine, all, sizeof *mine, "peer all-reduce handles"));
    return mpi_world_bcast(w, all, (size_t)w->size * sizeof *all, 0, "peer all-reduce handles");
}

int mpi_peer_create(const struct mpi_world *w, int first, int n, size_t capacity, struct mpi_peer *out)
{
    memset(out, 0, sizeof *out);
    if (n > PEER_MAX_RANKS || first + n > w->size)
        return pb_fail("peer all-reduce: %d ranks; it supports up to %d (and the job has %d); use --allreduce nccl",
                       n, PEER_MAX_RANKS, w->size);
    struct peer_card mine = {0}, all[PB_MAX_DEVICES];
    if (w->size > PB_MAX_DEVICES) return pb_fail("peer all-reduce: %d MPI ranks, at most %d", w->size, PB_MAX_DEVICES);
    out->active = first >= 0 && w->rank >= first && w->rank < first + n;
    int rc = PB_OK;
    if (out->active) {
        rc = peer_memory_alloc(capacity, &out->mem);
        if (rc == PB_OK) {
            cudaError_t e = cudaIpcGetMemHandle(&mine.handle, out->mem.base);
            rc = e == cudaSuccess ? PB_OK : pb_fail("cudaIpcGetMemHandle failed: %s", cudaGetErrorString(e));
        }
        mine.valid = rc == PB_OK;
        snprintf(mine.host, sizeof mine.host, "%s", w->host);
    }
    /* Everyone exchanges, also after a local failure, so no rank waits alone. */
    PB_TRY(exchange(w, &mine, all));
    PB_TRY(rc);
    if (!out->active) return PB_OK;
    void *base[PEER_MAX_RANKS];
    for (int k = 0; k < n; k++) {   /* group rank k is world rank first + k */
        int r = first + k;
        if (r == w->rank) {
            base[k] = out->mem.base;
            continue;
        }
        if (!all[r].valid) return pb_fail("peer all-reduce: rank %d could not export its memory", r);
        if (strcmp(all[r].host, w->host))
            return pb_fail("peer all-reduce: rank %d is on host %s, rank %d on %s; CUDA IPC works within one host "
                           "(use --allreduce nccl)", r, all[r].host, w->rank, w->host);
        CUDA_TRY(cudaIpcOpenMemHandle(&out->opened[k], all[r].handle, cudaIpcMemLazyEnablePeerAccess));
        base[k] = out->opened[k];
    }
    peer_comm_init(&out->comm, w->rank - first, n, capacity, base, 1);
    return PB_OK;
}

void mpi_peer_destroy(struct mpi_peer *p)
{
    for (int k = 0; k < PEER_MAX_RANKS; k++)
        if (p->opened[k]) cudaIpcCloseMemHandle(p->opened[k]);
    peer_memory_free(&p->mem);
    memset(p, 0, sizeof *p);
}
