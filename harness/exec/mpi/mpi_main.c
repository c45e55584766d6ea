/* bench-mpi: bench under mpirun, one rank per GPU (docs/MPI.md). */
#include "mpi_jobs.h"

int run_measured_mpi(const struct mpi_world *w, struct options *o, const struct model_spec *m);

int main(int argc, char **argv) { return mpi_bench_main(argc, argv, run_measured_mpi); }
