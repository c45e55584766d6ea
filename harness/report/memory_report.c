/* See memory_report.h. */
#include "memory_report.h"
#include <inttypes.h>
#include <string.h>

#define GIB (1024.0 * 1024 * 1024)

int memory_fill_point(const struct model_spec *m, const struct machine *mc, struct point_result *r)
{
    struct memory_shape s = {.batch = r->w.batch, .seq = r->w.seq, .decode_tokens = r->decode_tokens};
    return memory_check_point(m, r->placement, r->w.dtype, &s, mc, r->strategy, &r->memory, &r->capacity);
}

/* Everything but weights and KV cache: what the largest step works in, and the buffers beside it. */
static uint64_t activation_bytes(const struct device_memory *g) { return g->activations + g->workspace + g->comm; }

enum column { COL_WEIGHTS, COL_KV, COL_ACTIVATION, COL_PEAK, COL_FREE, COL_MEASURED };

/* One device's figure of a column; 0 when unknown. */
static int column_value(const struct point_result *r, int d, enum column c, int64_t *v)
{
    const struct device_memory *g = &r->memory.gpu[d];
    switch (c) {
    case COL_WEIGHTS: *v = (int64_t)g->weights; return 1;
    case COL_KV: *v = (int64_t)g->kv; return 1;
    case COL_ACTIVATION: *v = (int64_t)activation_bytes(g); return 1;
    case COL_PEAK: *v = (int64_t)g->peak; return 1;
    case COL_FREE: *v = memory_free_bytes(g); return g->budget > 0;
    case COL_MEASURED: *v = (int64_t)r->measured_peak[d]; return r->memory_measured;
    }
    return 0;
}

/* "a;b;c" in bytes, integers; an unknown device's entry is empty. */
static void column_list(char *buf, size_t len, const struct point_result *r, enum column c)
{
    size_t used = 0;
    buf[0] = 0;
    int n = c == COL_MEASURED && !r->memory_measured ? 0 : r->memory.n_devices;
    for (int d = 0; d < n && used < len; d++) {
        int64_t v = 0;
        char one[32] = "";
        if (column_value(r, d, c, &v)) snprintf(one, sizeof one, "%" PRId64, v);
        used += (size_t)snprintf(buf + used, len - used, "%s%s", d ? ";" : "", one);
    }
}

int memory_csv_fields(const struct point_result *r, char (*b)[1024], int k)
{
    for (enum column c = COL_WEIGHTS; c <= COL_MEASURED; c++) column_list(b[k++], sizeof b[0], r, c);
    int known = r->memory.n_devices > 0;
    b[k][0] = 0;
    if (known) snprintf(b[k], sizeof b[0], "%d", r->capacity.max_context);
    k++;
    b[k][0] = 0;
    if (known) snprintf(b[k], sizeof b[0], "%d", r->capacity.max_batch);
    return k + 1;
}

static void add_column(cJSON *o, const char *key, const struct point_result *r, enum column c)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    int n = c == COL_MEASURED && !r->memory_measured ? 0 : r->memory.n_devices;
    for (int d = 0; d < n; d++) {
        int64_t v = 0;
        cJSON_AddItemToArray(a, column_value(r, d, c, &v) ? cJSON_CreateNumber((double)v) : cJSON_CreateNull());
    }
}

cJSON *memory_json(const struct point_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!r->memory.n_devices) return o;
    add_column(o, "weights_bytes_per_gpu", r, COL_WEIGHTS);
    add_column(o, "kv_bytes_per_gpu", r, COL_KV);
    add_column(o, "activation_bytes_per_gpu", r, COL_ACTIVATION);
    add_column(o, "peak_bytes_per_gpu", r, COL_PEAK);
    add_column(o, "free_bytes_per_gpu", r, COL_FREE);
    add_column(o, "measured_peak_bytes_per_gpu", r, COL_MEASURED);
    cJSON *gpus = cJSON_AddArrayToObject(o, "per_gpu");
    for (int d = 0; d < r->memory.n_devices; d++) {
        const struct device_memory *g = &r->memory.gpu[d];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "device", d);
        cJSON_AddNumberToObject(j, "layers", g->layers);
        cJSON_AddBoolToObject(j, "holds_lm_head", g->has_head);
        cJSON_AddNumberToObject(j, "weights_bytes", (double)g->weights);
        cJSON_AddNumberToObject(j, "kv_bytes", (double)g->kv);
        cJSON_AddNumberToObject(j, "activations_bytes", (double)g->activations);
        cJSON_AddNumberToObject(j, "workspace_bytes", (double)g->workspace);
        cJSON_AddNumberToObject(j, "comm_bytes", (double)g->comm);
        cJSON_AddNumberToObject(j, "peak_bytes", (double)g->peak);
        if (g->budget) cJSON_AddNumberToObject(j, "budget_bytes", (double)g->budget);
        else cJSON_AddNullToObject(j, "budget_bytes");
        cJSON_AddItemToArray(gpus, j);
    }
    cJSON_AddNumberToObject(o, "cpu_offload_bytes", (double)r->memory.host_weights);
    cJSON_AddNumberToObject(o, "fills_first", memory_fullest_device(&r->memory));
    cJSON_AddStringToObject(o, "not_modelled", "the CUDA context, cuBLAS and NCCL state, CUDA graphs, and the "
                                               "GEMM tuner's temporary buffers (freed before the run)");
    cJSON *cap = cJSON_AddObjectToObject(o, "kv_capacity");
    cJSON_AddNumberToObject(cap, "batch", r->w.batch);
    cJSON_AddNumberToObject(cap, "max_context", r->capacity.max_context);
    cJSON_AddNumberToObject(cap, "max_tokens", (double)r->capacity.max_tokens);
    cJSON_AddBoolToObject(cap, "capped_by_max_position_embeddings", r->capacity.context_capped);
    cJSON_AddNumberToObject(cap, "context", r->w.seq + r->decode_tokens);
    cJSON_AddNumberToObject(cap, "max_batch", r->capacity.max_batch);
    return o;
}

void memory_print(FILE *f, const struct point_result *r, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++) any |= r[i].memory.n_devices > 0;
    if (!any) return;
    fprintf(f, "\nmemory per GPU, GiB: weights + KV cache + activations/workspace = peak / budget; "
               "KV capacity\n");
    for (int i = 0; i < n; i++) {
        const struct point_result *p = &r[i];
        if (!p->memory.n_devices) continue;
        fprintf(f, "%-9s %5d x %-5d", p->strategy, p->w.batch, p->w.seq + p->decode_tokens);
        for (int d = 0; d < p->memory.n_devices; d++) {
            const struct device_memory *g = &p->memory.gpu[d];
            fprintf(f, "  %d: %.1f+%.1f+%.1f=%.1f", d, g->weights / GIB, g->kv / GIB, activation_bytes(g) / GIB,
                    g->peak / GIB);
            if (g->budget) fprintf(f, "/%.0f", g->budget / GIB);
            if (p->memory_measured) fprintf(f, " (measured %.1f)", p->measured_peak[d] / GIB);
        }
        fprintf(f, "  | context %d%s at batch %d, batch %d at context %d\n", p->capacity.max_context,
                p->capacity.context_capped ? " (max_position_embeddings)" : "", p->w.batch, p->capacity.max_batch,
                p->w.seq + p->decode_tokens);
    }
}

/* "naive fills GPU 1 first (...)" for one point. */
static size_t fills_first(const struct point_result *r, char *buf, size_t len)
{
    const struct memory_plan *mp = &r->memory;
    int d = memory_fullest_device(mp), most = 0, layers = 0;
    const struct device_memory *g = &mp->gpu[d];
    for (int k = 0; k < mp->n_devices; k++) {
        layers += mp->gpu[k].layers;
        if (k != d && mp->gpu[k].layers >= g->layers) most = 1;
    }
    /* the figures are the memory model's, also in a measured run, where the GPU's own follows */
    int n = snprintf(buf, len, "%s fills GPU %d first (predicted %.2f GiB", r->strategy, d, g->peak / GIB);
    if (g->budget) n += snprintf(buf + n, len - (size_t)n, " of %.2f GiB", g->budget / GIB);
    if (r->memory_measured) n += snprintf(buf + n, len - (size_t)n, ", measured %.2f GiB", r->measured_peak[d] / GIB);
    n += snprintf(buf + n, len - (size_t)n, ": %.2f GiB weights, %.2f GiB KV cache, %.2f GiB activations and "
                                            "workspace), as it holds ", g->weights / GIB, g->kv / GIB,
                  activation_bytes(g) / GIB);
    if (mp->n_devices == 1) n += snprintf(buf + n, len - (size_t)n, "the whole model");
    else if (!most && g->layers) n += snprintf(buf + n, len - (size_t)n, "the most layers (%d of %d, so the most KV "
                                                                        "cache)", g->layers, layers);
    else n += snprintf(buf + n, len - (size_t)n, "%d of %d layers", g->layers, layers);
    if (g->has_head && mp->n_devices > 1)
        n += snprintf(buf + n, len - (size_t)n, " and lm_head with its batch x seq x vocabulary logits");
    if (r->capacity.max_context > 0)
        n += snprintf(buf + n, len - (size_t)n, "; at batch %d it holds contexts up to %d positions, and up to "
                                                "%d sequences at this context", r->w.batch, r->capacity.max_context,
                      r->capacity.max_batch);
    else n += snprintf(buf + n, len - (size_t)n, "; it does not hold this batch's prompt at all");
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

void memory_sentence(const struct point_result *naive, const struct point_result *autop, char *buf, size_t len)
{
    if (!len) return;
    buf[0] = 0;
    const struct point_result *pts[2] = {naive, autop};
    size_t used = 0;
    for (int i = 0; i < 2 && used + 2 < len; i++) {
        if (!pts[i] || !pts[i]->memory.n_devices) continue;
        used += (size_t)snprintf(buf + used, len - used, "%s", used ? "; " : "Memory at this workload: ");
        if (used < len) used += fills_first(pts[i], buf + used, len - used);
    }
    int both = naive && autop && naive->memory.n_devices && autop->memory.n_devices;
    const struct kv_capacity *a = both ? &naive->capacity : NULL, *b = both ? &autop->capacity : NULL;
    if (both && used + 2 < len && (a->max_context != b->max_context || a->max_batch != b->max_batch)) {
        /* the context first: that is what generation grows; the batch where both reach the same context */
        int by_context = a->max_context != b->max_context;
        int naive_less = by_context ? a->max_context < b->max_context : a->max_batch < b->max_batch;
        const struct point_result *less = naive_less ? naive : autop, *more = naive_less ? autop : naive;
        used += (size_t)snprintf(buf + used, len - used, "; so %s runs out of memory first (%d %s against %s's %d)",
                                 less->strategy, by_context ? less->capacity.max_context : less->capacity.max_batch,
                                 by_context ? "positions" : "sequences", more->strategy,
                                 by_context ? more->capacity.max_context : more->capacity.max_batch);
    }
    if (used && used + 2 < len) snprintf(buf + used, len - used, ".");
}
