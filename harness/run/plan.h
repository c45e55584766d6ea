/* --plan: each strategy's placement and schedule for a workload, printed and
 * written as plan.json / plan.csv, with no GPU involved. */
#ifndef PB_PLAN_H
#define PB_PLAN_H
#include <stdio.h>
#include "../cli/options.h"
#include "../../strategies/memory_model.h"

struct plan_entry {
    const struct strategy *strategy;
    struct workload workload;
    int ok;
    char error[512];                     /* why place or plan failed */
    struct placement placement;
    struct schedule schedule;
    double work_ms[PB_MAX_DEVICES];      /* module_work per device (nominal roofline) */
    double flops[PB_MAX_DEVICES];
    uint64_t params[PB_MAX_DEVICES], cpu_params;
    int copies, collectives;
    uint64_t copy_bytes;
    struct memory_plan memory;           /* per device at the workload and --decode; n_devices 0: none */
    struct kv_capacity capacity;
    int decode_tokens;                   /* --decode: the memory is sized for them too */
};

/* Place and plan one strategy; a failure is recorded in e->error, not fatal. */
void plan_compute(const struct model_spec *m, const struct strategy *s, const struct workload *w,
                  const struct machine *mc, struct plan_entry *e);
void plan_entry_free(struct plan_entry *e);
void plan_print(FILE *f, const struct plan_entry *e);
int plan_write_json(const char *path, const struct options *o, const struct model_spec *m,
                    const struct plan_entry *e, int n);
int plan_write_csv(const char *path, const struct model_spec *m, const struct plan_entry *e, int n);
/* The whole --plan job: every strategy x workload, table on stdout, files in dir. */
int plan_run(const struct options *o, const struct model_spec *m, const char *dir);
/* Workload for one sweep point. */
struct workload workload_make(const struct options *o, int batch, int seq, int microbatches);
#endif
