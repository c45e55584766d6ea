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

void placement_describe(const struct placement *p, int device, char *buf, size_t len)
{
    buf[0] = 0;
    if (p->tensor_parallel) {
        snprintf(buf, len, "1/%d of every module", p->n_devices);
        return;
    }
    for (int i = 0; i < p->n_modules; i++) {
        if (p->device[i] != device) continue;
        const struct module *m = &p->modules[i];
        char item[64];
        if (m->kind == MODULE_LAYER) {
            int j = i;
            while (j + 1 < p->n_modules && p->modules[j + 1].kind == MODULE_LAYER && p->device[j + 1] == device) j++;
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

void placement_summary(const struct placement *p, char *buf, size_t len)
{
    buf[0] = 0;
    if (p->tensor_parallel) {
        snprintf(buf, len, "tp x%d", p->n_devices);
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
    cJSON *map = cJSON_CreateObject();
    for (int i = 0; map && i < p->n_modules; i++) {
        cJSON *v;
        if (p->tensor_parallel) {
            v = cJSON_CreateArray();
            for (int d = 0; d < p->n_devices; d++) cJSON_AddItemToArray(v, cJSON_CreateNumber(d));
        } else if (p->device[i] == PB_DEVICE_CPU) {
            v = cJSON_CreateString("cpu");
        } else {
            v = cJSON_CreateNumber(p->device[i]);
        }
        cJSON_AddItemToObject(map, p->modules[i].name, v);
    }
    return map;
}
