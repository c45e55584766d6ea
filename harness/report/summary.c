/* summary.csv (one row per strategy x workload, columns that never change
 * meaning) and summary.json (everything), each written to a temporary name and
 * renamed so an interrupted run never leaves half a report. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "placement_view.h"
#include "../run/run.h"
#include "../../base/atomic_file.h"
#include "../../base/interrupt.h"
#include "memory_report.h"

const char *const summary_csv_columns[] = {
    "strategy", "mode", "batch", "seq", "decode_tokens", "microbatches", "devices", "status",
    "reason", "placement", "stages", "steps", "iters", "latency_p50_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_mean_ms", "tokens_per_s", "speedup_vs_single", "window_ms",
    "utilisation_per_gpu", "compute_ms_per_gpu", "comm_ms_per_gpu", "copy_ms_per_gpu",
    "idle_ms_per_gpu", "own_span_ms_per_gpu", "transfer_bytes", "transfer_ms", "transfer_gbps",
    "allreduce_ms", "bubble_per_stage", "gpipe_bound", "busy_known", "dropped_records",
    "logits_checked", "logits_match", "logits_max_abs_diff", "cuda_graph", "predicted", "predicted_ms",
    "prediction_error_pct", "profile_iters", "profiled_p50_ms", "cupti_overhead_pct", "weights",
    /* memory (memory_report.c writes them in this order) */
    "weights_bytes_per_gpu", "kv_bytes_per_gpu", "activation_bytes_per_gpu", "peak_bytes_per_gpu",
    "free_bytes_per_gpu", "measured_peak_bytes_per_gpu", "max_context_at_batch", "max_batch_at_context",
    "idle_peer_wait_ms_per_gpu", "idle_host_ms_per_gpu", "idle_other_ms_per_gpu", "mbu_per_gpu", "mfu_per_gpu",
    "collective_bytes", "collective_busbw_gbps", NULL};


void point_result_free(struct point_result *r)
{
    free(r->placement);
    free(r->latency_ms);
    free(r->profiled_ms);
    r->placement = NULL;
    r->latency_ms = NULL;
    r->profiled_ms = NULL;
}

const char *point_status(const struct point_result *r)
{
    return r->ok ? "ok" : r->interrupted ? "interrupted" : r->skipped ? "skipped" : "failed";
}

void point_tag(const struct point_result *r, char *buf, size_t len)
{
    size_t k = 0;
    for (const char *s = r->strategy; *s && k + 1 < len; s++)
        buf[k++] = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ? *s : '-';
    buf[k] = 0;
    k += (size_t)snprintf(buf + k, len - k, "-b%d-s%d", r->w.batch, r->w.seq);
    if (k < len && r->decode_tokens > 0) k += (size_t)snprintf(buf + k, len - k, "-g%d", r->decode_tokens);
    if (k < len && strategy_takes_microbatches(r->strategy) && r->microbatches > 0)
        snprintf(buf + k, len - k, "-m%d", r->microbatches);
}

void point_result_interrupted(struct point_result *r, const char *strategy, const struct workload *w,
                              int decode_tokens)
{
    char name[sizeof r->strategy];   /* the arguments may point into *r */
    snprintf(name, sizeof name, "%s", strategy);
    struct workload work = *w;
    memset(r, 0, sizeof *r);
    snprintf(r->strategy, sizeof r->strategy, "%s", name);
    r->w = work;
    r->decode_tokens = decode_tokens;
    r->interrupted = 1;
    r->speedup = r->gpipe_bound = r->p50_ms = r->p90_ms = r->p99_ms = r->mean_ms = r->tokens_per_s = NAN;
    r->predicted_ms = r->prediction_error_pct = r->profiled_p50_ms = r->cupti_overhead_pct = NAN;
    snprintf(r->reason, sizeof r->reason, "%s", interrupt_reason());
}

/* RFC 4180: quote a field when it holds a comma, quote or line break; double quotes. */
static void csv_field(FILE *f, const char *s, int last)
{
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

/* Numbers: empty when unknown (NAN), never a misleading zero. */
static void fmt_num(char *buf, size_t len, double v)
{
    if (isnan(v) || isinf(v)) buf[0] = 0;
    else snprintf(buf, len, "%.6g", v);
}

/* Counts (bytes) in full: "%.6g" would write 33554432 as 3.35544e+07. */
static void fmt_count(char *buf, size_t len, double v)
{
    if (isnan(v) || isinf(v)) buf[0] = 0;
    else snprintf(buf, len, "%.0f", v);
}

/* Per-GPU values joined by ';' (one field, however many GPUs). */
static void fmt_list(char *buf, size_t len, const struct point_result *r, size_t offset, int n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int d = 0; d < n && used < len; d++) {
        double v = *(const double *)((const char *)&r->metrics.gpu[d] + offset);
        char one[32];
        fmt_num(one, sizeof one, r->metrics.gpu[d].known ? v : NAN);
        used += (size_t)snprintf(buf + used, len - used, "%s%s", d ? ";" : "", one);
    }
}

static const char *mode_name(const struct point_result *r)
{
    return r->w.mode == MODE_DECODE || r->decode_tokens > 0 ? "generate" : "prefill";
}

static int write_row(FILE *f, const struct run_env *env, const struct point_result *r)
{
    char b[48 + MEMORY_CSV_FIELDS + 16][1024];
    int k = 0;
    snprintf(b[k++], sizeof b[0], "%s", r->strategy);
    snprintf(b[k++], sizeof b[0], "%s", mode_name(r));
    snprintf(b[k++], sizeof b[0], "%d", r->w.batch);
    snprintf(b[k++], sizeof b[0], "%d", r->w.seq);
    snprintf(b[k++], sizeof b[0], "%d", r->decode_tokens);
    snprintf(b[k++], sizeof b[0], "%d", r->microbatches);
    size_t used = 0;
    b[k][0] = 0;
    for (int d = 0; d < r->n_devices; d++)
        used += (size_t)snprintf(b[k] + used, sizeof b[0] - used, "%s%d", d ? ";" : "", r->ordinal[d]);
    k++;
    snprintf(b[k++], sizeof b[0], "%s", point_status(r));
    snprintf(b[k++], sizeof b[0], "%s", r->ok ? "" : r->reason);
    snprintf(b[k++], sizeof b[0], "%s", r->placement_summary);
    snprintf(b[k++], sizeof b[0], "%d", r->stages);
    snprintf(b[k++], sizeof b[0], "%d", r->steps);
    snprintf(b[k++], sizeof b[0], "%d", r->iters);
    int known = r->ok && r->busy_known;
    double window = r->n_devices ? r->metrics.gpu[0].window_ms : NAN;
    double v[] = {r->p50_ms, r->p90_ms, r->p99_ms, r->mean_ms, r->tokens_per_s, r->speedup,
                  known ? window : NAN};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) fmt_num(b[k++], sizeof b[0], r->ok ? v[i] : NAN);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, utilisation), r->ok ? r->n_devices : 0);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, compute_ms), r->ok ? r->n_devices : 0);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, comm_ms), r->ok ? r->n_devices : 0);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, copy_ms), r->ok ? r->n_devices : 0);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, idle_ms), r->ok ? r->n_devices : 0);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, own_span_ms), r->ok ? r->n_devices : 0);
    fmt_count(b[k++], sizeof b[0], known ? r->transfer_bytes : NAN);
    fmt_num(b[k++], sizeof b[0], known ? r->transfer_ms : NAN);
    fmt_num(b[k++], sizeof b[0], known && r->transfer_ms > 0 ? r->transfer_bytes / r->transfer_ms / 1e6 : NAN);
    fmt_num(b[k++], sizeof b[0], known ? r->metrics.allreduce_ms : NAN);
    used = 0;
    b[k][0] = 0;
    for (int s = 0; r->ok && !isnan(r->gpipe_bound) && s < r->stages; s++) {
        char one[32];
        fmt_num(one, sizeof one, r->bubble[s]);
        used += (size_t)snprintf(b[k] + used, sizeof b[0] - used, "%s%s", s ? ";" : "", one);
    }
    k++;
    fmt_num(b[k++], sizeof b[0], r->gpipe_bound);
    snprintf(b[k++], sizeof b[0], "%d", r->busy_known);
    snprintf(b[k++], sizeof b[0], "%llu", (unsigned long long)r->dropped);
    snprintf(b[k++], sizeof b[0], "%d", r->logits_checked);
    snprintf(b[k++], sizeof b[0], "%d", r->logits_match);
    fmt_num(b[k++], sizeof b[0], r->logits_checked ? r->max_abs_diff : NAN);
    snprintf(b[k++], sizeof b[0], "%d", r->graph);
    snprintf(b[k++], sizeof b[0], "%d", r->predicted);
    int have_pred = r->ok && r->predicted_ms > 0;   /* a zero-filled row has no prediction */
    fmt_num(b[k++], sizeof b[0], have_pred ? r->predicted_ms : NAN);
    fmt_num(b[k++], sizeof b[0], have_pred ? r->prediction_error_pct : NAN);
    snprintf(b[k++], sizeof b[0], "%d", r->profile_iters);
    int profiled = r->ok && r->profile_iters > 0;   /* a zero-filled row was not profiled */
    fmt_num(b[k++], sizeof b[0], profiled ? r->profiled_p50_ms : NAN);
    fmt_num(b[k++], sizeof b[0], profiled ? r->cupti_overhead_pct : NAN);
    snprintf(b[k++], sizeof b[0], "%s", r->predicted ? "none" : env->weights);
    k = memory_csv_fields(r, b, k);
    int nd = r->ok ? r->n_devices : 0;
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, idle_peer_wait_ms), nd);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, idle_host_ms), nd);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, idle_other_ms), nd);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, mbu), nd);
    fmt_list(b[k++], sizeof b[0], r, offsetof(struct gpu_metrics, mfu), nd);
    fmt_count(b[k++], sizeof b[0], r->ok ? r->collective_bytes : NAN);
    fmt_num(b[k++], sizeof b[0], r->ok ? r->collective_busbw_gbps : NAN);
    for (int i = 0; i < k; i++) csv_field(f, b[i], i == k - 1);
    return k;
}

/* dir/name, written through atomic_file. */
static int open_report(const char *dir, const char *name, struct atomic_file *a)
{
    char final[4200];
    PB_TRY(path_join(final, sizeof final, dir, name));
    return atomic_file_open(a, final);
}

int summary_write_csv(const char *dir, const struct run_env *env, const struct point_result *r, int n)
{
    struct atomic_file a;
    PB_TRY(open_report(dir, "summary.csv", &a));
    int cols = 0;
    for (; summary_csv_columns[cols]; cols++) csv_field(a.f, summary_csv_columns[cols], !summary_csv_columns[cols + 1]);
    for (int i = 0; i < n; i++)
        if (write_row(a.f, env, &r[i]) != cols) {
            atomic_file_abort(&a);
            return pb_fail("internal: summary.csv row has the wrong number of fields");
        }
    return atomic_file_commit(&a);
}

/* A number, or null where it is unknown. */
static void add_num(cJSON *o, const char *key, double v)
{
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddNumberToObject(o, key, v);
}

static cJSON *env_json(const struct run_env *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "started", e->started);
    cJSON_AddStringToObject(o, "command", e->command);
    cJSON_AddStringToObject(o, "model", e->model);
    cJSON *gpus = cJSON_AddArrayToObject(o, "gpus");
    for (int i = 0; i < e->n_gpus; i++) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "ordinal", i);
        cJSON_AddStringToObject(g, "name", e->gpu_name[i]);
        cJSON_AddNumberToObject(g, "memory_bytes", (double)e->gpu_memory[i]);
        cJSON_AddItemToArray(gpus, g);
    }
    char v[64];
    snprintf(v, sizeof v, "%d.%d", e->driver_version / 1000, e->driver_version % 1000 / 10);
    cJSON_AddStringToObject(o, "cuda_driver", v);
    snprintf(v, sizeof v, "%d.%d", e->runtime_version / 1000, e->runtime_version % 1000 / 10);
    cJSON_AddStringToObject(o, "cuda_runtime", v);
    /* NCCL_VERSION_CODE: major*10000 + minor*100 + patch since 2.9. */
    snprintf(v, sizeof v, "%d.%d.%d", e->nccl_version / 10000, e->nccl_version / 100 % 100, e->nccl_version % 100);
    cJSON_AddStringToObject(o, "nccl", v);
    snprintf(v, sizeof v, "%d.%d.%d", e->cublas_version / 10000, e->cublas_version / 100 % 100,
             e->cublas_version % 100);
    cJSON_AddStringToObject(o, "cublas", v);
    cJSON_AddNumberToObject(o, "cupti_api_version", e->cupti_version);
    cJSON_AddBoolToObject(o, "cupti_enabled", e->cupti_enabled);
    cJSON_AddStringToObject(o, "profile_detail", e->profile_steps ? "step" : "kernel");
    if (e->cupti_enabled && e->cupti_mode[0]) cJSON_AddStringToObject(o, "cupti_mode", e->cupti_mode);
    if (!e->cupti_enabled) cJSON_AddStringToObject(o, "cupti_note", e->cupti_note);
    cJSON *peer = cJSON_AddArrayToObject(o, "peer_access");
    for (int i = 0; i < e->n_gpus; i++) {
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < e->n_gpus; j++) cJSON_AddItemToArray(row, cJSON_CreateBool(i == j || e->peer[i][j]));
        cJSON_AddItemToArray(peer, row);
    }
    cJSON_AddNumberToObject(o, "iters", e->iters);
    cJSON_AddNumberToObject(o, "profile_iters", e->profile_iters);
    cJSON_AddNumberToObject(o, "warmup", e->warmup);
    cJSON *w = cJSON_AddObjectToObject(o, "weights");
    cJSON_AddStringToObject(w, "kind", e->weights);
    if (!strcmp(e->weights, "safetensors")) cJSON_AddStringToObject(w, "folder", e->weights_dir);
    if (!strcmp(e->weights, "random")) cJSON_AddNumberToObject(w, "seed", (double)e->seed);
    return o;
}

static cJSON *point_json(const struct point_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "strategy", r->strategy);
    cJSON_AddStringToObject(o, "mode", mode_name(r));
    cJSON_AddNumberToObject(o, "batch", r->w.batch);
    cJSON_AddNumberToObject(o, "seq", r->w.seq);
    cJSON_AddNumberToObject(o, "decode_tokens", r->decode_tokens);
    cJSON_AddNumberToObject(o, "microbatches", r->microbatches);
    cJSON_AddStringToObject(o, "status", point_status(r));
    if (!r->ok) cJSON_AddStringToObject(o, "reason", r->reason);
    cJSON *dev = cJSON_AddArrayToObject(o, "devices");
    for (int d = 0; d < r->n_devices; d++) cJSON_AddItemToArray(dev, cJSON_CreateNumber(r->ordinal[d]));
    cJSON_AddStringToObject(o, "placement_summary", r->placement_summary);
    /* hf_device_map form (module -> logical device or "cpu"); tp: tp_plan instead */
    if (r->placement) placement_add_transformers_maps(o, r->placement);
    cJSON_AddNumberToObject(o, "stages", r->stages);
    cJSON_AddNumberToObject(o, "steps", r->steps);
    cJSON *lat = cJSON_AddArrayToObject(o, "latency_ms");
    for (int i = 0; r->latency_ms && i < r->iters; i++) cJSON_AddItemToArray(lat, cJSON_CreateNumber(r->latency_ms[i]));
    add_num(o, "latency_p50_ms", r->ok ? r->p50_ms : NAN);
    add_num(o, "latency_p90_ms", r->ok ? r->p90_ms : NAN);
    add_num(o, "latency_p99_ms", r->ok ? r->p99_ms : NAN);
    add_num(o, "latency_mean_ms", r->ok ? r->mean_ms : NAN);
    add_num(o, "tokens_per_s", r->ok ? r->tokens_per_s : NAN);
    add_num(o, "speedup_vs_single", r->ok ? r->speedup : NAN);
    /* Busy time comes from these separate iterations with CUPTI on; the
     * latencies above from iterations with activity collection paused. */
    cJSON_AddNumberToObject(o, "profile_iters", r->profile_iters);
    cJSON *prof = cJSON_AddArrayToObject(o, "profiled_latency_ms");
    for (int i = 0; r->profiled_ms && i < r->profile_iters; i++)
        cJSON_AddItemToArray(prof, cJSON_CreateNumber(r->profiled_ms[i]));
    int profiled = r->ok && r->profile_iters > 0;
    add_num(o, "profiled_p50_ms", profiled ? r->profiled_p50_ms : NAN);
    add_num(o, "cupti_overhead_pct", profiled ? r->cupti_overhead_pct : NAN);
    cJSON_AddBoolToObject(o, "busy_known", r->busy_known);
    cJSON_AddNumberToObject(o, "dropped_records", (double)r->dropped);
    cJSON *gpus = cJSON_AddArrayToObject(o, "per_gpu");
    for (int d = 0; r->ok && d < r->n_devices; d++) {
        const struct gpu_metrics *g = &r->metrics.gpu[d];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "device", d);
        add_num(j, "window_ms", g->window_ms);
        add_num(j, "compute_ms", g->known ? g->compute_ms : NAN);
        add_num(j, "comm_ms", g->known ? g->comm_ms : NAN);
        add_num(j, "copy_ms", g->known ? g->copy_ms : NAN);
        add_num(j, "idle_ms", g->known ? g->idle_ms : NAN);
        add_num(j, "utilisation", g->known ? g->utilisation : NAN);
        add_num(j, "own_span_ms", g->known ? g->own_span_ms : NAN);
        add_num(j, "idle_peer_wait_ms", g->known ? g->idle_peer_wait_ms : NAN);
        add_num(j, "idle_host_ms", g->known ? g->idle_host_ms : NAN);
        add_num(j, "idle_other_ms", g->known ? g->idle_other_ms : NAN);
        add_num(j, "mbu", g->known ? g->mbu : NAN);
        add_num(j, "mfu", g->known ? g->mfu : NAN);
        /* Busy time by the kind of step that issued it (bench diff reads this). */
        cJSON *work = cJSON_AddObjectToObject(j, "work_ms");
        for (int k = 0; g->known && k < PB_WORK_KINDS; k++)
            if (!isnan(g->work_ms[k]) && g->work_ms[k] > 0)
                add_num(work, k == PB_WORK_UNTAGGED ? "untagged" : step_kind_name((enum step_kind)k), g->work_ms[k]);
        cJSON_AddItemToArray(gpus, j);
    }
    cJSON *links = cJSON_AddArrayToObject(o, "links");
    for (int k = 0; r->ok && k < r->metrics.n_links; k++) {
        const struct link_metrics *l = &r->metrics.link[k];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "src", l->src);
        cJSON_AddNumberToObject(j, "dst", l->dst);
        cJSON_AddNumberToObject(j, "bytes", (double)l->bytes);
        add_num(j, "ms", l->ms);
        add_num(j, "gbps", l->gbps);
        cJSON_AddItemToArray(links, j);
    }
    add_num(o, "allreduce_ms", r->ok && r->busy_known ? r->metrics.allreduce_ms : NAN);
    add_num(o, "collective_bytes", r->ok ? r->collective_bytes : NAN);
    add_num(o, "collective_busbw_gbps", r->ok ? r->collective_busbw_gbps : NAN);
    if (!isnan(r->gpipe_bound)) {
        cJSON *b = cJSON_AddArrayToObject(o, "bubble_per_stage");
        for (int s = 0; s < r->stages; s++) {
            cJSON_AddItemToArray(b, isnan(r->bubble[s]) ? cJSON_CreateNull() : cJSON_CreateNumber(r->bubble[s]));
        }
        add_num(o, "gpipe_bound", r->gpipe_bound);
    }
    cJSON *chk = cJSON_AddObjectToObject(o, "logits_check");
    cJSON_AddBoolToObject(chk, "checked", r->logits_checked);
    cJSON_AddBoolToObject(chk, "match", r->logits_match);
    cJSON_AddBoolToObject(chk, "tokens_parted", r->tokens_parted);
    add_num(chk, "max_abs_diff", r->logits_checked ? r->max_abs_diff : NAN);
    add_num(chk, "rel_error", r->logits_checked ? r->rel_error : NAN);
    cJSON_AddNumberToObject(chk, "tolerance", r->tolerance);
    if (r->logits_fnv1a[0]) cJSON_AddStringToObject(chk, "fnv1a64", r->logits_fnv1a);
    cJSON_AddBoolToObject(o, "cuda_graph", r->graph);
    cJSON_AddBoolToObject(o, "predicted", r->predicted);
    int have_pred = r->ok && r->predicted_ms > 0;
    add_num(o, "predicted_ms", have_pred ? r->predicted_ms : NAN);
    add_num(o, "prediction_error_pct", have_pred ? r->prediction_error_pct : NAN);
    cJSON_AddItemToObject(o, "memory", memory_json(r));
    return o;
}

int summary_write_json(const char *dir, const struct run_env *env, const struct point_result *r, int n)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return pb_fail("out of host memory building summary.json");
    cJSON_AddStringToObject(root, "format", "placebench-summary-1");
    cJSON_AddItemToObject(root, "environment", env_json(env));
    cJSON *pts = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(pts, point_json(&r[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return pb_fail("out of host memory printing summary.json");
    struct atomic_file a;
    if (open_report(dir, "summary.json", &a) != PB_OK) {
        free(text);
        return PB_ERR;
    }
    fputs(text, a.f);
    fputc('\n', a.f);
    free(text);
    return atomic_file_commit(&a);
}
