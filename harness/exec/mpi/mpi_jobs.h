/* bench under mpirun: the same command line as bench, one rank per GPU. Jobs
 * that need no GPU (--plan, --simulate) run on rank 0 alone, which writes the one
 * results folder; the measured run is the rank-local executor's (cuda_mpi_run.c),
 * passed in so this file and its tests need no CUDA. */
#ifndef PB_MPI_JOBS_H
#define PB_MPI_JOBS_H
#include "../../cli/options.h"
#include "mpi_world.h"

typedef int (*mpi_measured_fn)(const struct mpi_world *w, struct options *o, const struct model_spec *m);

/* The whole program: MPI_Init, parse, dispatch, agree on the outcome, finalise.
 * Returns the exit status (0 done, 1 a run failed, 2 bad usage). */
int mpi_bench_main(int argc, char **argv, mpi_measured_fn measured);

/* --plan and --simulate under MPI: rank 0 places, plans or predicts and writes
 * the results folder (o->out_dir, created); the other ranks write nothing. Every
 * rank returns the same status (rank 0's). */
int mpi_plan_job(const struct mpi_world *w, struct options *o, const struct model_spec *m);
int mpi_simulate_job(const struct mpi_world *w, struct options *o, const struct model_spec *m);
#endif
