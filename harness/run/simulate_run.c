/* bench --simulate: the one sweep (sweep.c) with the cost-model executor in place of
 * the GPUs. Points are filled exactly as measured ones, so summary.csv, summary.json
 * and trace.json come from the same writers; what marks them as predicted is the
 * environment (GPU names, cupti_note), trace.json's "predicted" flag, the folder
 * name and the profile.json written beside them. */
#include "simulate_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include "../report/placement_view.h"
#include "results_dir.h"
#include "run_outputs.h"
#include "sweep.h"

#define GIB (1ull << 30)
#define DEFAULT_PROFILE "h200"      /* the GPUs this project measured on */
#define DEFAULT_CPU_BUDGET (512 * GIB)

/* Logical device d on GPU ordinal[d] (--devices 0,0 puts two on one GPU, sharing its
 * engines); without --devices every device is its own GPU. */
static void simulated_map(const struct options *o, int gpus, struct device_map *map)
{
    map->n = gpus < PB_MAX_DEVICES ? gpus : PB_MAX_DEVICES;
    for (int d = 0; d < map->n; d++) map->ordinal[d] = d < o->n_devices_listed ? o->devices[d] : d;
}

int simulate_point(const struct device_profile *prof, const struct model_spec *m,
                   const struct strategy *st, const struct placement *p, const struct workload *w,
                   int decode_tokens, struct point_result *r, struct trace *t)
{
    return simulate_point_on(prof, m, st, p, w, decode_tokens, NULL, r, t);
}

int simulate_point_on(const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct placement *p, const struct workload *w,
                      int decode_tokens, const int *ordinal, struct point_result *r, struct trace *t)
{
    static struct options o;   /* large; only what one point reads */
    o = (struct options){.decode_tokens = decode_tokens, .iters = 1, .dtype = w->dtype};
    struct sweep s = {.o = &o, .m = m, .ex = &model_executor_ops, .profile = prof, .world = exec_world_single()};
    s.map.n = p->n_devices;
    for (int d = 0; d < p->n_devices; d++) s.map.ordinal[d] = ordinal ? ordinal[d] : d;
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", st->name);
    r->w = *w;
    r->decode_tokens = decode_tokens;
    r->speedup = r->gpipe_bound = r->prediction_error_pct = NAN;
    r->placement = malloc(sizeof *r->placement);
    if (!r->placement) return pb_fail("out of host memory for a predicted point");
    *r->placement = *p;
    placement_summary(p, r->placement_summary, sizeof r->placement_summary);
    int rc = sweep_point_run(&s, st, r, t);
    if (rc != PB_OK) {
        point_result_free(r);
        trace_free(t);
    }
    return rc;
}

/* Budgets for placement: --max-memory if given, else every GPU's full memory as the
 * profile states it (what a fresh GPU reports free, less its CUDA context). */
int simulated_machine(const struct options *o, const struct device_profile *prof, struct machine *mc)
{
    *mc = o->machine;
    mc->gpus = o->gpus;
    if (o->max_memory_given) {
        for (int d = 0; d < PB_MAX_DEVICES; d++)
            if (d >= o->gpus && mc->gpu_memory[d])
                return pb_fail("--max-memory: GPU %d has a budget but only %d GPUs are simulated "
                               "(--gpus)", d, o->gpus);
        return PB_OK;
    }
    for (int d = 0; d < o->gpus; d++) mc->gpu_memory[d] = prof->memory_bytes;
    mc->cpu_memory = DEFAULT_CPU_BUDGET;
    mc->budgets_from_user = 0;
    return PB_OK;
}

static void fill_env(const struct options *o, const struct model_spec *m,
                     const struct device_profile *prof, struct run_env *env)
{
    memset(env, 0, sizeof *env);
    env->n_gpus = o->gpus;
    for (int d = 0; d < o->gpus; d++) {
        snprintf(env->gpu_name[d], sizeof env->gpu_name[d], "predicted: %.52s (profile %.20s)",
                 prof->gpu, prof->name);
        env->gpu_memory[d] = prof->memory_bytes;
        for (int e = 0; e < o->gpus; e++) env->peer[d][e] = prof->peer_link == LINK_NVLINK;
    }
    snprintf(env->cupti_note, sizeof env->cupti_note,
             "predicted by the cost model from %.200s; nothing was measured", prof->path);
    snprintf(env->model, sizeof env->model, "%s", m->name);
    snprintf(env->command, sizeof env->command, "%s", o->command);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(env->started, sizeof env->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    env->iters = 1;
    snprintf(env->weights, sizeof env->weights, "none");   /* the cost model runs no kernels */
}

static int write_reports(const char *dir, const struct run_env *env, const struct device_profile *prof,
                         struct point_result *r, const struct trace *const *t, int n)
{
    char path[4200];
    PB_TRY(summary_write_csv(dir, env, r, n));
    PB_TRY(summary_write_json(dir, env, r, n));
    PB_TRY(path_join(path, sizeof path, dir, "trace.json"));
    PB_TRY(trace_json_write(path, env, r, t, n));
    PB_TRY(trace_hta_write(dir, env, r, t, n));
    /* The profile beside the numbers it produced, sources included. */
    PB_TRY(path_join(path, sizeof path, dir, "profile.json"));
    return device_profile_write(prof, path);
}

int run_simulated(const struct options *o, const struct model_spec *m)
{
    static struct device_profile prof;   /* large; one per run, read-only after loading */
    const char *name = o->gpu_profile ? o->gpu_profile : DEFAULT_PROFILE;
    if (!o->gpu_profile)
        fprintf(stderr, "bench: --simulate without --gpu-profile: using %s\n", DEFAULT_PROFILE);
    PB_TRY(device_profile_load(name, &prof));
    if (o->gpus < 1) return pb_fail("--simulate needs --gpus N (simulated GPUs, 1..%d)", PB_MAX_DEVICES);
    static struct sweep s;
    s = (struct sweep){.o = o, .m = m, .ex = &model_executor_ops, .profile = &prof, .world = exec_world_single()};
    PB_TRY(simulated_machine(o, &prof, &s.mc));
    simulated_map(o, o->gpus, &s.map);
    char banner[512];
    snprintf(banner, sizeof banner, "PREDICTED by the cost model (not measured): %s on %d x %s (profile %s%s), "
             "%s between GPUs\n", m->name, o->gpus, prof.gpu, prof.name, prof.measured ? ", calibrated" : "",
             link_kind_name(prof.peer_link));
    s.banner = banner;
    struct sweep_out out;
    PB_TRY(sweep_run(&s, &out));

    char dir[4096];
    struct run_env env;
    fill_env(o, m, &prof, &env);
    const struct trace **tptr = calloc((size_t)out.n + 1, sizeof *tptr);
    for (int i = 0; tptr && i < out.n; i++) tptr[i] = &out.traces[i];
    int rc = tptr ? results_dir_create(o->out_dir, m->name, "-simulate", dir, sizeof dir) : pb_fail("out of host memory");
    if (rc == PB_OK) rc = write_reports(dir, &env, &prof, out.res, tptr, out.n);
    if (rc == PB_OK) rc = run_outputs_write(o, &env, out.res, out.n, tptr, dir);
    if (rc == PB_OK) run_outputs_announce(stdout, o, dir, "profile.json", 1);
    int failed = out.failed, n = out.n;
    free(tptr);
    sweep_out_free(&out);
    if (rc == PB_OK && failed)
        return pb_fail("%d of %d points could not be placed or predicted (reasons above and in "
                       "summary.json)", failed, n);
    return rc;
}
