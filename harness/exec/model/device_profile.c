/* Device profiles: parse, validate and write profile JSON (profile_find.c finds
 * profiles/<name>.json, profile_lookup.c reads values off the tables).
 * Every problem is reported as "<file>: <field>: <problem>" so a user can fix the
 * file without reading this code. */
#include "device_profile.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../base/check.h"
#include "../../../base/atomic_file.h"
#include "../../../base/json_load.h"
#include "../../../base/parse_number.h"

/* What a field may hold: a rate too small or too large to be a GPU's is a typo
 * (1e-300 TFLOP/s would give every point an infinite latency). */
#define TFLOPS 1e-3, 1e5
#define GBPS 1e-3, 1e6
#define MICROSECONDS 0, 1e6
#define FRACTION 0, 1.2

static const char *const link_names[LINK_KINDS] = {"nvlink", "pcie"};

const char *link_kind_name(enum link_kind k)
{
    return (k >= 0 && k < LINK_KINDS) ? link_names[k] : "?";
}

/* ---- reading ---------------------------------------------------------------- */

/* A required number field inside `obj` (whose dotted name is `where`). */
static int get_number(const cJSON *obj, const char *where, const char *key, const char *origin,
                      double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return pb_fail("%s: %s.%s: missing", origin, where, key);
    if (!cJSON_IsNumber(v)) return pb_fail("%s: %s.%s: must be a number", origin, where, key);
    char what[256];
    snprintf(what, sizeof what, "%s: %s.%s", origin, where, key);
    PB_TRY(number_in_range(what, v->valuedouble, lo, hi));
    *out = v->valuedouble;
    return PB_OK;
}

/* A required string; `where` may be "" for a top-level key. */
static int get_string(const cJSON *obj, const char *where, const char *key, const char *origin,
                      char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *dot = where[0] ? "." : "";
    if (!v) return pb_fail("%s: %s%s%s: missing", origin, where, dot, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return pb_fail("%s: %s%s%s: must be a non-empty string", origin, where, dot, key);
    snprintf(out, outlen, "%s", v->valuestring);
    return PB_OK;
}

static int get_object(const cJSON *obj, const char *key, const char *origin, const cJSON **out)
{
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*out) return pb_fail("%s: %s: missing", origin, key);
    if (!cJSON_IsObject(*out)) return pb_fail("%s: %s: must be an object", origin, key);
    return PB_OK;
}

/* A link object; "present": false marks a link the GPU does not have. */
static int parse_link(const cJSON *links, enum link_kind k, const char *origin,
                      struct link_profile *out)
{
    char where[32];
    snprintf(where, sizeof where, "links.%s", link_names[k]);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(links, link_names[k]);
    if (!o) return pb_fail("%s: %s: missing (write {\"present\": false, \"source\": ...} if the GPU "
                           "has none)", origin, where);
    if (!cJSON_IsObject(o)) return pb_fail("%s: %s: must be an object", origin, where);
    const cJSON *present = cJSON_GetObjectItemCaseSensitive(o, "present");
    if (present && !cJSON_IsBool(present))
        return pb_fail("%s: %s.present: must be true or false", origin, where);
    out->present = present ? cJSON_IsTrue(present) : 1;
    PB_TRY(get_string(o, where, "source", origin, out->source, sizeof out->source));
    if (!out->present) return PB_OK;
    PB_TRY(get_number(o, where, "gbps", origin, GBPS, &out->gbps));
    out->peer_gbps = out->gbps;
    if (cJSON_GetObjectItemCaseSensitive(o, "peer_gbps"))
        PB_TRY(get_number(o, where, "peer_gbps", origin, GBPS, &out->peer_gbps));
    PB_TRY(get_number(o, where, "peak_gbps", origin, GBPS, &out->peak_gbps));
    PB_TRY(get_number(o, where, "latency_us", origin, MICROSECONDS, &out->latency_us));
    return PB_OK;
}

/* The name of point n of the array `where` ("kernels.gemm[3]"), or a failure where a
 * table of at most `max` points has no room for it. */
static int point_name(const char *where, int n, int max, const char *origin, char *at, size_t at_len)
{
    if (n == max) return pb_fail("%s: %s: at most %d points", origin, where, max);
    snprintf(at, at_len, "%s[%d]", where, n);
    return PB_OK;
}

/* A point's "memory" and its optional "compute" (1: only bandwidth was measured). */
static int get_efficiencies(const cJSON *e, const char *at, const char *origin, double *compute, double *memory)
{
    PB_TRY(get_number(e, at, "memory", origin, FRACTION, memory));
    *compute = 1;
    if (cJSON_GetObjectItemCaseSensitive(e, "compute"))
        PB_TRY(get_number(e, at, "compute", origin, FRACTION, compute));
    return PB_OK;
}

/* One efficiency table: [{"rows": M, "compute": c, "memory": m}, ...], rows rising;
 * "compute" may be left out (1: only bandwidth was measured, as for the GEMV). */
static int parse_table(const cJSON *arr, const char *where, const char *origin,
                       struct efficiency_point *out, int *n)
{
    if (!cJSON_IsArray(arr)) return pb_fail("%s: %s: must be an array of {rows, compute, memory}", origin, where);
    *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        char at[64];
        PB_TRY(point_name(where, *n, PB_EFFICIENCY_POINTS, origin, at, sizeof at));
        struct efficiency_point *pt = &out[*n];
        double rows;
        PB_TRY(get_number(e, at, "rows", origin, 1, 1e9, &rows));
        PB_TRY(get_efficiencies(e, at, origin, &pt->compute, &pt->memory));
        if (rows < 1 || rows > 1e9) return pb_fail("%s: %s.rows: must be at least 1", origin, at);
        pt->rows = (int)rows;
        if (*n > 0 && pt->rows <= out[*n - 1].rows)
            return pb_fail("%s: %s.rows: must rise from point to point", origin, at);
        (*n)++;
    }
    if (*n == 0) return pb_fail("%s: %s: needs at least one point", origin, where);
    return PB_OK;
}

/* (tune_rows, rows) of point b after point a, and a call below its tuning. */
static int tuned_order_ok(int a_rows, int a_tune, int b_rows, int b_tune)
{
    return b_tune > a_tune || (b_tune == a_tune && b_rows > a_rows);
}

/* The optional tuned-above table: [{"rows": M, "tune_rows": T, "compute": c, "memory": m}, ...],
 * M < T, rising by (T, M); "compute" may be left out (1). */
static int parse_tuned_table(const cJSON *arr, const char *where, const char *origin,
                             struct tuned_efficiency_point *out, int *n)
{
    *n = 0;
    if (!arr) return PB_OK;
    if (!cJSON_IsArray(arr))
        return pb_fail("%s: %s: must be an array of {rows, tune_rows, compute, memory}", origin, where);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        char at[64];
        PB_TRY(point_name(where, *n, PB_EFFICIENCY_POINTS, origin, at, sizeof at));
        struct tuned_efficiency_point *pt = &out[*n];
        double rows, tune;
        PB_TRY(get_number(e, at, "rows", origin, 1, 1e9, &rows));
        PB_TRY(get_number(e, at, "tune_rows", origin, 1, 1e9, &tune));
        PB_TRY(get_efficiencies(e, at, origin, &pt->compute, &pt->memory));
        pt->rows = (int)rows;
        pt->tune_rows = (int)tune;
        if (pt->tune_rows <= pt->rows)
            return pb_fail("%s: %s.tune_rows: %d must be above rows %d (a call at its part's own tuning is "
                           "the gemm table's)", origin, at, pt->tune_rows, pt->rows);
        if (*n > 0 && !tuned_order_ok(out[*n - 1].rows, out[*n - 1].tune_rows, pt->rows, pt->tune_rows))
            return pb_fail("%s: %s: points must rise by tune_rows, then rows", origin, at);
        (*n)++;
    }
    return PB_OK;
}

static int parse_kernels(const cJSON *root, const char *origin, struct kernel_profile *k)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "kernels");
    k->present = o != NULL;
    if (!o) return PB_OK;
    if (!cJSON_IsObject(o)) return pb_fail("%s: kernels: must be an object", origin);
    PB_TRY(parse_table(cJSON_GetObjectItemCaseSensitive(o, "gemm"), "kernels.gemm", origin, k->gemm, &k->n_gemm));
    PB_TRY(parse_table(cJSON_GetObjectItemCaseSensitive(o, "gemv"), "kernels.gemv", origin, k->gemv, &k->n_gemv));
    PB_TRY(parse_tuned_table(cJSON_GetObjectItemCaseSensitive(o, "gemm_tuned_above"), "kernels.gemm_tuned_above",
                             origin, k->gemm_tuned_above, &k->n_gemm_tuned_above));
    PB_TRY(get_number(o, "kernels", "attention_tflops", origin, TFLOPS, &k->attention_tflops));
    PB_TRY(get_number(o, "kernels", "memory_efficiency", origin, FRACTION, &k->memory_efficiency));
    return get_string(o, "kernels", "source", origin, k->source, sizeof k->source);
}

/* ---- the flat optional sections: an object of numbers and a "source" ------------ */

/* One number of such a section: its JSON key (the struct field's name), its range, and
 * where the profile struct keeps it, a double or a uint64_t byte count. */
struct section_number {
    const char *key;
    double lo, hi;
    size_t offset;
    int is_bytes;
};

#define SECTION_DOUBLE(type, field, range) {#field, range, offsetof(type, field), 0}
#define SECTION_BYTES(type, field) {#field, 0, 1e15, offsetof(type, field), 1}

/* One table per section serves parsing and writing, so a key cannot be read under one
 * name and written under another. */
struct flat_section {
    const char *key;
    const struct section_number *number;
    int n_numbers;
};

static const struct section_number peer_allreduce_numbers[] = {
    SECTION_DOUBLE(struct peer_allreduce_profile, read_gbps, GBPS),
    SECTION_DOUBLE(struct peer_allreduce_profile, latency_us, MICROSECONDS),
    SECTION_BYTES(struct peer_allreduce_profile, oneshot_max_bytes),
    SECTION_BYTES(struct peer_allreduce_profile, twoshot_max_bytes),
};
static const struct flat_section peer_allreduce_section = {
    "peer_allreduce", peer_allreduce_numbers, sizeof peer_allreduce_numbers / sizeof peer_allreduce_numbers[0]};

static const struct section_number shared_gpu_numbers[] = {
    SECTION_DOUBLE(struct shared_gpu_profile, oneshot_us, MICROSECONDS),
    SECTION_DOUBLE(struct shared_gpu_profile, twoshot_us, MICROSECONDS),
    SECTION_DOUBLE(struct shared_gpu_profile, gbps, GBPS),
};
static const struct flat_section shared_gpu_section = {
    "shared_gpu", shared_gpu_numbers, sizeof shared_gpu_numbers / sizeof shared_gpu_numbers[0]};

/* An absent section leaves *present 0; `out` is the section's struct. */
static int parse_flat_section(const cJSON *root, const struct flat_section *s, const char *origin, void *out,
                              int *present, char *source, size_t source_len)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, s->key);
    *present = o != NULL;
    if (!o) return PB_OK;
    if (!cJSON_IsObject(o)) return pb_fail("%s: %s: must be an object", origin, s->key);
    for (int i = 0; i < s->n_numbers; i++) {
        const struct section_number *f = &s->number[i];
        double v;
        PB_TRY(get_number(o, s->key, f->key, origin, f->lo, f->hi, &v));
        char *at = (char *)out + f->offset;
        if (f->is_bytes)
            *(uint64_t *)at = (uint64_t)v;
        else
            *(double *)at = v;
    }
    return get_string(o, s->key, "source", origin, source, source_len);
}

static void flat_section_to_json(cJSON *root, const struct flat_section *s, const void *in, int present,
                                 const char *source)
{
    if (!present) return;
    cJSON *o = cJSON_AddObjectToObject(root, s->key);
    for (int i = 0; i < s->n_numbers; i++) {
        const struct section_number *f = &s->number[i];
        const char *at = (const char *)in + f->offset;
        cJSON_AddNumberToObject(o, f->key, f->is_bytes ? (double)*(const uint64_t *)at : *(const double *)at);
    }
    cJSON_AddStringToObject(o, "source", source);
}

static int validate_peer_allreduce(const struct peer_allreduce_profile *a, const char *origin)
{
    if (!a->present) return PB_OK;
    if (!(a->read_gbps > 0)) return pb_fail("%s: peer_allreduce.read_gbps: must be positive", origin);
    if (!(a->latency_us >= 0)) return pb_fail("%s: peer_allreduce.latency_us: must be >= 0", origin);
    if (a->twoshot_max_bytes < a->oneshot_max_bytes)
        return pb_fail("%s: peer_allreduce.twoshot_max_bytes: %llu is below oneshot_max_bytes %llu (two-shot "
                       "takes over from one-shot)", origin, (unsigned long long)a->twoshot_max_bytes,
                       (unsigned long long)a->oneshot_max_bytes);
    return PB_OK;
}

static int validate_shared_gpu(const struct shared_gpu_profile *a, const char *origin)
{
    if (!a->present) return PB_OK;
    if (!(a->gbps > 0)) return pb_fail("%s: shared_gpu.gbps: must be positive", origin);
    if (!(a->oneshot_us >= 0) || !(a->twoshot_us >= 0))
        return pb_fail("%s: shared_gpu.oneshot_us, twoshot_us: must be >= 0", origin);
    return PB_OK;
}

static int parse_slowdowns(const cJSON *o, const char *key, const char *origin, struct shared_slowdown_table *t)
{
    t->n = 0;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    if (!arr) return PB_OK;
    char where[48];
    snprintf(where, sizeof where, "shared_gpu_compute.%s", key);
    if (!cJSON_IsArray(arr)) return pb_fail("%s: %s: must be an array of {rows, slowdown}", origin, where);
    cJSON_ArrayForEach(e, arr) {
        char at[64];
        PB_TRY(point_name(where, t->n, PB_SHARED_POINTS, origin, at, sizeof at));
        double rows;
        PB_TRY(get_number(e, at, "rows", origin, 1, 1e9, &rows));
        PB_TRY(get_number(e, at, "slowdown", origin, 0.5, 4, &t->point[t->n].slowdown));
        t->point[t->n].rows = (int)rows;
        if (t->n > 0 && t->point[t->n].rows <= t->point[t->n - 1].rows)
            return pb_fail("%s: %s.rows: must rise from point to point", origin, at);
        t->n++;
    }
    return PB_OK;
}

/* "tuned_above_points": [{rows, tune_rows, slowdown}], rows < tune_rows, rising by (tune_rows, rows). */
static int parse_tuned_slowdowns(const cJSON *o, const char *origin, struct shared_tuned_table *t)
{
    const char *key = "tuned_above_points";
    t->n = 0;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    if (!arr) return PB_OK;
    char where[48];
    snprintf(where, sizeof where, "shared_gpu_compute.%s", key);
    if (!cJSON_IsArray(arr))
        return pb_fail("%s: %s: must be an array of {rows, tune_rows, slowdown}", origin, where);
    cJSON_ArrayForEach(e, arr) {
        char at[64];
        PB_TRY(point_name(where, t->n, PB_SHARED_POINTS, origin, at, sizeof at));
        double rows, tune;
        PB_TRY(get_number(e, at, "rows", origin, 1, 1e9, &rows));
        PB_TRY(get_number(e, at, "tune_rows", origin, 1, 1e9, &tune));
        PB_TRY(get_number(e, at, "slowdown", origin, 0.5, 4, &t->point[t->n].slowdown));
        t->point[t->n].rows = (int)rows;
        t->point[t->n].tune_rows = (int)tune;
        if (t->point[t->n].tune_rows <= t->point[t->n].rows)
            return pb_fail("%s: %s.tune_rows: must be above rows", origin, at);
        if (t->n > 0 && !tuned_order_ok(t->point[t->n - 1].rows, t->point[t->n - 1].tune_rows, t->point[t->n].rows,
                                        t->point[t->n].tune_rows))
            return pb_fail("%s: %s: points must rise by tune_rows, then rows", origin, at);
        t->n++;
    }
    return PB_OK;
}

static int parse_shared_compute(const cJSON *root, const char *origin, struct shared_compute_profile *c)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "shared_gpu_compute");
    c->layers.n = c->tp.n = c->tuned_above.n = 0;
    if (!o) return PB_OK;
    if (!cJSON_IsObject(o)) return pb_fail("%s: shared_gpu_compute: must be an object", origin);
    PB_TRY(parse_slowdowns(o, "points", origin, &c->layers));
    PB_TRY(parse_slowdowns(o, "tp_points", origin, &c->tp));
    PB_TRY(parse_tuned_slowdowns(o, origin, &c->tuned_above));
    if (c->layers.n == 0 && c->tp.n == 0 && c->tuned_above.n == 0)
        return pb_fail("%s: shared_gpu_compute: needs points, tp_points or tuned_above_points", origin);
    return get_string(o, "shared_gpu_compute", "source", origin, c->source, sizeof c->source);
}

static void slowdowns_to_json(cJSON *o, const char *key, const struct shared_slowdown_table *t)
{
    if (t->n <= 0) return;
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < t->n; i++) {
        cJSON *pt = cJSON_CreateObject();
        cJSON_AddNumberToObject(pt, "rows", t->point[i].rows);
        cJSON_AddNumberToObject(pt, "slowdown", t->point[i].slowdown);
        cJSON_AddItemToArray(arr, pt);
    }
}

static void shared_compute_to_json(cJSON *root, const struct shared_compute_profile *c)
{
    if (c->layers.n <= 0 && c->tp.n <= 0 && c->tuned_above.n <= 0) return;
    cJSON *o = cJSON_AddObjectToObject(root, "shared_gpu_compute");
    slowdowns_to_json(o, "points", &c->layers);
    slowdowns_to_json(o, "tp_points", &c->tp);
    if (c->tuned_above.n > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, "tuned_above_points");
        for (int i = 0; i < c->tuned_above.n; i++) {
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "rows", c->tuned_above.point[i].rows);
            cJSON_AddNumberToObject(pt, "tune_rows", c->tuned_above.point[i].tune_rows);
            cJSON_AddNumberToObject(pt, "slowdown", c->tuned_above.point[i].slowdown);
            cJSON_AddItemToArray(arr, pt);
        }
    }
    cJSON_AddStringToObject(o, "source", c->source);
}

struct allreduce_table device_profile_allreduce_table(const struct device_profile *p)
{
    const struct peer_allreduce_profile *a = &p->peer_allreduce;
    struct allreduce_table t = {.known = a->present, .oneshot_max_bytes = a->oneshot_max_bytes,
                                .twoshot_max_bytes = a->twoshot_max_bytes};
    return t;
}

static int parse_fields(const cJSON *root, const char *origin, struct device_profile *p)
{
    const cJSON *o;
    double v;
    PB_TRY(get_string(root, "", "name", origin, p->name, sizeof p->name));
    PB_TRY(get_string(root, "", "gpu", origin, p->gpu, sizeof p->gpu));
    const cJSON *measured = cJSON_GetObjectItemCaseSensitive(root, "measured");
    if (measured && !cJSON_IsBool(measured))
        return pb_fail("%s: measured: must be true or false", origin);
    p->measured = measured && cJSON_IsTrue(measured);

    PB_TRY(get_object(root, "memory", origin, &o));
    PB_TRY(get_number(o, "memory", "bytes", origin, 1, 1e15, &v));
    if (v <= 0 || v > 1e15) return pb_fail("%s: memory.bytes: must be positive (got %g)", origin, v);
    p->memory_bytes = (uint64_t)v;
    PB_TRY(get_string(o, "memory", "source", origin, p->memory_source, sizeof p->memory_source));

    PB_TRY(get_object(root, "bf16_gemm_tflops", origin, &o));
    PB_TRY(get_number(o, "bf16_gemm_tflops", "achievable", origin, TFLOPS, &p->bf16_tflops));
    PB_TRY(get_number(o, "bf16_gemm_tflops", "peak", origin, TFLOPS, &p->bf16_peak_tflops));
    PB_TRY(get_string(o, "bf16_gemm_tflops", "source", origin, p->gemm_source, sizeof p->gemm_source));

    PB_TRY(get_object(root, "memory_bandwidth_gbps", origin, &o));
    PB_TRY(get_number(o, "memory_bandwidth_gbps", "achievable", origin, GBPS, &p->hbm_gbps));
    PB_TRY(get_number(o, "memory_bandwidth_gbps", "peak", origin, GBPS, &p->hbm_peak_gbps));
    PB_TRY(get_string(o, "memory_bandwidth_gbps", "source", origin, p->hbm_source,
                      sizeof p->hbm_source));

    PB_TRY(get_object(root, "launch_overhead_us", origin, &o));
    PB_TRY(get_number(o, "launch_overhead_us", "value", origin, MICROSECONDS, &p->launch_us));
    PB_TRY(get_string(o, "launch_overhead_us", "source", origin, p->launch_source,
                      sizeof p->launch_source));

    char peer[16];
    PB_TRY(get_string(root, "", "peer_link", origin, peer, sizeof peer));
    int found = -1;
    for (int k = 0; k < LINK_KINDS; k++)
        if (!strcmp(peer, link_names[k])) found = k;
    if (found < 0) return pb_fail("%s: peer_link: \"%s\" is not one of nvlink, pcie", origin, peer);
    p->peer_link = (enum link_kind)found;

    PB_TRY(get_object(root, "links", origin, &o));
    for (int k = 0; k < LINK_KINDS; k++) PB_TRY(parse_link(o, (enum link_kind)k, origin, &p->link[k]));

    PB_TRY(get_object(root, "allreduce", origin, &o));
    char algo[16];
    PB_TRY(get_string(o, "allreduce", "algorithm", origin, algo, sizeof algo));
    if (strcmp(algo, "ring")) return pb_fail("%s: allreduce.algorithm: \"%s\" is not supported "
                                             "(only \"ring\")", origin, algo);
    PB_TRY(get_number(o, "allreduce", "bus_gbps", origin, GBPS, &p->allreduce.bus_gbps));
    PB_TRY(get_number(o, "allreduce", "step_latency_us", origin, MICROSECONDS, &p->allreduce.step_latency_us));
    PB_TRY(get_string(o, "allreduce", "source", origin, p->allreduce.source,
                      sizeof p->allreduce.source));
    struct peer_allreduce_profile *pa = &p->peer_allreduce;
    PB_TRY(parse_flat_section(root, &peer_allreduce_section, origin, pa, &pa->present, pa->source, sizeof pa->source));
    struct shared_gpu_profile *sg = &p->shared_gpu;
    PB_TRY(parse_flat_section(root, &shared_gpu_section, origin, sg, &sg->present, sg->source, sizeof sg->source));
    PB_TRY(parse_shared_compute(root, origin, &p->shared_compute));
    return parse_kernels(root, origin, &p->kernels);
}

/* An efficiency is a fraction of a measured ceiling: above 1 means the ceiling or
 * the table is wrong (a kernel cannot beat the large GEMM or the copy by much). */
static int validate_table(const struct efficiency_point *t, int n, const char *where, const char *origin)
{
    for (int i = 0; i < n; i++) {
        if (!(t[i].compute > 0 && t[i].compute <= 1.2) || !(t[i].memory > 0 && t[i].memory <= 1.2))
            return pb_fail("%s: %s[%d]: compute and memory must be fractions in (0, 1.2]", origin, where, i);
        if (i > 0 && t[i].rows <= t[i - 1].rows)
            return pb_fail("%s: %s[%d].rows: must rise from point to point", origin, where, i);
    }
    return n > 0 ? PB_OK : pb_fail("%s: %s: needs at least one point", origin, where);
}

static int validate_kernels(const struct kernel_profile *k, const char *origin)
{
    if (!k->present) return PB_OK;
    PB_TRY(validate_table(k->gemm, k->n_gemm, "kernels.gemm", origin));
    PB_TRY(validate_table(k->gemv, k->n_gemv, "kernels.gemv", origin));
    for (int i = 0; i < k->n_gemm_tuned_above; i++) {
        const struct tuned_efficiency_point *t = &k->gemm_tuned_above[i];
        if (!(t->compute > 0 && t->compute <= 1.2) || !(t->memory > 0 && t->memory <= 1.2))
            return pb_fail("%s: kernels.gemm_tuned_above[%d]: compute and memory must be fractions in (0, 1.2]",
                           origin, i);
        if (t->tune_rows <= t->rows || (i > 0 && !tuned_order_ok(k->gemm_tuned_above[i - 1].rows,
                                                                 k->gemm_tuned_above[i - 1].tune_rows, t->rows,
                                                                 t->tune_rows)))
            return pb_fail("%s: kernels.gemm_tuned_above[%d]: rows below tune_rows, points rising by tune_rows "
                           "then rows", origin, i);
    }
    if (!(k->attention_tflops > 0)) return pb_fail("%s: kernels.attention_tflops: must be positive", origin);
    if (!(k->memory_efficiency > 0 && k->memory_efficiency <= 1.2))
        return pb_fail("%s: kernels.memory_efficiency: must be a fraction in (0, 1.2]", origin);
    return PB_OK;
}

int device_profile_validate(const struct device_profile *p, const char *origin)
{
    /* Rates must be positive and achievable can't beat the datasheet; a typo such as
     * GB/s written as TB/s would otherwise silently skew every prediction. */
    struct { const char *field; double achievable, peak; } pairs[] = {
        {"bf16_gemm_tflops", p->bf16_tflops, p->bf16_peak_tflops},
        {"memory_bandwidth_gbps", p->hbm_gbps, p->hbm_peak_gbps},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (!(pairs[i].achievable > 0)) return pb_fail("%s: %s.achievable: must be positive", origin, pairs[i].field);
        if (!(pairs[i].peak > 0)) return pb_fail("%s: %s.peak: must be positive", origin, pairs[i].field);
        if (pairs[i].achievable > pairs[i].peak * 1.001)
            return pb_fail("%s: %s.achievable: %g exceeds peak %g", origin, pairs[i].field,
                           pairs[i].achievable, pairs[i].peak);
    }
    if (p->memory_bytes == 0) return pb_fail("%s: memory.bytes: must be positive", origin);
    if (!(p->launch_us >= 0)) return pb_fail("%s: launch_overhead_us.value: must be >= 0", origin);
    for (int k = 0; k < LINK_KINDS; k++) {
        const struct link_profile *l = &p->link[k];
        if (!l->present) continue;
        if (!(l->gbps > 0)) return pb_fail("%s: links.%s.gbps: must be positive", origin, link_names[k]);
        if (!(l->peak_gbps > 0))
            return pb_fail("%s: links.%s.peak_gbps: must be positive", origin, link_names[k]);
        if (l->gbps > l->peak_gbps * 1.001)
            return pb_fail("%s: links.%s.gbps: %g exceeds peak_gbps %g", origin, link_names[k],
                           l->gbps, l->peak_gbps);
        if (!(l->peer_gbps > 0) || l->peer_gbps > l->peak_gbps * 1.001)
            return pb_fail("%s: links.%s.peer_gbps: must be positive and at most peak_gbps",
                           origin, link_names[k]);
        if (!(l->latency_us >= 0))
            return pb_fail("%s: links.%s.latency_us: must be >= 0", origin, link_names[k]);
    }
    if (!p->link[LINK_PCIE].present)
        return pb_fail("%s: links.pcie: every GPU needs its host link (weights stream over it)", origin);
    if (!p->link[p->peer_link].present)
        return pb_fail("%s: peer_link: \"%s\" but links.%s.present is false", origin,
                       link_names[p->peer_link], link_names[p->peer_link]);
    if (!(p->allreduce.bus_gbps > 0)) return pb_fail("%s: allreduce.bus_gbps: must be positive", origin);
    if (!(p->allreduce.step_latency_us >= 0))
        return pb_fail("%s: allreduce.step_latency_us: must be >= 0", origin);
    PB_TRY(validate_peer_allreduce(&p->peer_allreduce, origin));
    PB_TRY(validate_shared_gpu(&p->shared_gpu, origin));
    return validate_kernels(&p->kernels, origin);
}

int device_profile_parse(const char *json, const char *origin, struct device_profile *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", origin);
    cJSON *root;
    PB_TRY(json_parse_text(origin, json, strlen(json), &root));
    int rc = cJSON_IsObject(root) ? parse_fields(root, origin, out)
                                  : pb_fail("%s: the top level must be an object", origin);
    cJSON_Delete(root);
    if (rc != PB_OK) return rc;
    return device_profile_validate(out, origin);
}

/* ---- writing ---------------------------------------------------------------- */

static cJSON *quantity(double achievable, double peak, const char *source)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "achievable", achievable);
    cJSON_AddNumberToObject(o, "peak", peak);
    cJSON_AddStringToObject(o, "source", source);
    return o;
}

static cJSON *table_to_json(const struct efficiency_point *t, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "rows", t[i].rows);
        if (t[i].compute != 1) cJSON_AddNumberToObject(o, "compute", t[i].compute);
        cJSON_AddNumberToObject(o, "memory", t[i].memory);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void kernels_to_json(cJSON *root, const struct kernel_profile *k)
{
    if (!k->present) return;
    cJSON *o = cJSON_AddObjectToObject(root, "kernels");
    cJSON_AddItemToObject(o, "gemm", table_to_json(k->gemm, k->n_gemm));
    cJSON_AddItemToObject(o, "gemv", table_to_json(k->gemv, k->n_gemv));
    if (k->n_gemm_tuned_above > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, "gemm_tuned_above");
        for (int i = 0; i < k->n_gemm_tuned_above; i++) {
            const struct tuned_efficiency_point *t = &k->gemm_tuned_above[i];
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddNumberToObject(pt, "rows", t->rows);
            cJSON_AddNumberToObject(pt, "tune_rows", t->tune_rows);
            if (t->compute != 1) cJSON_AddNumberToObject(pt, "compute", t->compute);
            cJSON_AddNumberToObject(pt, "memory", t->memory);
            cJSON_AddItemToArray(arr, pt);
        }
    }
    cJSON_AddNumberToObject(o, "attention_tflops", k->attention_tflops);
    cJSON_AddNumberToObject(o, "memory_efficiency", k->memory_efficiency);
    cJSON_AddStringToObject(o, "source", k->source);
}

static cJSON *profile_to_json(const struct device_profile *p)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "name", p->name);
    cJSON_AddStringToObject(root, "gpu", p->gpu);
    cJSON_AddBoolToObject(root, "measured", p->measured);
    cJSON *mem = cJSON_AddObjectToObject(root, "memory");
    cJSON_AddNumberToObject(mem, "bytes", (double)p->memory_bytes);
    cJSON_AddStringToObject(mem, "source", p->memory_source);
    cJSON_AddItemToObject(root, "bf16_gemm_tflops",
                          quantity(p->bf16_tflops, p->bf16_peak_tflops, p->gemm_source));
    cJSON_AddItemToObject(root, "memory_bandwidth_gbps",
                          quantity(p->hbm_gbps, p->hbm_peak_gbps, p->hbm_source));
    cJSON *launch = cJSON_AddObjectToObject(root, "launch_overhead_us");
    cJSON_AddNumberToObject(launch, "value", p->launch_us);
    cJSON_AddStringToObject(launch, "source", p->launch_source);
    cJSON_AddStringToObject(root, "peer_link", link_names[p->peer_link]);
    cJSON *links = cJSON_AddObjectToObject(root, "links");
    for (int k = 0; k < LINK_KINDS; k++) {
        const struct link_profile *l = &p->link[k];
        cJSON *o = cJSON_AddObjectToObject(links, link_names[k]);
        if (!l->present) {
            cJSON_AddBoolToObject(o, "present", 0);
        } else {
            cJSON_AddNumberToObject(o, "gbps", l->gbps);
            if (l->peer_gbps != l->gbps) cJSON_AddNumberToObject(o, "peer_gbps", l->peer_gbps);
            cJSON_AddNumberToObject(o, "peak_gbps", l->peak_gbps);
            cJSON_AddNumberToObject(o, "latency_us", l->latency_us);
        }
        cJSON_AddStringToObject(o, "source", l->source);
    }
    cJSON *ar = cJSON_AddObjectToObject(root, "allreduce");
    cJSON_AddStringToObject(ar, "algorithm", "ring");
    cJSON_AddNumberToObject(ar, "bus_gbps", p->allreduce.bus_gbps);
    cJSON_AddNumberToObject(ar, "step_latency_us", p->allreduce.step_latency_us);
    cJSON_AddStringToObject(ar, "source", p->allreduce.source);
    flat_section_to_json(root, &peer_allreduce_section, &p->peer_allreduce, p->peer_allreduce.present,
                         p->peer_allreduce.source);
    flat_section_to_json(root, &shared_gpu_section, &p->shared_gpu, p->shared_gpu.present, p->shared_gpu.source);
    shared_compute_to_json(root, &p->shared_compute);
    kernels_to_json(root, &p->kernels);
    return root;
}

int device_profile_write(const struct device_profile *p, const char *path)
{
    PB_TRY(device_profile_validate(p, path));
    cJSON *root = profile_to_json(p);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return pb_fail("%s: out of memory writing the device profile", path);
    struct atomic_file a;
    int rc = atomic_file_open(&a, path);
    if (rc == PB_OK) {
        fputs(text, a.f);
        fputc('\n', a.f);
        rc = atomic_file_commit(&a);
    }
    free(text);
    return rc;
}
