/* --max-memory: per-device memory budgets, as from_pretrained(max_memory=...) takes them.
 * "0=80GiB,1=80GiB,cpu=512GiB": keys are GPU indices and "cpu"; values are plain bytes or
 * what accelerate's convert_file_size_to_int accepts. */
#ifndef PB_MEMORY_BUDGET_H
#define PB_MEMORY_BUDGET_H
#include <stdint.h>
#include "../../strategies/strategy.h"

/* One size: plain bytes ("1073741824"), or a number (decimals allowed) with a unit,
 * case-insensitive: GiB/MiB/KiB = 2^30/2^20/2^10, GB/MB/KB = 10^9/10^6/10^3. As in
 * accelerate, a decimal unit ending in a lowercase "b" ("10Gb", "10gb") means bits: a
 * value 8 times smaller. Returns -1 (no message) if the text is not a size. */
int memory_size_parse(const char *text, uint64_t *bytes);

/* Parse the whole spec into mc->gpu_memory[] and mc->cpu_memory, clearing the budgets
 * first (a device not named gets none, as accelerate ignores devices missing from
 * max_memory) and setting mc->budgets_from_user. On a bad entry prints a message naming
 * it and returns -1. */
int memory_budget_parse(const char *spec, struct machine *mc);

/* After --gpus is known: every GPU named in the spec must exist. */
int memory_budget_check_gpus(const struct machine *mc, int gpus);
#endif
