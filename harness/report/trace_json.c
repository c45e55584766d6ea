/* trace.json in the Chrome trace event format (Perfetto, chrome://tracing),
 * laid out like the PyTorch profiler's trace so Holistic Trace Analysis can read
 * it: a process per GPU, a thread per stream, categories kernel / gpu_memcpy /
 * gpu_memset with args device, stream, correlation, host ranges as
 * user_annotation, and a top-level distributedInfo. */
#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "../run/run.h"
#include "../../base/atomic_file.h"

#define HOST_PID 1000   /* the host's process id in the trace, clear of GPU indices */

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

static cJSON *event(const struct record *r, uint64_t t0, const char *strategy, int point)
{
    cJSON *e = cJSON_CreateObject();
    int host = r->kind == REC_RANGE || r->device < 0;
    cJSON_AddStringToObject(e, "ph", "X");
    cJSON_AddStringToObject(e, "cat", category(r));
    cJSON_AddStringToObject(e, "name", r->name);
    cJSON_AddNumberToObject(e, "pid", host ? HOST_PID : r->device);
    cJSON_AddNumberToObject(e, "tid", host ? 0 : (r->stream < 0 ? 99 : r->stream));
    /* Microseconds, relative to the first record, as the profiler writes them. */
    cJSON_AddNumberToObject(e, "ts", (double)(r->start_ns - t0) / 1e3);
    cJSON_AddNumberToObject(e, "dur", (double)(r->end_ns - r->start_ns) / 1e3);
    cJSON *a = cJSON_AddObjectToObject(e, "args");
    if (!host) {
        cJSON_AddNumberToObject(a, "device", r->device);
        cJSON_AddNumberToObject(a, "stream", r->stream);
        cJSON_AddNumberToObject(a, "correlation", r->correlation);
    }
    if (r->kind == REC_MEMCPY || r->kind == REC_MEMSET) {
        cJSON_AddNumberToObject(a, "bytes", (double)r->bytes);
        double us = (double)(r->end_ns - r->start_ns) / 1e3;
        if (us > 0) cJSON_AddNumberToObject(a, "memory bandwidth (GB/s)", (double)r->bytes / us / 1e3);
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
    return e;
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

int trace_json_write(const char *path, const struct run_env *env, const struct point_result *r,
                     const struct trace *const *traces, int n)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return pb_fail("out of host memory building %s", path);
    cJSON *events = cJSON_AddArrayToObject(root, "traceEvents");
    uint64_t t0 = UINT64_MAX;
    int max_dev = 0, max_stream[PB_MAX_DEVICES] = {0}, predicted = 0;
    for (int i = 0; i < n; i++) {
        if (!traces[i]) continue;
        predicted |= traces[i]->predicted;
        for (int k = 0; k < traces[i]->n; k++) {
            const struct record *rec = &traces[i]->rec[k];
            if (rec->start_ns < t0) t0 = rec->start_ns;
            if (rec->device >= 0 && rec->device < PB_MAX_DEVICES) {
                if (rec->device + 1 > max_dev) max_dev = rec->device + 1;
                int st = rec->stream < 0 ? 99 : rec->stream;
                if (st + 1 > max_stream[rec->device]) max_stream[rec->device] = st + 1;
            }
        }
    }
    for (int d = 0; d < max_dev; d++) {
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
    for (int i = 0; i < n; i++) {
        if (!traces[i]) continue;
        for (int k = 0; k < traces[i]->n; k++) cJSON_AddItemToArray(events, event(&traces[i]->rec[k], t0, r[i].strategy, i));
    }
    /* HTA reads the rank and world size here; one process drives all GPUs, so it is rank 0. */
    cJSON *dist = cJSON_AddObjectToObject(root, "distributedInfo");
    cJSON_AddStringToObject(dist, "backend", "nccl");
    cJSON_AddNumberToObject(dist, "rank", 0);
    cJSON_AddNumberToObject(dist, "world_size", max_dev > 0 ? max_dev : 1);
    cJSON_AddStringToObject(root, "displayTimeUnit", "ms");
    cJSON *meta = cJSON_AddObjectToObject(root, "placebench");
    cJSON_AddStringToObject(meta, "command", env ? env->command : "");
    cJSON_AddBoolToObject(meta, "predicted", predicted);
    sampled_passes(meta, r, traces, n);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return pb_fail("out of host memory printing %s", path);
    int rc = atomic_write_text(path, text);
    free(text);
    return rc;
}
