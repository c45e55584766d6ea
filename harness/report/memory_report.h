/* The memory model in the reports: summary.csv's memory columns, summary.json's
 * "memory" object, a table under the printed results, and --explain's sentence on
 * which GPU fills first. The figures come from strategies/memory_model.c (and,
 * for measured runs, the executor's GPUs); this file only says them. */
#ifndef PB_MEMORY_REPORT_H
#define PB_MEMORY_REPORT_H
#include <cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include "../run/run.h"

/* Predicted memory and KV capacity of a point from its placement (r->placement,
 * r->w, r->decode_tokens) against mc; refuses (message, PB_ERR) what does not fit. */
int memory_fill_point(const struct model_spec *m, const struct machine *mc, struct point_result *r);

/* summary.csv's memory fields, in summary_csv_columns' order, into b[k...];
 * returns the next k. */
#define MEMORY_CSV_FIELDS 8
int memory_csv_fields(const struct point_result *r, char (*b)[1024], int k);

/* summary.json: per GPU bytes, budgets and what is free, measured beside, capacity. */
cJSON *memory_json(const struct point_result *r);

/* The table printed under the results: per GPU weights + KV + the rest = peak of
 * the budget, and each point's KV capacity. Prints nothing when no point has memory. */
void memory_print(FILE *f, const struct point_result *r, int n);

/* --explain: which GPU fills first under naive and under auto at this workload,
 * and why, and how much KV each holds; "" when neither has memory figures. */
void memory_sentence(const struct point_result *naive, const struct point_result *autop, char *buf, size_t len);
#endif
