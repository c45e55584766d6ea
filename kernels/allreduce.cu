/* Peer-memory all-reduce (kernels/allreduce.h): the staging copy, one kernel with
 * three phases (one-shot sum, reduce-scatter, all-gather) and the flag barrier
 * between them, and the in-process group that meets through events instead
 * where logical devices share a GPU. */
#include <string.h>
#include <cuda_bf16.h>
#include "allreduce.h"
#include "cuda_check.h"

#define PEER_THREADS 512
#define PACK 8                              /* bf16 per 16-byte load */
#define FLAGS_BYTES (PEER_MAX_RANKS * PEER_MAX_BLOCKS * sizeof(uint32_t))
#define EPOCH_OFFSET (FLAGS_BYTES + 128)    /* the calls this rank finished, then the arrival count */
#define STAGE_OFFSET 4096                   /* flags, the error word, the epoch words, then staging */

enum { PHASE_STAGE = 1, PHASE_ONESHOT = 2, PHASE_REDUCE_SCATTER = 4, PHASE_ALLGATHER = 8 };

/* Nothing here changes from call to call but the data pointer and the count: the
 * epoch (which staging half, which flag value) is read on the device, so a CUDA
 * graph that captured a call replays it as the next call, not as the same one. */
struct peer_args {
    const __nv_bfloat16 *stage[PEER_MAX_RANKS];   /* every rank's staging (both halves) */
    uint32_t *flags[PEER_MAX_RANKS];
    const __nv_bfloat16 *in;                      /* this rank's input (staged) */
    __nv_bfloat16 *out;                           /* where the sum goes: in itself, or the residual */
    int add_out;                                  /* 1: out is a residual the sum is added to */
    uint32_t *error;
    uint32_t *epoch;                              /* this rank's calls finished (device word) */
    uint32_t *arrived;                            /* blocks of this launch that read *epoch */
    size_t count, chunk_packs, capacity;
    int rank, n_ranks, phases, barrier;
    int advance;                                  /* 1: this launch ends the call (epoch + 1) */
};

__device__ __forceinline__ void store_release_sys(uint32_t *p, uint32_t v)
{
    asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t *p)
{
    uint32_t v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ uint64_t global_ns(void)
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* Block b of this rank tells block b of every rank it has reached `value`, then
 * waits until block b of every rank has. Blocks of all ranks map the same elements
 * (the grid depends on count and n alone), so block-wise arrival is enough. */
__device__ void block_barrier(const struct peer_args *a, uint32_t value)
{
    __syncthreads();
    int k = threadIdx.x;
    if (k < a->n_ranks) {
        __threadfence_system();
        store_release_sys(a->flags[k] + a->rank * PEER_MAX_BLOCKS + blockIdx.x, value);
        const uint32_t *mine = a->flags[a->rank] + k * PEER_MAX_BLOCKS + blockIdx.x;
        uint64_t t0 = global_ns();
        while ((int32_t)(load_acquire_sys(mine) - value) < 0) {
            if (global_ns() - t0 > (uint64_t)PEER_WAIT_TIMEOUT_S * 1000000000ull) {
                atomicExch(a->error, 1u);
                break;
            }
        }
    }
    __syncthreads();
}

/* Loads of staged data bypass L1 (ld.global.cg): a peer rewrote those bytes since any
 * earlier call of this GPU read them, and L1 does not see a peer's stores. */
__device__ __forceinline__ uint4 load_pack(const __nv_bfloat16 *p) { return __ldcg((const uint4 *)p); }

__device__ __forceinline__ float load_one(const __nv_bfloat16 *p)
{
    unsigned short bits = __ldcg((const unsigned short *)p);
    return __uint_as_float((unsigned)bits << 16);
}

/* Pack p (elements [8p, 8p + 8) clipped to count) of out = sum over ranks in rank order,
 * plus this rank's residual (a->out, the same on every rank) where a->add_out: the
 * residual is added to the ranks' fp32 sum last, then rounded once (allreduce.h);
 * half: this call's staging half (elements). */
__device__ void sum_pack(const struct peer_args *a, size_t half, size_t p, __nv_bfloat16 *out)
{
    size_t e0 = p * PACK;
    float acc[PACK];
    for (int j = 0; j < PACK; j++) acc[j] = 0.f;
    int whole = e0 + PACK <= a->count;
    for (int k = 0; k < a->n_ranks; k++) {
        const __nv_bfloat16 *src = a->stage[k] + half + e0;
        if (whole) {
            uint4 v = load_pack(src);
            const __nv_bfloat16 *h = (const __nv_bfloat16 *)&v;
            for (int j = 0; j < PACK; j++) acc[j] += __bfloat162float(h[j]);
        } else {
            for (int j = 0; e0 + j < a->count; j++) acc[j] += load_one(src + j);
        }
    }
    if (a->add_out) {   /* this rank's own memory, written before this launch on its stream */
        const __nv_bfloat16 *res = a->out + e0;
        if (whole && ((uintptr_t)res & 15) == 0) {
            uint4 v = *(const uint4 *)res;
            const __nv_bfloat16 *h = (const __nv_bfloat16 *)&v;
            for (int j = 0; j < PACK; j++) acc[j] = __bfloat162float(h[j]) + acc[j];
        } else {
            for (int j = 0; j < PACK && e0 + j < a->count; j++) acc[j] = __bfloat162float(res[j]) + acc[j];
        }
    }
    if (whole && ((uintptr_t)(out + e0) & 15) == 0) {
        uint4 v;
        __nv_bfloat16 *h = (__nv_bfloat16 *)&v;
        for (int j = 0; j < PACK; j++) h[j] = __float2bfloat16(acc[j]);
        *(uint4 *)(out + e0) = v;
        return;
    }
    for (int j = 0; j < PACK && e0 + j < a->count; j++) out[e0 + j] = __float2bfloat16(acc[j]);
}

__device__ void copy_pack(const struct peer_args *a, size_t p, const __nv_bfloat16 *src, __nv_bfloat16 *dst)
{
    size_t e0 = p * PACK;
    if (e0 + PACK <= a->count && (((uintptr_t)(dst + e0) | (uintptr_t)(src + e0)) & 15) == 0) {
        *(uint4 *)(dst + e0) = load_pack(src + e0);
        return;
    }
    for (int j = 0; j < PACK && e0 + j < a->count; j++)
        ((unsigned short *)dst)[e0 + j] = __ldcg((const unsigned short *)(src + e0 + j));
}

/* Every pass over the elements maps pack k * chunk_packs + q to the block that owns
 * offset q, on every rank and in every phase: block b stages exactly the packs that
 * block b of each rank reads next, so its flag alone says they are there. */
/* The call's epoch: one more than the calls this rank finished. Every block reads it
 * first; the last block to have read it stores it when the launch ends the call, so
 * no block of this launch can see the next call's value, and the next launch (stream
 * order) sees it. */
__device__ uint32_t call_epoch(const struct peer_args *a)
{
    __shared__ uint32_t epoch;
    if (threadIdx.x == 0) {
        epoch = *(volatile uint32_t *)a->epoch + 1;
        if (a->advance) {
            __threadfence();
            if (atomicAdd(a->arrived, 1u) == gridDim.x - 1) {
                *(volatile uint32_t *)a->arrived = 0;
                *(volatile uint32_t *)a->epoch = epoch;
                __threadfence();
            }
        }
    }
    __syncthreads();
    return epoch;
}

__global__ void __launch_bounds__(PEER_THREADS) peer_allreduce_kernel(struct peer_args a)
{
    uint32_t epoch = call_epoch(&a);
    size_t half = (epoch & 1) * a.capacity;
    __nv_bfloat16 *mine = (__nv_bfloat16 *)a.stage[a.rank] + half;   /* this rank's staging half */
    size_t packs = (a.count + PACK - 1) / PACK;
    size_t stride = (size_t)gridDim.x * blockDim.x, first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t chunks = a.chunk_packs ? (packs + a.chunk_packs - 1) / a.chunk_packs : 0;
    if (a.phases & PHASE_STAGE)
        for (size_t k = 0; k < chunks; k++)
            for (size_t q = first; q < a.chunk_packs; q += stride) {
                size_t p = k * a.chunk_packs + q;
                if (p < packs) copy_pack(&a, p, a.in, mine);
            }
    if (a.barrier) block_barrier(&a, 2 * epoch);
    if (a.phases & PHASE_ONESHOT)
        for (size_t p = first; p < packs; p += stride) sum_pack(&a, half, p, a.out);
    if (a.phases & PHASE_REDUCE_SCATTER)
        for (size_t q = first; q < a.chunk_packs; q += stride) {
            size_t p = (size_t)a.rank * a.chunk_packs + q;
            if (p < packs) sum_pack(&a, half, p, mine);
        }
    if (a.barrier && (a.phases & PHASE_ALLGATHER)) block_barrier(&a, 2 * epoch + 1);
    if (a.phases & PHASE_ALLGATHER)
        for (int k = 0; k < a.n_ranks; k++)
            for (size_t q = first; q < a.chunk_packs; q += stride) {
                size_t p = (size_t)k * a.chunk_packs + q;
                if (p < packs) copy_pack(&a, p, a.stage[k] + half, a.out);
            }
}

/* Whole packs, so that the odd call's half starts 16-byte aligned. */
static size_t capacity_elements(size_t capacity) { return (capacity + PACK - 1) / PACK * PACK; }

int peer_memory_alloc(size_t capacity, struct peer_rank_memory *m)
{
    memset(m, 0, sizeof *m);
    m->capacity = capacity_elements(capacity);
    m->bytes = STAGE_OFFSET + 2 * m->capacity * sizeof(__nv_bfloat16);
    cudaCheck(cudaMalloc(&m->base, m->bytes));
    cudaCheck(cudaMemset(m->base, 0, STAGE_OFFSET));
    /* The memset runs on the legacy stream, which the ranks' non-blocking streams do
     * not wait for: a first barrier must never see this memory's old contents. */
    cudaCheck(cudaDeviceSynchronize());
    m->flags = (uint32_t *)m->base;
    m->error = (uint32_t *)((char *)m->base + FLAGS_BYTES);
    m->epoch = (uint32_t *)((char *)m->base + EPOCH_OFFSET);
    m->stage = (char *)m->base + STAGE_OFFSET;
    return PB_OK;
}

void peer_memory_free(struct peer_rank_memory *m)
{
    if (m->base) cudaFree(m->base);
    memset(m, 0, sizeof *m);
}

void peer_comm_init(struct peer_comm *c, int rank, int n, size_t capacity, void *const *base, int use_flags)
{
    memset(c, 0, sizeof *c);
    c->rank = rank;
    c->n_ranks = n;
    c->capacity = capacity_elements(capacity);
    c->use_flags = use_flags;
    for (int k = 0; k < n; k++) {
        c->flags[k] = (uint32_t *)base[k];
        c->stage[k] = (char *)base[k] + STAGE_OFFSET;
    }
    c->error = (uint32_t *)((char *)base[rank] + FLAGS_BYTES);
    c->epoch = (uint32_t *)((char *)base[rank] + EPOCH_OFFSET);
}

static size_t packs_of(size_t count) { return (count + PACK - 1) / PACK; }

/* Packs per rank's chunk: two-shot splits the packs, one-shot has one chunk of all. */
static size_t chunk_packs(size_t count, int n, enum allreduce_algo algo)
{
    return algo == ALLREDUCE_TWOSHOT ? (packs_of(count) + n - 1) / n : packs_of(count);
}

static int grid_for(size_t chunk)
{
    size_t blocks = (chunk + PEER_THREADS - 1) / PEER_THREADS;
    return blocks < 1 ? 1 : blocks > PEER_MAX_BLOCKS ? PEER_MAX_BLOCKS : (int)blocks;
}

int peer_allreduce_blocks(size_t count, int n, enum allreduce_algo algo)
{
    return grid_for(chunk_packs(count, n, algo));
}

int peer_allreduce_resident_blocks(int *out)
{
    int dev = 0, sms = 0, per_sm = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, peer_allreduce_kernel, PEER_THREADS, 0));
    *out = sms * per_sm;
    return PB_OK;
}

static int check_call(const struct peer_comm *c, size_t count, enum allreduce_algo algo)
{
    if (algo != ALLREDUCE_ONESHOT && algo != ALLREDUCE_TWOSHOT)
        return pb_fail("internal: peer all-reduce asked for algorithm %d (one-shot or two-shot only)", (int)algo);
    if (count > c->capacity)
        return pb_fail("internal: peer all-reduce of %zu elements, buffers hold %zu", count, c->capacity);
    return PB_OK;
}

/* Arguments of rank c's kernel for one launch of a call; `advance` on its last. */
static struct peer_args args_for(const struct peer_comm *c, const void *in, void *out, int add_out, size_t count,
                                 enum allreduce_algo algo, int phases, int advance)
{
    struct peer_args a;
    memset(&a, 0, sizeof a);
    for (int k = 0; k < c->n_ranks; k++) {
        a.stage[k] = (const __nv_bfloat16 *)c->stage[k];
        a.flags[k] = c->flags[k];
    }
    a.in = (const __nv_bfloat16 *)in;
    a.out = (__nv_bfloat16 *)out;
    a.add_out = add_out;
    a.error = c->error;
    a.epoch = c->epoch;
    a.arrived = c->epoch + 1;
    a.capacity = c->capacity;
    a.advance = advance;
    a.count = count;
    a.chunk_packs = chunk_packs(count, c->n_ranks, algo);
    a.rank = c->rank;
    a.n_ranks = c->n_ranks;
    a.phases = phases;
    a.barrier = c->use_flags;
    return a;
}

static int launch(const struct peer_args *a, cudaStream_t s)
{
    peer_allreduce_kernel<<<grid_for(a->chunk_packs), PEER_THREADS, 0, s>>>(*a);
    cudaCheckLaunch();
    return PB_OK;
}

/* in is staged; the sum goes to out, plus out's own values where add_out. */
static int flag_call(struct peer_comm *c, const void *in, void *out, int add_out, size_t count,
                     enum allreduce_algo algo, cudaStream_t s)
{
    PB_TRY(check_call(c, count, algo));
    if (!c->use_flags) return pb_fail("internal: peer_allreduce on a communicator that meets by events");
    if (count == 0) return PB_OK;
    int phases = PHASE_STAGE | (algo == ALLREDUCE_ONESHOT ? PHASE_ONESHOT : PHASE_REDUCE_SCATTER | PHASE_ALLGATHER);
    struct peer_args a = args_for(c, in, out, add_out, count, algo, phases, 1);
    return launch(&a, s);
}

int peer_allreduce(struct peer_comm *c, void *data, size_t count, enum allreduce_algo algo, cudaStream_t s)
{
    return flag_call(c, data, data, 0, count, algo, s);
}

int peer_allreduce_residual(struct peer_comm *c, const void *partial, void *residual, size_t count,
                            enum allreduce_algo algo, cudaStream_t s)
{
    return flag_call(c, partial, residual, 1, count, algo, s);
}

int peer_comm_check(const struct peer_comm *c)
{
    uint32_t err = 0;
    cudaCheck(cudaMemcpy(&err, c->error, sizeof err, cudaMemcpyDeviceToHost));
    if (err)
        return pb_fail("peer all-reduce: rank %d of %d waited over %d s for a peer (a rank that never "
                       "arrived, or kernels that cannot run at the same time); --allreduce nccl avoids it",
                       c->rank, c->n_ranks, PEER_WAIT_TIMEOUT_S);
    return PB_OK;
}

/* ---- the residual add on one device -------------------------------------------- */

struct partials_args {
    const __nv_bfloat16 *partial[PEER_MAX_RANKS];
    int n;
};

/* The arithmetic of sum_pack with add_out, element by element. */
__global__ void add_partials_kernel(__nv_bfloat16 *residual, struct partials_args a, size_t count)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        float acc = 0.f;
        for (int k = 0; k < a.n; k++) acc += __bfloat162float(a.partial[k][i]);
        residual[i] = __float2bfloat16(__bfloat162float(residual[i]) + acc);
    }
}

int allreduce_add_partials(void *residual, const void *const *partials, int n, size_t count, cudaStream_t s)
{
    if (n < 1 || n > PEER_MAX_RANKS)
        return pb_fail("internal: residual add of %d partials (1 to %d)", n, PEER_MAX_RANKS);
    if (count == 0) return PB_OK;
    struct partials_args a;
    memset(&a, 0, sizeof a);
    a.n = n;
    for (int k = 0; k < n; k++) a.partial[k] = (const __nv_bfloat16 *)partials[k];
    size_t blocks = (count + 255) / 256;
    add_partials_kernel<<<blocks > 1024 ? 1024 : (unsigned)blocks, 256, 0, s>>>((__nv_bfloat16 *)residual, a, count);
    cudaCheckLaunch();
    return PB_OK;
}

/* ---- all ranks in one process ------------------------------------------------- */

int peer_group_create(int n, const int *ordinal, size_t capacity, struct peer_group *g)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || n > PEER_MAX_RANKS)
        return pb_fail("peer all-reduce: %d ranks; it supports 1 to %d", n, PEER_MAX_RANKS);
    g->n = n;
    for (int a = 0; a < n; a++) {
        g->ordinal[a] = ordinal[a];
        for (int b = 0; b < a; b++) g->use_events |= ordinal[a] == ordinal[b];
    }
    for (int a = 0; a < n && !g->use_events; a++)
        for (int b = 0; b < n; b++) {
            if (a == b) continue;
            int can = 0;
            cudaCheck(cudaDeviceCanAccessPeer(&can, ordinal[a], ordinal[b]));
            if (!can)
                return pb_fail("peer all-reduce: GPU %d cannot access GPU %d's memory (no P2P between them); "
                               "use --allreduce nccl", ordinal[a], ordinal[b]);
            cudaCheck(cudaSetDevice(ordinal[a]));
            cudaError_t r = cudaDeviceEnablePeerAccess(ordinal[b], 0);
            if (r == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
            else cudaCheck(r);
        }
    void *base[PEER_MAX_RANKS];
    for (int k = 0; k < n; k++) {
        cudaCheck(cudaSetDevice(ordinal[k]));
        PB_TRY(peer_memory_alloc(capacity, &g->mem[k]));
        cudaCheck(cudaEventCreateWithFlags(&g->staged[k], cudaEventDisableTiming));
        cudaCheck(cudaEventCreateWithFlags(&g->reduced[k], cudaEventDisableTiming));
        base[k] = g->mem[k].base;
    }
    for (int k = 0; k < n; k++) peer_comm_init(&g->comm[k], k, n, capacity, base, !g->use_events);
    return PB_OK;
}

void peer_group_destroy(struct peer_group *g)
{
    for (int k = 0; k < g->n; k++) {
        cudaSetDevice(g->ordinal[k]);
        peer_memory_free(&g->mem[k]);
        if (g->staged[k]) cudaEventDestroy(g->staged[k]);
        if (g->reduced[k]) cudaEventDestroy(g->reduced[k]);
    }
    memset(g, 0, sizeof *g);
}

/* Every rank's stream waits for the event of every other rank. */
static int wait_all(struct peer_group *g, const cudaEvent_t *ev, const cudaStream_t *streams)
{
    for (int k = 0; k < g->n; k++) {
        cudaCheck(cudaSetDevice(g->ordinal[k]));
        cudaCheck(cudaEventRecord(ev[k], streams[k]));
    }
    for (int k = 0; k < g->n; k++) {
        cudaCheck(cudaSetDevice(g->ordinal[k]));
        for (int j = 0; j < g->n; j++)
            if (j != k) cudaCheck(cudaStreamWaitEvent(streams[k], ev[j], 0));
    }
    return PB_OK;
}

/* What rank k just issued on its stream is its own (g->issued: CUDA graph capture). */
static int issued(struct peer_group *g, int k, cudaStream_t s)
{
    return g->issued ? g->issued(g->issued_ctx, k, s) : PB_OK;
}

/* One call's buffers for every rank: in[k] is staged, the sum goes to out[k]
 * (plus out[k]'s own values where add_out). */
struct group_call {
    const void *const *in;
    void *const *out;
    int add_out;
    size_t count;
    enum allreduce_algo algo;
};

static int launch_all(struct peer_group *g, const struct group_call *call, int phases, int advance,
                      const cudaStream_t *streams)
{
    for (int k = 0; k < g->n; k++) {
        cudaCheck(cudaSetDevice(g->ordinal[k]));
        struct peer_args a =
            args_for(&g->comm[k], call->in[k], call->out[k], call->add_out, call->count, call->algo, phases, advance);
        PB_TRY(launch(&a, streams[k]));
        PB_TRY(issued(g, k, streams[k]));
    }
    return PB_OK;
}

static int group_call(struct peer_group *g, const struct group_call *call, const cudaStream_t *streams)
{
    for (int k = 0; k < g->n; k++) PB_TRY(check_call(&g->comm[k], call->count, call->algo));
    if (call->count == 0) return PB_OK;
    if (g->n == 1) {   /* no peers: the sum is the rank's own input (in place: nothing to do) */
        if (!call->add_out) return PB_OK;
        cudaCheck(cudaSetDevice(g->ordinal[0]));
        PB_TRY(allreduce_add_partials(call->out[0], call->in, 1, call->count, streams[0]));
        return issued(g, 0, streams[0]);
    }
    if (!g->use_events) {
        for (int k = 0; k < g->n; k++) {
            cudaCheck(cudaSetDevice(g->ordinal[k]));
            PB_TRY(flag_call(&g->comm[k], call->in[k], call->out[k], call->add_out, call->count, call->algo,
                             streams[k]));
            PB_TRY(issued(g, k, streams[k]));
        }
        return PB_OK;
    }
    PB_TRY(launch_all(g, call, PHASE_STAGE, 0, streams));
    PB_TRY(wait_all(g, g->staged, streams));
    if (call->algo == ALLREDUCE_ONESHOT) return launch_all(g, call, PHASE_ONESHOT, 1, streams);
    PB_TRY(launch_all(g, call, PHASE_REDUCE_SCATTER, 0, streams));
    PB_TRY(wait_all(g, g->reduced, streams));
    return launch_all(g, call, PHASE_ALLGATHER, 1, streams);
}

int peer_group_allreduce(struct peer_group *g, void *const *data, size_t count, enum allreduce_algo algo,
                         const cudaStream_t *streams)
{
    struct group_call call = {(const void *const *)data, data, 0, count, algo};
    return group_call(g, &call, streams);
}

int peer_group_allreduce_residual(struct peer_group *g, const void *const *partial, void *const *residual,
                                  size_t count, enum allreduce_algo algo, const cudaStream_t *streams)
{
    struct group_call call = {partial, residual, 1, count, algo};
    return group_call(g, &call, streams);
}

int peer_group_allgather(struct peer_group *g, const void *const *send, void *const *recv, size_t bytes,
                         const cudaStream_t *streams)
{
    PB_TRY(wait_all(g, g->staged, streams));
    for (int k = 0; k < g->n; k++) {
        cudaCheck(cudaSetDevice(g->ordinal[k]));
        for (int j = 0; j < g->n; j++)
            cudaCheck(cudaMemcpyAsync((char *)recv[k] + (size_t)j * bytes, send[j], bytes, cudaMemcpyDefault,
                                      streams[k]));
        PB_TRY(issued(g, k, streams[k]));
    }
    return PB_OK;
}

int peer_group_check(const struct peer_group *g)
{
    for (int k = 0; k < g->n; k++) {
        cudaCheck(cudaSetDevice(g->ordinal[k]));
        PB_TRY(peer_comm_check(&g->comm[k]));
    }
    return PB_OK;
}
