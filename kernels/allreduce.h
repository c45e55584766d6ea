/* Peer-memory all-reduce of bf16 buffers for the small messages of tensor-parallel
 * decode, where NCCL's fixed cost dominates. Every rank copies its input into its
 * own peer-visible staging buffer; then
 *  - one-shot: every rank reads every rank's staging buffer and sums in fp32 in
 *    rank order 0..n-1, rounding once to bf16;
 *  - two-shot: rank r sums chunk r the same way into its staging buffer
 *    (reduce-scatter), then every rank copies chunk k from rank k (all-gather).
 * Each element is the same fp32 sum in the same order either way, so every rank,
 * every call and both algorithms give the same bits.
 *
 * The residual form is what tensor parallelism calls: the inputs are the ranks'
 * partial products, and every rank holds the same residual h, to which the sum is
 * added before the one rounding: h = bf16(f32(h) + (p_0 + p_1 + ... + p_{n-1})),
 * fp32 throughout. Summing bf16 copies of h + p_0 and p_1 instead would round the
 * residual stream twice per sub-layer at the magnitude of |h| (issue 25); this
 * rounds once, as the single-GPU GEMM epilogue bf16(h + P) does, and keeps bf16 on
 * the wire. allreduce_add_partials is the same arithmetic on one device.
 *
 * Ranks meet either through flags in peer-visible memory (one kernel per rank that
 * spins on its peers' flags: GPUs of one process with peer access, or processes
 * that opened each other's memory by CUDA IPC) or, in one process where logical
 * devices share a GPU, through events and stream waits (no kernel spins on work
 * that may be queued behind it on the same GPU). Staging buffers alternate by call
 * parity (the epoch): a rank can start call k+2 only after every peer has arrived
 * at call k+1, i.e. finished reading call k, so no end-of-call barrier is needed.
 * The epoch is a word in each rank's memory that the call's last launch advances,
 * never a launch argument: a call captured into a CUDA graph and replayed is the
 * next call each time (its own flag values, the other half), as a direct one is.
 * A flag wait gives up after PEER_WAIT_TIMEOUT_S, sets the rank's error word and
 * lets the kernel end, so a missing peer shows up as an error (peer_comm_check),
 * never a hang. */
#ifndef PB_ALLREDUCE_H
#define PB_ALLREDUCE_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "allreduce_algo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEER_MAX_RANKS 8
#define PEER_MAX_BLOCKS 32      /* blocks per rank and call; one arrival flag per (peer, block) */
#define PEER_WAIT_TIMEOUT_S 10

/* One rank's peer-visible memory, on its GPU (one cudaMalloc, so one IPC handle). */
struct peer_rank_memory {
    void *base;                 /* the allocation */
    void *stage;                /* 2 x capacity bf16: the staging buffers of even and odd calls */
    uint32_t *flags;            /* [PEER_MAX_RANKS][PEER_MAX_BLOCKS]: peer k's block b arrived at epoch */
    uint32_t *error;            /* nonzero once a wait timed out */
    uint32_t *epoch;            /* [2]: calls finished (the same on every rank), and a launch's
                                   arrival count (scratch) */
    size_t capacity;            /* elements per call */
    size_t bytes;               /* of the allocation */
};

/* One rank's view: pointers to every rank's memory, valid on this rank's device. */
struct peer_comm {
    int rank, n_ranks;
    size_t capacity;
    uint32_t *epoch;            /* this rank's peer_rank_memory.epoch */
    int use_flags;              /* 1: kernels wait on flags; 0: the caller orders ranks by events */
    void *stage[PEER_MAX_RANKS];
    uint32_t *flags[PEER_MAX_RANKS];
    uint32_t *error;            /* this rank's */
};

/* Allocate a rank's memory on the current device, flags and error zeroed. */
int peer_memory_alloc(size_t capacity, struct peer_rank_memory *m);
void peer_memory_free(struct peer_rank_memory *m);
/* Fill rank `rank`'s view of `n` ranks whose memories start at base[k] (this rank's
 * own allocation at base[rank]; peers' through peer access or cudaIpcOpenMemHandle). */
void peer_comm_init(struct peer_comm *c, int rank, int n, size_t capacity, void *const *base, int use_flags);

/* One rank's part of a flag-synchronised all-reduce of `count` bf16 in `data`
 * (in place, on stream s). Every rank calls it with the same count and algo. */
int peer_allreduce(struct peer_comm *c, void *data, size_t count, enum allreduce_algo algo, cudaStream_t s);
/* The residual form: residual = bf16(f32(residual) + sum over ranks of partial), the
 * partials (this rank's, count bf16) only read; residual holds the same values on
 * every rank before the call, and the same bits after it. */
int peer_allreduce_residual(struct peer_comm *c, const void *partial, void *residual, size_t count,
                            enum allreduce_algo algo, cudaStream_t s);
/* Blocks of one rank's kernel for a call: the same on every rank. Flag-synchronised
 * ranks that share a GPU (tests) need all ranks' blocks resident at once. */
int peer_allreduce_blocks(size_t count, int n, enum allreduce_algo algo);
/* Blocks of the kernel the current GPU holds at once (occupancy x SMs). */
int peer_allreduce_resident_blocks(int *out);
/* PB_ERR with a message when a wait of this rank timed out (synchronises). */
int peer_comm_check(const struct peer_comm *c);

/* All ranks of one process. ordinal[k]: rank k's GPU. Where two ranks share a GPU
 * ranks meet through events; otherwise every pair needs peer access (enabled here). */
struct peer_group {
    int n;
    int ordinal[PEER_MAX_RANKS];
    int use_events;
    struct peer_rank_memory mem[PEER_MAX_RANKS];
    struct peer_comm comm[PEER_MAX_RANKS];
    cudaEvent_t staged[PEER_MAX_RANKS], reduced[PEER_MAX_RANKS];
    /* Called after rank k's work of a call is issued on its stream (an executor
     * capturing a CUDA graph names the nodes rank k's); NULL: nothing. */
    int (*issued)(void *ctx, int rank, cudaStream_t s);
    void *issued_ctx;
};

int peer_group_create(int n, const int *ordinal, size_t capacity, struct peer_group *g);
void peer_group_destroy(struct peer_group *g);
/* All-reduce data[k] (rank k's buffer, count bf16 each) on streams[k]. */
int peer_group_allreduce(struct peer_group *g, void *const *data, size_t count, enum allreduce_algo algo,
                         const cudaStream_t *streams);
/* The residual form on every rank: residual[k] from partial[k]. */
int peer_group_allreduce_residual(struct peer_group *g, const void *const *partial, void *const *residual,
                                  size_t count, enum allreduce_algo algo, const cudaStream_t *streams);
/* recv[k] + j * bytes <- send[j] for every rank k and j (NCCL's all-gather layout). */
int peer_group_allgather(struct peer_group *g, const void *const *send, void *const *recv, size_t bytes,
                         const cudaStream_t *streams);
/* peer_comm_check on every rank. */
int peer_group_check(const struct peer_group *g);

/* residual = bf16(f32(residual) + (f32(partials[0]) + ... + f32(partials[n-1]))), count
 * bf16 each, every pointer on the current device, on stream s: the residual form's
 * arithmetic, bit for bit. NCCL's all-reduce of the partials (n = 1: its sum) and ranks
 * emulated on one device (n = world) finish the residual add with it. */
int allreduce_add_partials(void *residual, const void *const *partials, int n, size_t count, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
