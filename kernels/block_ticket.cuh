/* The last block of a grid (or of a group of blocks) finds out it is last, so it
 * can finish what needs every block's output: the decode attention's combine,
 * the GEMV's norm of the rows it completed. */
#ifndef PB_BLOCK_TICKET_CUH
#define PB_BLOCK_TICKET_CUH

/* Called by every thread of each of the n_blocks blocks after its output is
 * written; true in the block that took the last ticket, which may then read every
 * block's output (through L2: its L1 may hold lines older than the others'
 * stores). The last ticket's taker puts the counter back to zero: every block of
 * this call has taken its ticket by then and the next call on the counter is
 * stream-ordered after this one (under programmatic launch too: pdl_wait comes
 * before any ticket), so each launch, a graph replay included, finds it at zero.
 * `flag` is an int in shared memory. */
__device__ __forceinline__ bool block_take_ticket(int *ticket, int n_blocks, int *flag)
{
    __threadfence();  /* this block's output visible before its ticket */
    __syncthreads();
    if (threadIdx.x == 0) {
        const bool last = atomicAdd(ticket, 1) == n_blocks - 1;
        if (last) *ticket = 0;
        *flag = last;
    }
    __syncthreads();
    const bool last = *flag;
    if (last) __threadfence();  /* the others' outputs read after their tickets */
    return last;
}
#endif
