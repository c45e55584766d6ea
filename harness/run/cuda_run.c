/* The measured run: the one sweep (sweep.c) with the CUDA executor on the GPUs
 * present, CUPTI for busy time, and the cost model beside with --predict; then
 * summary.csv, summary.json, trace.json and the pictures. What is here is what only
 * a process with GPUs knows: their names, versions, free memory. */
#include <cublas_api.h>
#include <cuda_runtime.h>
#include <cupti.h>
#include <math.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../measure/cupti.h"
#include "../report/placement_view.h"
#include "predict.h"
#include "sweep.h"
#include "run.h"
#include "run_common.h"
#include "run_outputs.h"

void run_env_versions(struct run_env *env)
{
    cudaDriverGetVersion(&env->driver_version);
    cudaRuntimeGetVersion(&env->runtime_version);
    ncclGetVersion(&env->nccl_version);
    int major = 0, minor = 0, patch = 0;
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    env->cublas_version = major * 10000 + minor * 100 + patch;
    uint32_t cv = 0;
    cuptiGetVersion(&cv);
    env->cupti_version = (int)cv;
    time_t now = time(NULL);
    strftime(env->started, sizeof env->started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
}

static void fill_env(struct run_env *env, const struct options *o, const struct model_spec *m, int n_gpus)
{
    memset(env, 0, sizeof *env);
    env->n_gpus = n_gpus < PB_MAX_DEVICES ? n_gpus : PB_MAX_DEVICES;
    for (int i = 0; i < env->n_gpus; i++) {
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
            snprintf(env->gpu_name[i], sizeof env->gpu_name[i], "%.95s", prop.name);
            env->gpu_memory[i] = prop.totalGlobalMem;
        }
        for (int j = 0; j < env->n_gpus; j++)
            if (i != j) cudaDeviceCanAccessPeer(&env->peer[i][j], i, j);
    }
    run_env_versions(env);
    snprintf(env->model, sizeof env->model, "%s", m->name);
    snprintf(env->command, sizeof env->command, "%s", o->command);
    env->iters = o->iters;
    env->warmup = o->warmup;
    env->profile_iters = o->no_cupti ? 0 : o->profile_iters;
    run_env_weights(env, o);
}

int run_gpu_budgets(const struct options *o, const int *ordinal, int n, struct machine *mc)
{
    *mc = o->machine;
    mc->gpus = n;
    if (o->max_memory_given) return PB_OK;
    for (int d = 0; d < n; d++) {
        size_t free_b = 0, total = 0;
        int sharers = 0;
        for (int k = 0; k < n; k++) sharers += ordinal[k] == ordinal[d];
        cudaError_t err = cudaSetDevice(ordinal[d]);
        if (err == cudaSuccess) err = cudaMemGetInfo(&free_b, &total);
        if (err != cudaSuccess)
            return pb_fail("cudaMemGetInfo on GPU %d failed: %s", ordinal[d], cudaGetErrorString(err));
        mc->gpu_memory[d] = free_b / (size_t)sharers;
    }
    if (!mc->cpu_memory) mc->cpu_memory = 512ull << 30;
    return PB_OK;
}

/* --predict: --gpu-profile, else the shipped profile of GPU 0's kind. */
static int load_prediction_profile(const struct options *o, const struct run_env *env, struct device_profile *prof)
{
    const char *name = o->gpu_profile ? o->gpu_profile : predict_profile_for_gpu(env->gpu_name[0]);
    if (!name) {
        fprintf(stderr, "bench: warning: --predict: no shipped profile for \"%s\"; name one with --gpu-profile "
                        "(or write one with --calibrate); running without predictions\n", env->gpu_name[0]);
        return PB_ERR;
    }
    if (device_profile_load(name, prof) != PB_OK) {
        fprintf(stderr, "bench: warning: --predict: running without predictions\n");
        return PB_ERR;
    }
    fprintf(stderr, "bench: --predict: cost model profile %s\n", prof->name);
    return PB_OK;
}

int run_measured(const struct options *o, const struct model_spec *m)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        fprintf(stderr, "bench: no GPU found (%s); --plan and --simulate work without one\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA devices");
        return 1;
    }
    static struct sweep s;
    s = (struct sweep){.o = o, .m = m, .ex = &cuda_executor_ops, .world = exec_world_single()};
    s.map.n = o->n_devices_listed ? o->n_devices_listed : (o->gpus ? o->gpus : count);
    for (int d = 0; d < s.map.n; d++) {
        s.map.ordinal[d] = o->n_devices_listed ? o->devices[d] : d;
        if (s.map.ordinal[d] >= count) return pb_fail("GPU %d does not exist (%d visible)", s.map.ordinal[d], count), 1;
    }
    if (run_gpu_budgets(o, s.map.ordinal, s.map.n, &s.mc) != PB_OK) return 1;
    static struct run_env env;
    fill_env(&env, o, m, count);
    struct cupti_mode mode;
    if (cupti_mode_parse(getenv("PB_CUPTI_MODE"), &mode) != PB_OK) return fprintf(stderr, "bench: %s\n", pb_last_error()), 1;
    cupti_set_mode(&mode);
    cupti_mode_describe(&mode, env.cupti_mode, sizeof env.cupti_mode);
    cupti_set_detail(o->profile_steps);
    env.profile_steps = o->profile_steps;
    env.cupti_enabled = !o->no_cupti && cupti_start(env.cupti_note, sizeof env.cupti_note) == PB_OK;
    if (o->no_cupti) snprintf(env.cupti_note, sizeof env.cupti_note, "--no-cupti: busy time not measured");
    else if (!env.cupti_enabled) fprintf(stderr, "bench: warning: %s; timing with CUDA events only, per-GPU busy time unknown\n", env.cupti_note);
    s.cupti_on = env.cupti_enabled;
    static struct device_profile prof;   /* large; read-only once loaded */
    s.predict = o->predict && load_prediction_profile(o, &env, &prof) == PB_OK ? &prof : NULL;
    s.allreduce_table = predict_allreduce_table(o->allreduce, env.gpu_name[0]);
    static struct device_profile ceilings;
    s.ceilings = s.predict ? s.predict : run_ceilings_profile(o->gpu_profile, env.gpu_name[0], &ceilings);
    char weights[1100];
    run_weights_describe(o, weights, sizeof weights);
    s.weights = weights;
    struct sweep_out out;
    int rc = sweep_run(&s, &out);
    cupti_stop();
    if (rc != PB_OK) return 1;
    const struct trace **tptr = calloc((size_t)out.n + 1, sizeof *tptr);
    for (int i = 0; tptr && i < out.n; i++) tptr[i] = &out.traces[i];
    rc = tptr ? run_write_reports(o->out_dir, &env, out.res, tptr, out.n) : pb_fail("out of host memory");
    if (rc == PB_OK) rc = run_outputs_write(o, &env, out.res, out.n, tptr, o->out_dir);
    if (rc == PB_OK) run_outputs_announce(stdout, o, o->out_dir, NULL, 0);
    free(tptr);
    int failed = out.failed;
    sweep_out_free(&out);
    return rc == PB_OK && !failed ? PB_OK : 1;
}
