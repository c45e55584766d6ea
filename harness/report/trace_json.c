/* trace.json in the Chrome trace event format (Perfetto, chrome://tracing), laid out
 * like the PyTorch profiler's trace, and hta/<point>/rank-<d>.json, one file per GPU
 * of each point, as Holistic Trace Analysis reads a job (one trace per rank):
 * - a process per GPU, a thread per stream; categories kernel / gpu_memcpy /
 *   gpu_memset with args device, stream, correlation;
 * - device activity named as CUPTI and NCCL name it (ncclDevKernel_AllReduce_Sum_bf16_RING_LL,
 *   Memcpy PtoP (Device -> Device), ...), our step label in args.label;
 * - on the host, each timed iteration a ProfilerStep#N user_annotation and every
 *   device event's launch (cudaLaunchKernel, cudaMemcpyAsync; cat cuda_runtime) with
 *   its correlation, which is what HTA keeps kernels by;
 * - in trace.json each point in its own stretch of time, 1 ms after the one before
 *   (args.point says which), since simulated points all start at 0;
 * - a top-level distributedInfo (rank, world size). */
#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../../base/atomic_file.h"
#include "../run/run.h"

#define HOST_PID 1000          /* the host's process id in the trace, clear of GPU indices */
#define POINT_GAP_US 1000.0    /* between one point's stretch and the next in trace.json */

static const char *category(const struct record *r)
{
    switch (r->kind) {
    case REC_KERNEL:
    case REC_COMM: return "kernel";
    case REC_MEMCPY: return "gpu_memcpy";
    case REC_MEMSET: return "gpu_memset";
    default: return "user_annotation";
    }
}

/* The name CUPTI (copies, memsets) or NCCL (collectives) gives the activity; a compute
 * kernel keeps its own (measured: the demangled kernel; predicted: the step's label). */
static const char *device_name(const struct record *r)
{
    switch (r->kind) {
    case REC_COMM:
        /* Only the cost model's step labels are renamed; a measured kernel (NCCL's, or the
         * peer all-reduce's peer_allreduce_kernel) keeps the name CUPTI gave it. */
        if (!strncmp(r->name, "allgather ", 10)) return "ncclDevKernel_AllGather_RING_LL";
        if (!strncmp(r->name, "allreduce ", 10)) return "ncclDevKernel_AllReduce_Sum_bf16_RING_LL";
        return r->name;
    case REC_MEMCPY:
        switch (r->copy) {
        case COPY_HTOD: return "Memcpy HtoD (Pinned -> Device)";
        case COPY_DTOH: return "Memcpy DtoH (Device -> Pinned)";
        case COPY_DTOD: return "Memcpy DtoD (Device -> Device)";
        default: return "Memcpy PtoP (Device -> Device)";
        }
    case REC_MEMSET: return "Memset (Device)";
    default: return r->name;
    }
}

static void add_meta(cJSON *events, const char *what, int pid, int tid, const char *name)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "ph", "M");
    cJSON_AddStringToObject(e, "name", what);
    cJSON_AddNumberToObject(e, "pid", pid);
    cJSON_AddNumberToObject(e, "tid", tid);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(e, "args"), "name", name);
    cJSON_AddItemToArray(events, e);
}

static cJSON *complete_event(cJSON *events, const char *cat, const char *name, int pid, int tid, double ts_us,
                             double dur_us)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "ph", "X");
    cJSON_AddStringToObject(e, "cat", cat);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddNumberToObject(e, "pid", pid);
    cJSON_AddNumberToObject(e, "tid", tid);
    cJSON_AddNumberToObject(e, "ts", ts_us);
    cJSON_AddNumberToObject(e, "dur", dur_us);
    cJSON_AddItemToArray(events, e);
    return cJSON_AddObjectToObject(e, "args");
}

/* One point's records from t0 on, shifted to start at base_us; only device `only`'s
 * (all if < 0). *correlation numbers each device event and its launch. Returns the
 * stretch's length in us. */
static double add_point(cJSON *events, const struct trace *t, const char *strategy, int point, int only,
                        double base_us, uint32_t *correlation)
{
    uint64_t t0 = UINT64_MAX, t1 = 0;
    int iterations = 0;
    for (int k = 0; k < t->n; k++) {
        const struct record *r = &t->rec[k];
        if (only >= 0 && r->device != only) continue;
        if (r->start_ns < t0) t0 = r->start_ns;
        if (r->end_ns > t1) t1 = r->end_ns;
        if (r->iteration + 1 > iterations) iterations = r->iteration + 1;
    }
    if (t0 == UINT64_MAX) return 0;
#define US(ns) (base_us + (double)((ns) - t0) / 1e3)
    /* ProfilerStep#N spans iteration N's records (device activity and host ranges). */
    for (int it = 0; it < iterations; it++) {
        uint64_t a = UINT64_MAX, b = 0;
        for (int k = 0; k < t->n; k++) {
            const struct record *r = &t->rec[k];
            if (r->iteration != it || (only >= 0 && r->device != only)) continue;
            if (r->start_ns < a) a = r->start_ns;
            if (r->end_ns > b) b = r->end_ns;
        }
        if (a == UINT64_MAX) continue;
        char name[32];
        snprintf(name, sizeof name, "ProfilerStep#%d", it);
        cJSON *args = complete_event(events, "user_annotation", name, HOST_PID, 0, US(a), (double)(b - a) / 1e3);
        cJSON_AddStringToObject(args, "strategy", strategy);
        cJSON_AddNumberToObject(args, "point", point);
    }
    for (int k = 0; k < t->n; k++) {
        const struct record *r = &t->rec[k];
        if (only >= 0 && r->device != only) continue;
        int host = r->kind == REC_RANGE || r->device < 0;
        double dur = (double)(r->end_ns - r->start_ns) / 1e3;
        cJSON *a = complete_event(events, category(r), host ? r->name : device_name(r), host ? HOST_PID : r->device,
                                  host ? 0 : (r->stream < 0 ? 99 : r->stream), US(r->start_ns), dur);
        if (!host) {
            uint32_t c = ++*correlation;
            cJSON_AddNumberToObject(a, "device", r->device);
            cJSON_AddNumberToObject(a, "stream", r->stream);
            cJSON_AddNumberToObject(a, "correlation", c);
            cJSON_AddStringToObject(a, "label", r->name);
            /* Its launch on the host, inside the iteration's ProfilerStep. */
            const char *launch = r->kind == REC_MEMCPY ? "cudaMemcpyAsync"
                               : r->kind == REC_MEMSET ? "cudaMemsetAsync" : "cudaLaunchKernel";
            cJSON *l = complete_event(events, "cuda_runtime", launch, HOST_PID, 0, US(r->start_ns), 0);
            cJSON_AddNumberToObject(l, "correlation", c);
        }
        if (r->kind == REC_MEMCPY || r->kind == REC_MEMSET) {
            cJSON_AddNumberToObject(a, "bytes", (double)r->bytes);
            if (dur > 0) cJSON_AddNumberToObject(a, "memory bandwidth (GB/s)", (double)r->bytes / dur / 1e3);
        }
        if (r->kind == REC_MEMCPY && r->src_device >= 0) {
            cJSON_AddNumberToObject(a, "src_device", r->src_device);
            cJSON_AddNumberToObject(a, "dst_device", r->dst_device);
        }
        if (r->has_step) cJSON_AddNumberToObject(a, "step", r->step);
        if (r->has_step && r->microbatch >= 0) cJSON_AddNumberToObject(a, "microbatch", r->microbatch);
        cJSON_AddNumberToObject(a, "iteration", r->iteration);
        cJSON_AddStringToObject(a, "strategy", strategy);
        /* The point index splits a sweep exactly, even where one strategy repeats. */
        cJSON_AddNumberToObject(a, "point", point);
    }
#undef US
    return (double)(t1 - t0) / 1e3;
}

/* Process and thread names for devices [first, last] as the traces use them. */
static void add_lanes(cJSON *events, const struct trace *const *traces, int n, int first, int last)
{
    int max_stream[PB_MAX_DEVICES] = {0};
    for (int i = 0; i < n; i++)
        for (int k = 0; traces[i] && k < traces[i]->n; k++) {
            const struct record *rec = &traces[i]->rec[k];
            if (rec->device < first || rec->device > last || rec->device >= PB_MAX_DEVICES) continue;
            int st = rec->stream < 0 ? 99 : rec->stream;
            if (st + 1 > max_stream[rec->device]) max_stream[rec->device] = st + 1;
        }
    for (int d = first; d <= last && d < PB_MAX_DEVICES; d++) {
        char name[64];
        snprintf(name, sizeof name, "GPU %d", d);
        add_meta(events, "process_name", d, 0, name);
        for (int s = 0; s < max_stream[d]; s++) {
            if (s >= 8 && s != 99) continue;   /* only the streams a schedule uses */
            snprintf(name, sizeof name, s == 99 ? "library stream" : "stream %d", s);
            add_meta(events, "thread_name", d, s, name);
        }
    }
    add_meta(events, "process_name", HOST_PID, 0, "host");
}

/* Points whose trace keeps only some passes: which, and that the summaries count all. */
static void sampled_passes(cJSON *meta, const struct point_result *r, const struct trace *const *traces, int n)
{
    cJSON *list = NULL;
    for (int i = 0; i < n; i++) {
        char note[512];
        if (!traces[i] || !trace_sample_describe(traces[i], note, sizeof note)) continue;
        if (!list) list = cJSON_AddArrayToObject(meta, "sampled_passes");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "point", i);
        cJSON_AddStringToObject(p, "strategy", r[i].strategy);
        cJSON_AddNumberToObject(p, "passes", traces[i]->sample.passes);
        cJSON *shown = cJSON_AddArrayToObject(p, "passes_shown");
        for (int k = 0; k < traces[i]->sample.n_shown; k++)
            cJSON_AddItemToArray(shown, cJSON_CreateNumber(traces[i]->sample.shown[k]));
        cJSON_AddStringToObject(p, "note", note);
        cJSON_AddItemToArray(list, p);
    }
}

/* formatted: HTA finds a file's rank with the pattern "rank":\s+N, which needs the
 * space (a tab here) that a formatted print puts after the colon. */
static int write_root(const char *path, cJSON *root, int rank, int world, const struct run_env *env, int predicted,
                      int formatted, const struct point_result *r, const struct trace *const *traces, int n)
{
    /* HTA reads the rank and world size here. */
    cJSON *dist = cJSON_AddObjectToObject(root, "distributedInfo");
    cJSON_AddStringToObject(dist, "backend", "nccl");
    cJSON_AddNumberToObject(dist, "rank", rank);
    cJSON_AddNumberToObject(dist, "world_size", world > 0 ? world : 1);
    cJSON_AddStringToObject(root, "displayTimeUnit", "ms");
    cJSON *meta = cJSON_AddObjectToObject(root, "placebench");
    cJSON_AddStringToObject(meta, "command", env ? env->command : "");
    cJSON_AddBoolToObject(meta, "predicted", predicted);
    sampled_passes(meta, r, traces, n);
    char *text = formatted ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return pb_fail("out of host memory printing %s", path);
    int rc = atomic_write_text(path, text);
    free(text);
    return rc;
}

static int devices_of(const struct trace *const *traces, int n, int *predicted)
{
    int max_dev = 0;
    *predicted = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; traces[i] && k < traces[i]->n; k++) {
            *predicted |= traces[i]->predicted;
            int d = traces[i]->rec[k].device;
            if (d >= 0 && d < PB_MAX_DEVICES && d + 1 > max_dev) max_dev = d + 1;
        }
    return max_dev;
}

int trace_json_write(const char *path, const struct run_env *env, const struct point_result *r,
                     const struct trace *const *traces, int n)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return pb_fail("out of host memory building %s", path);
    cJSON *events = cJSON_AddArrayToObject(root, "traceEvents");
    int predicted, max_dev = devices_of(traces, n, &predicted);
    add_lanes(events, traces, n, 0, max_dev - 1);
    double base = 0;
    uint32_t correlation = 0;
    for (int i = 0; i < n; i++) {
        if (!traces[i]) continue;
        double span = add_point(events, traces[i], r[i].strategy, i, -1, base, &correlation);
        if (span > 0) base += span + POINT_GAP_US;
    }
    /* One process drives all GPUs here: trace.json is rank 0's; hta/ has one file per GPU. */
    return write_root(path, root, 0, max_dev, env, predicted, 0, r, traces, n);
}

int trace_hta_write(const char *dir, const struct run_env *env, const struct point_result *r,
                    const struct trace *const *traces, int n)
{
    char top[4200], folder[4400], path[4600], tag[160];
    PB_TRY(path_join(top, sizeof top, dir, "hta"));
    for (int i = 0; i < n; i++) {
        if (!traces[i] || traces[i]->n == 0) continue;
        int predicted, world = devices_of(&traces[i], 1, &predicted);
        point_tag(&r[i], tag, sizeof tag);
        snprintf(folder, sizeof folder, "%s/%02d-%s", top, i, tag);
        PB_TRY(make_dirs(folder));
        for (int d = 0; d < world; d++) {
            cJSON *root = cJSON_CreateObject();
            if (!root) return pb_fail("out of host memory building %s", folder);
            cJSON *events = cJSON_AddArrayToObject(root, "traceEvents");
            add_lanes(events, &traces[i], 1, d, d);
            uint32_t correlation = 0;
            add_point(events, traces[i], r[i].strategy, i, d, 0, &correlation);
            snprintf(path, sizeof path, "%s/rank-%d.json", folder, d);
            PB_TRY(write_root(path, root, d, world, env, predicted, 1, &r[i], &traces[i], 1));
        }
    }
    return PB_OK;
}
