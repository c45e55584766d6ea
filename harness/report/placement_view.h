/* Ways to show a placement: one line per device for tables, and transformers'
 * hf_device_map form for JSON (so a user can pass it to from_pretrained). */
#ifndef PB_PLACEMENT_VIEW_H
#define PB_PLACEMENT_VIEW_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include "../../strategies/strategy.h"

/* e.g. "embed, layers 0-15" for device d (PB_DEVICE_CPU for the cpu part). */
void placement_describe(const struct placement *p, int device, char *buf, size_t len);
/* Short summary of all devices: "0: embed+L0-15 | 1: L16-31+norm+head". */
void placement_summary(const struct placement *p, char *buf, size_t len);
/* {"model.embed_tokens": 0, ..., "lm_head": 1} with "cpu" for offloaded modules: what
 * from_pretrained(device_map=...) takes. JSON null for tensor parallelism, which
 * transformers places through tp_plan instead (device_map beside it is refused). */
cJSON *placement_device_map(const struct placement *p);
/* Tensor parallelism in from_pretrained(tp_plan=...) form, {"model.layers.*.self_attn.q_proj":
 * "colwise", ...}; NULL for any other placement. */
cJSON *placement_tp_plan(const struct placement *p);
/* Both into o: "device_map", and for tp also "tp_plan" and "tp_size" (GPUs of a group,
 * torchrun's ranks); hybrid adds "tp_group_devices", module -> the GPUs of its group. */
void placement_add_transformers_maps(cJSON *o, const struct placement *p);
#endif
