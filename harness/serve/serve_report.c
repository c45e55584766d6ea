#include "serve_report.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../../base/csv.h"

const char *const serve_csv_columns[] = {
    "strategy", "request_rate", "status", "reason", "placement", "groups", "max_batch", "kv_capacity_tokens",
    "requests", "completed", "refused", "met_slo", "slo_ttft_ms", "slo_tpot_ms", "ttft_p50_ms", "ttft_p90_ms",
    "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
    "span_ms", "requests_per_s", "output_tokens_per_s", "goodput_requests_per_s", "prefill_steps",
    "decode_steps", "mean_decode_batch", "max_in_flight", "kv_waits", "compute_ms_per_gpu", "comm_ms_per_gpu",
    "copy_ms_per_gpu", "busy_ms_per_gpu", "idle_ms_per_gpu", "utilisation_per_gpu", "cost_evaluations",
    "predicted", NULL,
};

static const char *rate_text(double rate, char *buf, size_t len)
{
    snprintf(buf, len, isinf(rate) ? "inf" : "%.6g", rate);
    return buf;
}

/* No limit is written as empty, as unknown is: never as a number. */
static double limit_or_nan(double v)
{
    return isinf(v) ? NAN : v;
}

enum per_gpu { GPU_COMPUTE, GPU_COMM, GPU_COPY, GPU_BUSY, GPU_IDLE, GPU_UTIL };

static double per_gpu_value(const struct serve_point *p, int d, enum per_gpu what)
{
    const struct serve_totals *t = &p->tot;
    switch (what) {
    case GPU_COMPUTE: return t->compute_ms[d];
    case GPU_COMM: return t->comm_ms[d];
    case GPU_COPY: return t->copy_ms[d];
    case GPU_BUSY: return t->busy_ms[d];
    case GPU_IDLE: return p->met.span_ms - t->busy_ms[d];
    default: return serve_point_utilisation(p, d);
    }
}

static void per_gpu_field(FILE *f, const struct serve_point *p, enum per_gpu what)
{
    char buf[2048] = "";
    size_t used = 0;
    for (int d = 0; p->ok && d < p->tot.n_devices && used + 24 < sizeof buf; d++) {
        double v = per_gpu_value(p, d, what);   /* unknown (no CUPTI): an empty item, never "nan" */
        used += (size_t)(isnan(v) ? snprintf(buf + used, sizeof buf - used, "%s", d ? ";" : "")
                                  : snprintf(buf + used, sizeof buf - used, "%s%.6g", d ? ";" : "", v));
    }
    csv_field(f, buf, 0);
}

static double mean_batch(const struct serve_point *p)
{
    return p->tot.decode_steps ? p->tot.decode_batch_sum / p->tot.decode_steps : NAN;
}

static void csv_point(FILE *f, const struct serve_point *p)
{
    char rate[32];
    const struct serve_point_metrics *m = &p->met;
    csv_field(f, p->strategy, 1);
    csv_field(f, rate_text(p->rate, rate, sizeof rate), 0);
    csv_field(f, p->ok ? "ok" : "failed", 0);
    csv_field(f, p->ok ? "" : p->reason, 0);
    csv_field(f, p->placement_summary, 0);
    csv_integer(f, p->ok ? p->groups : NAN, 0);
    csv_integer(f, p->max_batch, 0);
    csv_integer(f, p->ok ? (double)p->kv_capacity_tokens : NAN, 0);
    double v[] = {m->requests, m->completed, m->refused, m->met_slo, limit_or_nan(p->slo.ttft_ms),
                  limit_or_nan(p->slo.tpot_ms), m->ttft_p50_ms, m->ttft_p90_ms, m->ttft_p99_ms, m->tpot_p50_ms,
                  m->tpot_p99_ms, m->itl_p50_ms, m->itl_p99_ms, m->e2e_p50_ms, m->e2e_p99_ms, m->span_ms,
                  m->requests_per_s, m->output_tokens_per_s, m->goodput_requests_per_s, p->tot.prefill_steps,
                  p->tot.decode_steps, mean_batch(p), p->tot.max_in_flight, p->tot.kv_waits};
    /* counts in full (csv_integer), the rest to six digits */
    static const char count[sizeof v / sizeof v[0]] = {1, 1, 1, 1, [19] = 1, [20] = 1, [22] = 1, [23] = 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        (count[i] ? csv_integer : csv_number)(f, p->ok ? v[i] : NAN, 0);
    for (enum per_gpu g = GPU_COMPUTE; g <= GPU_UTIL; g++) per_gpu_field(f, p, g);
    csv_integer(f, p->ok ? (double)p->cost_evaluations : NAN, 0);
    csv_integer(f, !p->measured, 0);
    csv_end(f);
}

int serve_write_csv(const char *path, const struct serve_point *p, int n)
{
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    for (int c = 0; serve_csv_columns[c]; c++) csv_field(a.f, serve_csv_columns[c], c == 0);
    csv_end(a.f);
    for (int i = 0; i < n; i++) csv_point(a.f, &p[i]);
    return atomic_file_commit(&a);
}

int serve_write_requests_csv(const char *path, const struct options *o, const struct serve_point *p, int n)
{
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    const char *cols[] = {"strategy", "request_rate", "id", "status", "arrival_ms", "prompt_tokens",
                          "output_tokens", "first_token_ms", "finish_ms", "ttft_ms", "tpot_ms", "e2e_ms",
                          "met_slo", "reason"};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) csv_field(a.f, cols[c], c == 0);
    csv_end(a.f);
    for (int i = 0; i < n; i++) {
        char rate[32];
        rate_text(p[i].rate, rate, sizeof rate);
        for (int k = 0; k < p[i].n_res; k++) {
            const struct serve_request_result *q = &p[i].res[k];
            int done = q->status == SERVE_DONE;
            csv_field(a.f, p[i].strategy, 1);
            csv_field(a.f, rate, 0);
            csv_integer(a.f, q->req.id, 0);
            csv_field(a.f, done ? "done" : "refused", 0);
            csv_number(a.f, q->req.arrival_ms, 0);
            csv_integer(a.f, q->req.prompt_tokens, 0);
            csv_integer(a.f, q->req.output_tokens, 0);
            csv_number(a.f, q->first_token_ms, 0);
            csv_number(a.f, q->finish_ms, 0);
            csv_number(a.f, serve_ttft_ms(q), 0);
            csv_number(a.f, serve_tpot_ms(q), 0);
            csv_number(a.f, serve_e2e_ms(q), 0);
            csv_integer(a.f, o->serve.slo_given ? serve_meets_slo(q, &p[i].slo) : NAN, 0);
            csv_field(a.f, done ? "" : q->reason, 0);
            csv_end(a.f);
        }
    }
    return atomic_file_commit(&a);
}

static void json_number(cJSON *j, const char *key, double v)
{
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(j, key);
    else cJSON_AddNumberToObject(j, key, v);
}

static cJSON *json_per_gpu(const struct serve_point *p, enum per_gpu what)
{
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < p->tot.n_devices; d++) {
        double v = per_gpu_value(p, d, what);
        cJSON_AddItemToArray(a, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
    }
    return a;
}

static cJSON *json_point(const struct serve_point *p)
{
    cJSON *j = cJSON_CreateObject();
    char rate[32];
    const struct serve_point_metrics *m = &p->met;
    cJSON_AddStringToObject(j, "strategy", p->strategy);
    if (isinf(p->rate)) cJSON_AddStringToObject(j, "request_rate", rate_text(p->rate, rate, sizeof rate));
    else cJSON_AddNumberToObject(j, "request_rate", p->rate);
    cJSON_AddStringToObject(j, "status", p->ok ? "ok" : "failed");
    if (!p->ok) {
        cJSON_AddStringToObject(j, "reason", p->reason);
        return j;
    }
    cJSON_AddStringToObject(j, "placement", p->placement_summary);
    cJSON_AddNumberToObject(j, "groups", p->groups);
    cJSON_AddNumberToObject(j, "max_batch", p->max_batch);
    cJSON_AddNumberToObject(j, "kv_capacity_tokens", (double)p->kv_capacity_tokens);
    const char *keys[] = {"requests", "completed", "refused", "met_slo", "ttft_p50_ms", "ttft_p90_ms",
                          "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms",
                          "e2e_p99_ms", "span_ms", "requests_per_s", "output_tokens_per_s",
                          "goodput_requests_per_s", "prefill_steps", "decode_steps", "mean_decode_batch",
                          "max_in_flight", "kv_waits", "cost_lookups", "cost_evaluations", "decode_step_ms",
                          "prefill_step_ms"};
    double v[] = {m->requests, m->completed, m->refused, m->met_slo, m->ttft_p50_ms, m->ttft_p90_ms,
                  m->ttft_p99_ms, m->tpot_p50_ms, m->tpot_p99_ms, m->itl_p50_ms, m->itl_p99_ms, m->e2e_p50_ms,
                  m->e2e_p99_ms, m->span_ms, m->requests_per_s, m->output_tokens_per_s,
                  m->goodput_requests_per_s, p->tot.prefill_steps, p->tot.decode_steps, mean_batch(p),
                  p->tot.max_in_flight, p->tot.kv_waits, (double)p->cost_lookups, (double)p->cost_evaluations,
                  p->decode_step_ms, p->prefill_step_ms};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) json_number(j, keys[i], v[i]);
    const char *gpu_keys[] = {"compute_ms_per_gpu", "comm_ms_per_gpu", "copy_ms_per_gpu", "busy_ms_per_gpu",
                              "idle_ms_per_gpu", "utilisation_per_gpu"};
    for (enum per_gpu g = GPU_COMPUTE; g <= GPU_UTIL; g++) cJSON_AddItemToObject(j, gpu_keys[g], json_per_gpu(p, g));
    return j;
}

static void length_json(cJSON *root, const char *key, const struct length_spec *s)
{
    char text[1200];
    if (s->kind == LENGTH_UNIFORM) snprintf(text, sizeof text, "uniform:%d-%d", s->lo, s->hi);
    else if (s->kind == LENGTH_FILE) snprintf(text, sizeof text, "file:%s", s->path);
    else snprintf(text, sizeof text, "%d", s->fixed);
    cJSON_AddStringToObject(root, key, text);
}

int serve_write_json(const char *path, const struct options *o, const struct model_spec *m,
                     const struct device_profile *prof, const char *device, const struct serve_point *p, int n)
{
    const struct serve_options *so = &o->serve;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "command", o->command);
    cJSON_AddStringToObject(root, "model", m->name);
    cJSON_AddStringToObject(root, "dtype", dtype_name(o->dtype));
    cJSON_AddBoolToObject(root, "predicted", prof != NULL);
    if (prof) cJSON_AddStringToObject(root, "profile", prof->name);
    else cJSON_AddNullToObject(root, "profile");
    cJSON_AddStringToObject(root, "gpu", prof ? prof->gpu : device ? device : "");
    if (prof) cJSON_AddNumberToObject(root, "gpus", o->gpus);   /* measured: `gpu` names the devices */
    cJSON_AddNumberToObject(root, "requests", so->requests);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    length_json(root, "prompt_len", &so->prompt);
    length_json(root, "output_len", &so->output);
    cJSON_AddNumberToObject(root, "max_batch", so->max_batch);
    cJSON *slo = cJSON_AddObjectToObject(root, "slo");
    json_number(slo, "ttft_ms", so->slo_ttft_ms);
    json_number(slo, "tpot_ms", so->slo_tpot_ms);
    cJSON *arr = cJSON_AddArrayToObject(root, "points");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, json_point(&p[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return pb_fail("out of memory writing %s", path);
    int rc = atomic_write_text(path, text);
    free(text);
    return rc;
}

int serve_write_reports(const char *dir, const struct options *o, const struct model_spec *m,
                        const struct device_profile *prof, const char *device, const struct serve_point *p, int n)
{
    char path[4200];
    PB_TRY(path_join(path, sizeof path, dir, "serve.csv"));
    PB_TRY(serve_write_csv(path, p, n));
    PB_TRY(path_join(path, sizeof path, dir, "serve.json"));
    PB_TRY(serve_write_json(path, o, m, prof, device, p, n));
    PB_TRY(path_join(path, sizeof path, dir, "requests.csv"));
    PB_TRY(serve_write_requests_csv(path, o, p, n));
    PB_TRY(path_join(path, sizeof path, dir, "serve.svg"));
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    serve_svg(a.f, p, n);
    return atomic_file_commit(&a);
}
