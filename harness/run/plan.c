#include "plan.h"
#include "../../base/interrupt.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include "../../base/csv.h"
#include "../report/placement_view.h"
#include "predict.h"

#define GIB 1073741824.0

void plan_entry_fill(struct plan_entry *e, const struct model_spec *m, const struct strategy *s,
                     const struct workload *w, const struct placement *p, struct schedule *sched,
                     const struct device_profile *prof)
{
    memset(e, 0, sizeof *e);
    e->strategy = s;
    e->workload = *w;
    if (!p || !sched) {
        snprintf(e->error, sizeof e->error, "%s", pb_last_error());
        return;
    }
    e->ok = 1;
    e->placement = *p;
    e->schedule = *sched;
    memset(sched, 0, sizeof *sched);   /* taken */
    placement_device_roofline(m, &e->placement, w, prof->bf16_tflops * 1e12, prof->hbm_gbps * 1e9, e->work_ms);
    for (int d = 0; d < e->placement.n_devices; d++) e->work_ms[d] *= 1e3;
    placement_device_params(&e->placement, e->params, &e->cpu_params);
    schedule_device_flops(&e->schedule, e->flops);
    for (int i = 0; i < e->schedule.n_steps; i++) {
        const struct step *st = &e->schedule.steps[i];
        if (st->kind == STEP_COPY) {
            e->copies++;
            e->copy_bytes += st->bytes;
        }
        /* one per call: its group's first rank counts it */
        if (step_is_collective(st) && schedule_group_rank(&e->schedule, st->device) == 0) e->collectives++;
    }
}

static void print_memory(FILE *f, const struct plan_entry *e, int decode)
{
    const struct memory_plan *mp = &e->memory;
    if (!mp->n_devices) return;
    fprintf(f, "  memory at %d x (%d + %d) positions:", e->workload.batch, e->workload.seq, decode);
    for (int d = 0; d < mp->n_devices; d++) {
        const struct device_memory *g = &mp->gpu[d];
        fprintf(f, "%s GPU %d %.2f GiB (%.2f weights + %.2f KV + %.2f activations/workspace)", d ? ";" : "", d,
                g->peak / GIB, g->weights / GIB, g->kv / GIB, (g->activations + g->workspace + g->comm) / GIB);
        if (g->budget) fprintf(f, " of %.2f", g->budget / GIB);
    }
    fprintf(f, "\n  KV capacity: context %d%s at batch %d (%llu tokens), batch %d at context %d\n",
            e->capacity.max_context, e->capacity.context_capped ? " (max_position_embeddings)" : "",
            e->workload.batch, (unsigned long long)e->capacity.max_tokens, e->capacity.max_batch,
            e->workload.seq + decode);
}

void plan_entry_free(struct plan_entry *e)
{
    schedule_free(&e->schedule);
}

void plan_print(FILE *f, const struct plan_entry *e)
{
    const struct workload *w = &e->workload;
    fprintf(f, "%s  (batch %d x seq %d", e->strategy->name, w->batch, w->seq);
    if (e->ok && e->schedule.microbatches > 1) fprintf(f, ", %d microbatches", e->schedule.microbatches);
    fprintf(f, ")\n");
    if (!e->ok) {
        fprintf(f, "  %s: %s\n\n", e->skipped ? "skipped" : "not possible", e->error);
        return;
    }
    const struct placement *p = &e->placement;
    for (int d = 0; d < p->n_devices; d++) {
        char what[512];
        placement_describe(p, d, what, sizeof what);
        fprintf(f, "  GPU %-2d %7.2f GiB  %9.2f TFLOP  %8.3f ms*  %s\n", d, e->params[d] / GIB,
                e->flops[d] / 1e12, e->work_ms[d], what);
    }
    if (e->cpu_params) {
        char what[512];
        placement_describe(p, PB_DEVICE_CPU, what, sizeof what);
        fprintf(f, "  cpu    %7.2f GiB  (offloaded, streamed to GPU 0)  %s\n", e->cpu_params / GIB, what);
    }
    fprintf(f, "  schedule: %d steps on %d device(s), %d copies (%.1f MiB), %d collectives\n",
            e->schedule.n_steps, e->schedule.n_devices, e->copies, e->copy_bytes / 1048576.0,
            e->collectives);
    print_memory(f, e, e->decode_tokens);
    fprintf(f, "\n");
}

static cJSON *step_json(const struct step *st)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", step_kind_name(st->kind));
    cJSON_AddNumberToObject(j, "device", st->device);
    cJSON_AddNumberToObject(j, "stream", st->stream);
    cJSON_AddNumberToObject(j, "microbatch", st->microbatch);
    if (st->kind == STEP_LAYERS || st->kind == STEP_ATTENTION || st->kind == STEP_MLP) {
        cJSON_AddNumberToObject(j, "layer", st->layer);
        cJSON_AddNumberToObject(j, "count", st->count);
    }
    if (st->kind == STEP_COPY) {
        cJSON_AddNumberToObject(j, "src", st->src);
        cJSON_AddNumberToObject(j, "dst", st->dst);
    }
    if (st->kind == STEP_ALLREDUCE || st->kind == STEP_ALLGATHER) {
        cJSON_AddNumberToObject(j, "collective", st->collective);
        cJSON_AddNumberToObject(j, "group", st->group);
    }
    if (st->bytes) cJSON_AddNumberToObject(j, "bytes", (double)st->bytes);
    if (st->offloaded) cJSON_AddBoolToObject(j, "offloaded", 1);
    cJSON_AddNumberToObject(j, "rows", st->rows);
    if (st->flops) cJSON_AddNumberToObject(j, "flops", st->flops);
    cJSON *deps = cJSON_AddArrayToObject(j, "deps");
    for (int i = 0; i < st->n_deps; i++) cJSON_AddItemToArray(deps, cJSON_CreateNumber(st->deps[i]));
    return j;
}

static cJSON *entry_json(const struct plan_entry *e)
{
    cJSON *j = cJSON_CreateObject();
    const struct workload *w = &e->workload;
    cJSON_AddStringToObject(j, "strategy", e->strategy->name);
    cJSON_AddNumberToObject(j, "batch", w->batch);
    cJSON_AddNumberToObject(j, "seq", w->seq);
    cJSON_AddStringToObject(j, "mode", w->mode == MODE_DECODE ? "decode" : "prefill");
    cJSON_AddStringToObject(j, "status", plan_entry_status(e));
    if (!e->ok) {
        cJSON_AddStringToObject(j, "error", e->error);
        if (e->skipped) cJSON_AddNumberToObject(j, "microbatches", w->microbatches);
        return j;
    }
    placement_add_transformers_maps(j, &e->placement);
    cJSON *devs = cJSON_AddArrayToObject(j, "devices");
    for (int d = 0; d < e->placement.n_devices; d++) {
        char what[512];
        placement_describe(&e->placement, d, what, sizeof what);
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "gpu", d);
        cJSON_AddStringToObject(g, "modules", what);
        cJSON_AddNumberToObject(g, "param_bytes", (double)e->params[d]);
        cJSON_AddNumberToObject(g, "param_gib", e->params[d] / GIB);
        cJSON_AddNumberToObject(g, "flops", e->flops[d]);
        cJSON_AddNumberToObject(g, "work_ms_nominal", e->work_ms[d]);
        if (d < e->memory.n_devices) {
            const struct device_memory *mem = &e->memory.gpu[d];
            cJSON_AddNumberToObject(g, "weights_bytes", (double)mem->weights);
            cJSON_AddNumberToObject(g, "kv_bytes", (double)mem->kv);
            cJSON_AddNumberToObject(g, "activation_bytes", (double)(mem->activations + mem->workspace + mem->comm));
            cJSON_AddNumberToObject(g, "peak_bytes", (double)mem->peak);
            cJSON_AddNumberToObject(g, "free_bytes", (double)memory_free_bytes(mem));
        }
        cJSON_AddItemToArray(devs, g);
    }
    cJSON_AddNumberToObject(j, "cpu_param_bytes", (double)e->cpu_params);
    if (e->memory.n_devices) {
        cJSON *cap = cJSON_AddObjectToObject(j, "kv_capacity");
        cJSON_AddNumberToObject(cap, "decode_tokens", e->decode_tokens);
        cJSON_AddNumberToObject(cap, "max_context", e->capacity.max_context);
        cJSON_AddNumberToObject(cap, "max_tokens", (double)e->capacity.max_tokens);
        cJSON_AddBoolToObject(cap, "capped_by_max_position_embeddings", e->capacity.context_capped);
        cJSON_AddNumberToObject(cap, "max_batch", e->capacity.max_batch);
    }
    cJSON *s = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddNumberToObject(s, "n_steps", e->schedule.n_steps);
    cJSON_AddNumberToObject(s, "microbatches", e->schedule.microbatches);
    cJSON_AddNumberToObject(s, "stages", e->schedule.stages);
    cJSON_AddNumberToObject(s, "virtual_stages", e->schedule.virtual_stages);
    cJSON_AddNumberToObject(s, "tp_world", e->schedule.tp_world);
    cJSON_AddNumberToObject(s, "tp_groups", e->schedule.n_groups);
    cJSON_AddNumberToObject(s, "copies", e->copies);
    cJSON_AddNumberToObject(s, "copy_bytes", (double)e->copy_bytes);
    cJSON_AddNumberToObject(s, "collectives", e->collectives);
    cJSON *steps = cJSON_AddArrayToObject(s, "steps");
    for (int i = 0; i < e->schedule.n_steps; i++) cJSON_AddItemToArray(steps, step_json(&e->schedule.steps[i]));
    return j;
}

int plan_write_json(const char *path, const struct options *o, const struct model_spec *m,
                    const struct device_profile *prof, const struct plan_entry *e, int n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "command", o->command);
    /* the rates work_ms_nominal is priced at */
    cJSON *pj = cJSON_AddObjectToObject(root, "device_profile");
    cJSON_AddStringToObject(pj, "name", prof->name);
    cJSON_AddStringToObject(pj, "gpu", prof->gpu);
    cJSON_AddNumberToObject(pj, "bf16_tflops", prof->bf16_tflops);
    cJSON_AddNumberToObject(pj, "hbm_gbps", prof->hbm_gbps);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "name", m->name);
    cJSON_AddStringToObject(model, "architecture", m->architecture);
    cJSON_AddNumberToObject(model, "layers", m->layers);
    cJSON_AddNumberToObject(model, "hidden_size", m->hidden);
    cJSON_AddStringToObject(model, "dtype", dtype_name(o->dtype));
    cJSON_AddNumberToObject(root, "gpus", o->gpus);
    cJSON *mem = cJSON_AddObjectToObject(root, "max_memory");
    for (int d = 0; d < o->machine.gpus; d++) {
        char key[16];
        snprintf(key, sizeof key, "%d", d);
        cJSON_AddNumberToObject(mem, key, (double)o->machine.gpu_memory[d]);
    }
    cJSON_AddNumberToObject(mem, "cpu", (double)o->machine.cpu_memory);
    cJSON *arr = cJSON_AddArrayToObject(root, "strategies");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, entry_json(&e[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return pb_fail("out of memory writing %s", path);
    int st = atomic_write_text(path, text);
    free(text);
    return st;
}

int plan_write_csv(const char *path, const struct model_spec *m, const struct plan_entry *e, int n)
{
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    const char *cols[] = {"model", "strategy", "batch", "seq", "status", "error", "gpu", "modules",
                          "param_bytes", "flops", "work_ms_nominal", "steps", "microbatches", "copies",
                          "copy_bytes", "collectives"};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) csv_field(a.f, cols[c], c == 0);
    csv_end(a.f);
    for (int i = 0; i < n; i++) {
        int rows = e[i].ok ? e[i].placement.n_devices + (e[i].cpu_params ? 1 : 0) : 1;
        for (int r = 0; r < rows; r++) {
            int d = r < e[i].placement.n_devices || !e[i].ok ? r : PB_DEVICE_CPU;
            char what[512] = "", gpu[16] = "";
            if (e[i].ok) placement_describe(&e[i].placement, d, what, sizeof what);
            if (e[i].ok) snprintf(gpu, sizeof gpu, d < 0 ? "cpu" : "%d", d);
            csv_field(a.f, m->name, 1);
            csv_field(a.f, e[i].strategy->name, 0);
            csv_integer(a.f, e[i].workload.batch, 0);
            csv_integer(a.f, e[i].workload.seq, 0);
            csv_field(a.f, plan_entry_status(&e[i]), 0);
            csv_field(a.f, e[i].ok ? "" : e[i].error, 0);
            csv_field(a.f, gpu, 0);
            csv_field(a.f, what, 0);
            csv_integer(a.f, !e[i].ok ? NAN : d < 0 ? (double)e[i].cpu_params : (double)e[i].params[d], 0);
            csv_integer(a.f, e[i].ok && d >= 0 ? e[i].flops[d] : NAN, 0);
            csv_number(a.f, e[i].ok && d >= 0 ? e[i].work_ms[d] : NAN, 0);
            csv_integer(a.f, e[i].ok ? e[i].schedule.n_steps : NAN, 0);
            csv_integer(a.f, e[i].ok ? e[i].schedule.microbatches : e[i].skipped ? e[i].workload.microbatches : NAN, 0);
            csv_integer(a.f, e[i].ok ? e[i].copies : NAN, 0);
            csv_integer(a.f, e[i].ok ? (double)e[i].copy_bytes : NAN, 0);
            csv_integer(a.f, e[i].ok ? e[i].collectives : NAN, 0);
            csv_end(a.f);
        }
    }
    return atomic_file_commit(&a);
}

static void plan_entry_not_run(const struct strategy *s, const struct workload *w, const char *reason,
                               struct plan_entry *e)
{
    struct workload work = *w;
    memset(e, 0, sizeof *e);
    e->strategy = s;
    e->workload = work;
    snprintf(e->error, sizeof e->error, "%s", reason);
}

void plan_entry_interrupted(const struct strategy *s, const struct workload *w, struct plan_entry *e)
{
    plan_entry_not_run(s, w, interrupt_reason(), e);
    e->interrupted = 1;
}

void plan_entry_skipped(const struct strategy *s, const struct workload *w, const char *reason, struct plan_entry *e)
{
    plan_entry_not_run(s, w, reason, e);
    e->skipped = 1;
}

const char *plan_entry_status(const struct plan_entry *e)
{
    return e->ok ? "ok" : e->interrupted ? "interrupted" : e->skipped ? "skipped" : "failed";
}

const char *plan_profile_name(const struct options *o, const char *detected_gpu, const char **why)
{
    const char *shipped = predict_profile_for_gpu(detected_gpu);
    if (o->gpu_profile) *why = "--gpu-profile";
    else if (shipped) *why = "the GPU found here";
    else *why = detected_gpu ? "no shipped profile for the GPU found here" : "no GPU found here";
    return o->gpu_profile ? o->gpu_profile : shipped ? shipped : PLAN_DEFAULT_PROFILE;
}

int plan_write(const char *dir, const struct options *o, const struct model_spec *m,
               const struct device_profile *prof, const struct plan_entry *e, int n)
{
    char path[4200];
    int status = path_join(path, sizeof path, dir, "plan.json");
    if (status == PB_OK) status = plan_write_json(path, o, m, prof, e, n);
    if (status == PB_OK) status = path_join(path, sizeof path, dir, "plan.csv");
    if (status == PB_OK) status = plan_write_csv(path, m, e, n);
    if (status == PB_OK) printf("wrote %s/plan.json and plan.csv\n", dir);
    return status;
}
