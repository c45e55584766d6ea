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
/* {"model.embed_tokens": 0, ..., "lm_head": 1} with "cpu" for offloaded modules;
 * tensor parallel modules map to the list of GPUs they are split over. */
cJSON *placement_device_map(const struct placement *p);
#endif
