/* Dispatch for the MPI build of bench. Mirrors harness/cli/main.c (which the
 * single-process build keeps): a rank-0-only job for anything that needs no GPU,
 * and a status every rank agrees on, so that mpirun's exit status is the job's. */
#include <stdio.h>
#include <sys/stat.h>
#include "../../../base/check.h"
#include "../../cli/cli.h"
#include "../../cli/memory_budget.h"
#include "../../run/plan.h"
#include "../../run/results_dir.h"
#include "../../run/simulate_run.h"
#include "../../../base/interrupt.h"
#include "mpi_jobs.h"

#define GIB (1ull << 30)

/* As main.c: --plan assumes 80 GiB GPUs and 512 GiB of host memory unless told.
 * Under MPI the GPUs are the ranks unless --gpus says otherwise. */
static int plan_budgets(const struct mpi_world *w, struct options *o)
{
    if (!o->gpus) o->gpus = w->size;
    o->machine.gpus = o->gpus;
    if (o->max_memory_given) return memory_budget_check_gpus(&o->machine, o->gpus);
    for (int d = 0; d < o->gpus; d++) o->machine.gpu_memory[d] = 80 * GIB;
    o->machine.cpu_memory = 512 * GIB;
    return PB_OK;
}

int mpi_plan_job(const struct mpi_world *w, struct options *o, const struct model_spec *m)
{
    int rc = PB_OK;
    if (w->rank == 0) {
        char dir[4096];
        rc = plan_budgets(w, o);
        if (rc == PB_OK) rc = results_dir_create(o->out_dir, m->name, "-plan", dir, sizeof dir);
        if (rc == PB_OK) rc = plan_run(o, m, dir, NULL);   /* rank 0 needs no GPU to plan */
    }
    return mpi_world_agree(w, rc, "planning on rank 0");
}

int mpi_simulate_job(const struct mpi_world *w, struct options *o, const struct model_spec *m)
{
    if (!o->gpus) o->gpus = w->size;
    int rc = w->rank == 0 ? run_simulated(o, m) : PB_OK;
    return mpi_world_agree(w, rc, "simulating on rank 0");
}

static int dispatch(const struct mpi_world *w, struct options *o, mpi_measured_fn measured)
{
    if (o->calibrate) {
        int rc = w->rank == 0 ? pb_fail("--calibrate measures one machine: run it without mpirun") : PB_OK;
        return mpi_world_agree(w, rc, "calibrating");
    }
    if (o->serve.enabled) {   /* the step op is the single-process executor's (executor.h) */
        int rc = w->rank == 0 ? pb_fail("--serve runs in one process: run bench --serve (GPUs) or bench --serve "
                                        "--simulate, without mpirun") : PB_OK;
        mpi_world_agree(w, rc, "serving");
        return 2;
    }
    static struct model_spec m;
    int rc = cli_load_model(o, &m);
    if (mpi_world_agree(w, rc, "loading the model") != PB_OK) return 2;
    if (mpi_world_agree(w, cli_check_inputs(o, &m), "checking the options") != PB_OK) return 2;
    interrupt_install();
    if (o->plan_only) return mpi_plan_job(w, o, &m) == PB_OK ? 0 : 1;
    if (o->simulate) return mpi_simulate_job(w, o, &m) == PB_OK ? 0 : 1;
    return measured(w, o, &m) == PB_OK ? 0 : 1;
}

int mpi_bench_main(int argc, char **argv, mpi_measured_fn measured)
{
    static struct mpi_world w;
    if (mpi_world_init(&argc, &argv, &w) != PB_OK) return 1;
    /* One table on stdout: rank 0's. The other ranks keep stderr for their errors. */
    if (w.rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    static struct options o;
    int c = cli_parse(argc, argv, &o);
    int status;
    if (c == CLI_EXIT_HELP) status = 0;
    else if (c != CLI_OK) status = 2;   /* every rank parsed the same arguments */
    else status = dispatch(&w, &o, measured);
    if (interrupt_signal()) status = interrupt_exit_status();
    mpi_world_finalize();
    return status;
}
