/* The last block of a grid to finish, found by tickets: what the decode attention's
 * split combine and the GEMV's trailing norm (gemm_rows_then_norm) both build on. */
#ifndef PB_LAST_BLOCK_CUH
#define PB_LAST_BLOCK_CUH

/* Called by every thread of each block after the block's results are written,
 * `count` of the n tickets taken by this block (1 unless the block stands for
 * several); true in the block whose tickets end the n, which may then read every
 * block's results. The last ticket's taker puts the counter back to zero: every
 * block of this call has taken its tickets by then and the next call on the
 * counter is stream-ordered after this one (under programmatic launch too:
 * pdl_wait comes before any ticket), so each launch, a graph replay included,
 * finds it at zero. `flag` is an int in shared memory. */
__device__ __forceinline__ bool take_last_ticket(int *ticket, int count, int n, int *flag)
{
    __threadfence();  /* this block's results visible before its tickets */
    __syncthreads();
    if (threadIdx.x == 0) {
        const bool last = atomicAdd(ticket, count) == n - count;
        if (last) *ticket = 0;
        *flag = last;
    }
    __syncthreads();
    const bool last = *flag;
    if (last) __threadfence();  /* the others' results read after their tickets */
    return last;
}
#endif
