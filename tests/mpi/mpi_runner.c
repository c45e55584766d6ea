/* Runs the MPI tests (tests/test.h's TEST) on every rank of an mpirun job. Each
 * test is collective: all ranks run it, and it fails if it failed on any rank.
 * Rank 0 prints one line per test and ends with "N passed, N failed". */
#include <mpi.h>
#include <stdlib.h>
#include <unistd.h>
#include "../test.h"

#define MAX_TESTS 256
static struct test_case registered[MAX_TESTS];
static int n_registered;

void test_register(const char *name, void (*fn)(int *))
{
    if (n_registered < MAX_TESTS) registered[n_registered++] = (struct test_case){name, fn};
}

/* Not used here (the single-process suite drives build/bench); test.h declares them. */
int run_bench(const char *args, char *buf, size_t buflen)
{
    (void)args;
    if (buflen) buf[0] = 0;
    return -1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, passed = 0, failed = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int i = 0; i < n_registered; i++) {
        if (argc > 1 && !strstr(registered[i].name, argv[1])) continue;
        int failures = 0, any = 0;
        registered[i].fn(&failures);
        fflush(stderr);
        MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any) failed++;
        else passed++;
        if (rank == 0) printf("%s %s\n", any ? "FAIL" : "ok  ", registered[i].name);
        temp_dirs_done(any);  /* every rank is past the test: rank 0's folders may go */
        fflush(stdout);
    }
    if (rank == 0) printf("%d passed, %d failed\n", passed, failed);
    MPI_Finalize();
    return failed ? 1 : 0;
}
