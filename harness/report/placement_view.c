#include "placement_view.h"
#include <stdio.h>
#include <string.h>

static void append(char *buf, size_t len, const char *text)
{
    size_t n = strlen(buf);
    if (n < len) snprintf(buf + n, len - n, "%s", text);
}

static const char *short_name(const struct module *m)
{
    switch (m->kind) {
    case MODULE_EMBED: return "embed";
    case MODULE_NORM: return "norm";
    case MODULE_ROTARY: return "rotary";
    case MODULE_HEAD: return "head";
    default: return "layer";
    }
}

/* Tensor parallel with several groups (hybrid): a GPU holds 1/D of its group's modules. */
static int grouped(const struct placement *p) { return p->tensor_parallel && p->tp_degree < p->n_devices; }

/* The modules whose device[] entry is `owner` (a device, or a tp group). */
static void describe_owner(const struct placement *p, int owner, char *buf, size_t len)
{
    buf[0] = 0;
    for (int i = 0; i < p->n_modules; i++) {
        if (p->device[i] != owner) continue;
        const struct module *m = &p->modules[i];
        char item[64];
        if (m->kind == MODULE_LAYER) {
            int j = i;
            while (j + 1 < p->n_modules && p->modules[j + 1].kind == MODULE_LAYER && p->device[j + 1] == owner) j++;
            if (j > i) snprintf(item, sizeof item, "layers %d-%d", m->layer, p->modules[j].layer);
            else snprintf(item, sizeof item, "layer %d", m->layer);
            i = j;
        } else {
            snprintf(item, sizeof item, "%s", short_name(m));
        }
        if (buf[0]) append(buf, len, ", ");
        append(buf, len, item);
    }
    if (!buf[0]) snprintf(buf, len, "(nothing)");
}

void placement_describe(const struct placement *p, int device, char *buf, size_t len)
{
    buf[0] = 0;
    if (p->tensor_parallel && !grouped(p)) {
        snprintf(buf, len, "1/%d of every module", p->n_devices);
    } else if (grouped(p)) {
        char part[480];
        describe_owner(p, device / p->tp_degree, part, sizeof part);
        if (device >= 0) snprintf(buf, len, "1/%d of %s", p->tp_degree, part);
    } else {
        describe_owner(p, device, buf, len);
    }
}

void placement_summary(const struct placement *p, char *buf, size_t len)
{
    buf[0] = 0;
    if (p->tensor_parallel && !grouped(p)) {
        snprintf(buf, len, "tp x%d", p->n_devices);
        return;
    }
    if (grouped(p)) {
        /* "tp x2 | 0-1: embed, layers 0-15 | 2-3: layers 16-31, norm, head" */
        snprintf(buf, len, "tp x%d", p->tp_degree);
        for (int g = 0; g * p->tp_degree < p->n_devices; g++) {
            char part[480], item[560];
            describe_owner(p, g, part, sizeof part);
            snprintf(item, sizeof item, " | %d-%d: %s", g * p->tp_degree, (g + 1) * p->tp_degree - 1, part);
            append(buf, len, item);
        }
        return;
    }
    int has_cpu = 0;
    for (int i = 0; i < p->n_modules; i++) has_cpu |= p->device[i] == PB_DEVICE_CPU;
    for (int d = has_cpu ? -1 : 0; d < p->n_devices; d++) {
        char part[512], item[600];
        placement_describe(p, d, part, sizeof part);
        if (d >= 0 && !strcmp(part, "(nothing)")) continue;
        snprintf(item, sizeof item, "%s%s: %s", buf[0] ? " | " : "", d < 0 ? "cpu" : "", part);
        if (d >= 0) snprintf(item, sizeof item, "%s%d: %s", buf[0] ? " | " : "", d, part);
        append(buf, len, item);
    }
}

cJSON *placement_device_map(const struct placement *p)
{
    /* transformers refuses device_map beside tp_plan: each rank loads onto its own GPU */
    if (p->tensor_parallel) return cJSON_CreateNull();
    cJSON *map = cJSON_CreateObject();
    for (int i = 0; map && i < p->n_modules; i++) {
        cJSON *v;
        if (p->device[i] == PB_DEVICE_CPU) {
            v = cJSON_CreateString("cpu");
        } else {
            v = cJSON_CreateNumber(p->device[i]);
        }
        cJSON_AddItemToObject(map, p->modules[i].name, v);
    }
    return map;
}

/* strategies/tp.c splits exactly as transformers' Llama plan does: q/k/v and
 * gate/up by output columns, o and down by input rows (an all-reduce after each),
 * lm_head by vocabulary with the logits gathered; the embedding is replicated. */
static const char *const tp_plan_entries[][2] = {
    {"model.layers.*.self_attn.q_proj", "colwise"}, {"model.layers.*.self_attn.k_proj", "colwise"},
    {"model.layers.*.self_attn.v_proj", "colwise"}, {"model.layers.*.self_attn.o_proj", "rowwise"},
    {"model.layers.*.mlp.gate_proj", "colwise"},    {"model.layers.*.mlp.up_proj", "colwise"},
    {"model.layers.*.mlp.down_proj", "rowwise"},    {"lm_head", "colwise_gather_output"},
};

cJSON *placement_tp_plan(const struct placement *p)
{
    if (!p->tensor_parallel) return NULL;
    cJSON *plan = cJSON_CreateObject();
    for (size_t i = 0; plan && i < sizeof tp_plan_entries / sizeof tp_plan_entries[0]; i++)
        cJSON_AddStringToObject(plan, tp_plan_entries[i][0], tp_plan_entries[i][1]);
    return plan;
}

void placement_add_transformers_maps(cJSON *o, const struct placement *p)
{
    cJSON_AddItemToObject(o, "device_map", placement_device_map(p));
    cJSON *tp = placement_tp_plan(p);
    if (!tp) return;
    cJSON_AddItemToObject(o, "tp_plan", tp);
    cJSON_AddNumberToObject(o, "tp_size", p->tp_degree);
    if (p->n_devices == p->tp_degree) return;
    /* hybrid: pipeline stages of tp groups, which from_pretrained cannot express; say
     * which group's GPUs hold each module */
    cJSON *groups = cJSON_AddObjectToObject(o, "tp_group_devices");
    for (int i = 0; groups && i < p->n_modules; i++) {
        cJSON *v = cJSON_CreateArray();
        for (int r = 0; r < p->tp_degree; r++) cJSON_AddItemToArray(v, cJSON_CreateNumber(p->device[i] * p->tp_degree + r));
        cJSON_AddItemToObject(groups, p->modules[i].name, v);
    }
}
