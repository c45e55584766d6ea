/* Reader for the Chrome-trace events trace_json.c writes (pid = GPU, tid = stream,
 * ts/dur in microseconds, args.iteration and args.strategy). */
#include "trace_read.h"
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/check.h"
#include "../../base/text_file.h"
#include "../../base/json_load.h"
#include "../../base/parse_number.h"
#include "../../strategies/strategy.h"

/* A number field, or dflt when absent; *bad is set (with a message) when it is
 * present but outside [lo, hi], so no cast below meets a value it cannot hold. */
static double num(const cJSON *o, const char *key, double dflt, double lo, double hi, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return dflt;
    char what[64];
    snprintf(what, sizeof what, "trace event: %s", key);
    if (number_in_range(what, v->valuedouble, lo, hi) != PB_OK) {
        *bad = 1;
        return dflt;
    }
    return v->valuedouble;
}

#define TRACE_MAX_US 1e15      /* 30 years in microseconds */
#define TRACE_MAX_COUNT 1e9    /* iterations, steps, streams, microbatches */

/* One device event as a record: 1, 0 if the event is not device activity, -1
 * (with a message) if a field is out of range. */
static int to_record(const cJSON *e, struct record *r)
{
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
    const cJSON *cat = cJSON_GetObjectItemCaseSensitive(e, "cat");
    if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") || !cJSON_IsString(cat)) return 0;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
    if (!cJSON_GetObjectItemCaseSensitive(args, "device")) return 0;   /* host range */
    memset(r, 0, sizeof *r);
    if (!strcmp(cat->valuestring, "kernel")) r->kind = REC_KERNEL;
    else if (!strcmp(cat->valuestring, "gpu_memcpy")) r->kind = REC_MEMCPY;
    else if (!strcmp(cat->valuestring, "gpu_memset")) r->kind = REC_MEMSET;
    else return 0;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
    if (r->kind == REC_KERNEL && cJSON_IsString(name) && strstr(name->valuestring, "nccl")) r->kind = REC_COMM;
    /* Our step label (args.label) over the CUPTI/NCCL name the event shows. */
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(args, "label");
    if (!cJSON_IsString(label)) label = name;
    snprintf(r->name, sizeof r->name, "%s", cJSON_IsString(label) ? label->valuestring : "");
    int bad = 0;
    const double last_device = PB_MAX_DEVICES - 1;
    r->device = (int)num(args, "device", num(e, "pid", 0, 0, last_device, &bad), 0, last_device, &bad);
    r->stream = (int)num(e, "tid", 0, 0, TRACE_MAX_COUNT, &bad);
    double ts = num(e, "ts", NAN, 0, TRACE_MAX_US, &bad), dur = num(e, "dur", 0, 0, TRACE_MAX_US, &bad);
    r->iteration = (int)num(args, "iteration", 0, -1, TRACE_MAX_COUNT, &bad);
    r->bytes = (uint64_t)num(args, "bytes", 0, 0, 9007199254740992.0, &bad);
    r->src_device = (int)num(args, "src_device", -1, -1, last_device, &bad);
    r->dst_device = (int)num(args, "dst_device", -1, -1, last_device, &bad);
    r->microbatch = (int)num(args, "microbatch", -1, -1, TRACE_MAX_COUNT, &bad);
    r->step = (int)num(args, "step", -1, -1, TRACE_MAX_COUNT, &bad);
    if (bad) return -1;
    if (isnan(ts)) return 0;
    /* Nanoseconds from microseconds, rounded: the writer divided by 1e3. */
    r->start_ns = (uint64_t)llround(ts * 1e3);
    r->end_ns = (uint64_t)llround((ts + dur) * 1e3);
    r->copy = r->src_device >= 0 && r->src_device != r->dst_device ? COPY_PTOP : COPY_NONE;
    r->has_step = r->step >= 0;
    return 1;
}

static int start_point(struct trace_point **pts, int *n, int *cap, const char *strategy)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        struct trace_point *g = realloc(*pts, (size_t)*cap * sizeof *g);
        if (!g) return pb_fail("out of host memory reading trace.json");
        *pts = g;
    }
    struct trace_point *p = &(*pts)[(*n)++];
    snprintf(p->strategy, sizeof p->strategy, "%s", strategy);
    trace_init(&p->t, 0);
    return PB_OK;
}

int trace_json_read(const char *path, struct trace_point **pts, int *n, int *predicted)
{
    *pts = NULL;
    *n = 0;
    *predicted = 0;
    cJSON *root;
    PB_TRY(json_load_file(path, &root));
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    if (!cJSON_IsArray(events)) {
        cJSON_Delete(root);
        return pb_fail("%s is not a trace.json written by bench (no traceEvents array)", path);
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "placebench");
    *predicted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "predicted"));
    int cap = 0, last_iter = -1, last_point = -1, rc = PB_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        struct record r;
        int kind = to_record(e, &r), bad = 0;
        if (kind < 0) {
            rc = pb_fail("%s: an event's field is out of range (above)", path);
            break;
        }
        if (!kind) continue;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(args, "strategy");
        const char *strategy = cJSON_IsString(s) ? s->valuestring : "?";
        int point = (int)num(args, "point", -1, -1, TRACE_MAX_COUNT, &bad);
        if (bad) {
            rc = pb_fail("%s: an event's args.point is out of range", path);
            break;
        }
        int fresh = *n == 0 || strcmp((*pts)[*n - 1].strategy, strategy) ||
                    (point >= 0 ? point != last_point : r.iteration < last_iter);
        if (fresh && (rc = start_point(pts, n, &cap, strategy)) != PB_OK) break;
        last_iter = r.iteration;
        last_point = point;
        struct trace *t = &(*pts)[*n - 1].t;
        t->predicted = *predicted;
        if (r.device + 1 > t->n_devices) t->n_devices = r.device + 1;
        if ((rc = trace_add(t, &r)) != PB_OK) break;
    }
    cJSON_Delete(root);
    if (rc != PB_OK) {
        trace_points_free(*pts, *n);
        *pts = NULL;
        *n = 0;
    }
    return rc;
}

void trace_points_free(struct trace_point *pts, int n)
{
    for (int i = 0; i < n; i++) trace_free(&pts[i].t);
    free(pts);
}
