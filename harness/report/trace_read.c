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

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* One device event as a record; 0 if the event is not device activity. */
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
    r->device = (int)num(args, "device", num(e, "pid", 0));
    r->stream = (int)num(e, "tid", 0);
    double ts = num(e, "ts", NAN), dur = num(e, "dur", 0);
    if (isnan(ts) || ts < 0 || dur < 0) return 0;
    /* Nanoseconds from microseconds, rounded: the writer divided by 1e3. */
    r->start_ns = (uint64_t)llround(ts * 1e3);
    r->end_ns = (uint64_t)llround((ts + dur) * 1e3);
    r->iteration = (int)num(args, "iteration", 0);
    r->bytes = (uint64_t)num(args, "bytes", 0);
    r->src_device = (int)num(args, "src_device", -1);
    r->dst_device = (int)num(args, "dst_device", -1);
    r->copy = r->src_device >= 0 && r->src_device != r->dst_device ? COPY_PTOP : COPY_NONE;
    r->microbatch = (int)num(args, "microbatch", -1);
    r->step = (int)num(args, "step", -1);
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
    char *text = text_file_read(path);
    if (!text) return pb_fail("cannot read %s: %s", path, strerror(errno));
    cJSON *root = cJSON_Parse(text);
    free(text);
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
        if (!to_record(e, &r)) continue;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(args, "strategy");
        const char *strategy = cJSON_IsString(s) ? s->valuestring : "?";
        int point = (int)num(args, "point", -1);
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
