/* bench: the command line. Parses options, loads the model, then runs the job the
 * options ask for: --plan, --simulate, --search, --serve, --calibrate, or the measured run. Only main
 * decides the exit status: 0 done, 1 a run failed, 2 bad usage. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <cuda_runtime.h>
#include "../../base/check.h"
#include "cli.h"
#include "memory_budget.h"
#include "../run/plan.h"
#include "../report/diff.h"
#include "../report/plots.h"
#include "../run/results_dir.h"
#include "../run/run.h"
#include "../run/simulate_run.h"
#include "../serve/serve_run.h"
#include "../search/cuda_search_measure.h"
#include "../measure/cuda_calibrate.h"
#include "../../base/interrupt.h"
#include "../run/run_common.h"

#define GIB (1ull << 30)

static int visible_gpus(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

/* Budgets for placement when none were given: --plan assumes 80 GiB GPUs (an
 * H100's size) and 512 GiB of host memory; measured runs read free memory later. */
static int default_budgets(struct options *o)
{
    o->machine.gpus = o->gpus;
    if (o->max_memory_given) return memory_budget_check_gpus(&o->machine, o->gpus);
    for (int d = 0; d < o->gpus; d++) o->machine.gpu_memory[d] = 80 * GIB;
    o->machine.cpu_memory = 512 * GIB;
    return PB_OK;
}

static int plan_job(struct options *o, const struct model_spec *m)
{
    char dir[4096];
    PB_TRY(results_dir_create(o->out_dir, m->name, "-plan", dir, sizeof dir));
    /* --plan prices work on the GPU that is here, when there is one */
    struct cudaDeviceProp prop;
    int here = visible_gpus() > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess;
    return plan_run(o, m, dir, here ? prop.name : NULL);
}

static int measured_job(struct options *o, const struct model_spec *m)
{
    int present = visible_gpus();
    if (present == 0) {
        fprintf(stderr, "bench: no GPU found (cudaGetDeviceCount reports none), so nothing can be "
                        "measured here.\nbench: showing the plan instead; add --simulate --gpu-profile "
                        "h100 (or h200, a100, l40s, rtx4090) for the cost model's prediction.\n");
        char weights[1100];
        run_weights_describe(o, weights, sizeof weights);
        fprintf(stderr, "bench: a measured run would use weights: %s\n\n", weights);
        if (!o->gpus) o->gpus = 2;
        PB_TRY(default_budgets(o));
        return plan_job(o, m);
    }
    if (!o->gpus) o->gpus = present;
    int highest = 0;
    for (int d = 0; d < o->n_devices_listed; d++) highest = o->devices[d] > highest ? o->devices[d] : highest;
    if ((!o->n_devices_listed && o->gpus > present) || highest >= present)
        return pb_fail("asked for %d GPU(s)%s but %d %s visible; use --devices 0,0 to run several "
                       "logical devices on one GPU", o->n_devices_listed ? highest + 1 : o->gpus,
                       o->n_devices_listed ? " (--devices)" : "", present, present == 1 ? "is" : "are");
    o->machine.gpus = o->gpus;
    if (o->max_memory_given) PB_TRY(memory_budget_check_gpus(&o->machine, o->gpus));
    char dir[4096];
    PB_TRY(results_dir_create(o->out_dir, m->name, "", dir, sizeof dir));
    o->out_dir = dir;
    return run_measured(o, m);
}

int main(int argc, char **argv)
{
    static struct options o;
    /* bench plot DIR / bench plot-data DIR: pictures from an existing results folder */
    if (argc >= 2 && (!strcmp(argv[1], "plot") || !strcmp(argv[1], "plot-data")))
        return plots_main(argc - 1, argv + 1);
    /* bench diff A B / bench diff DIR --strategies X,Y: two runs side by side */
    if (argc >= 2 && !strcmp(argv[1], "diff")) return diff_main(argc - 1, argv + 1, stdout);
    int c = cli_parse(argc, argv, &o);
    if (c == CLI_EXIT_HELP) return 0;
    if (c != CLI_OK) return 2;
    if (o.calibrate) return run_calibrate(&o) == PB_OK ? 0 : 1;
    struct model_spec m;
    if (cli_load_model(&o, &m) != PB_OK) return 2;
    if (cli_check_inputs(&o, &m) != PB_OK) return 2;
    interrupt_install();
    int status;
    if (o.plan_only) {
        if (default_budgets(&o) != PB_OK) return 2;
        status = plan_job(&o, &m);
    } else if (o.search.enabled) {
        status = search_run(&o, &m, search_measure_on_gpus);
    } else if (o.serve.enabled) {
        status = o.simulate ? serve_run(&o, &m) : serve_measured_run(&o, &m);
    } else if (o.simulate) {
        status = run_simulated(&o, &m);
    } else {
        status = measured_job(&o, &m);
    }
    if (interrupt_signal()) {
        fprintf(stderr, "bench: %s; the reports written are complete, and sweep points not run are marked "
                        "\"interrupted\"\n",
                interrupt_signal() == SIGTERM ? "stopped by SIGTERM" : "stopped by SIGINT");
        return interrupt_exit_status();
    }
    return status == PB_OK ? 0 : 1;
}
