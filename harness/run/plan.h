/* --plan: each strategy's placement and schedule for a workload, printed and
 * written as plan.json / plan.csv, with no GPU involved. */
#ifndef PB_PLAN_H
#define PB_PLAN_H
#include <stdio.h>
#include "../exec/model/device_profile.h"
#include "../cli/options.h"
#include "../../strategies/memory_model.h"

#define PLAN_DEFAULT_PROFILE "h200"   /* without a GPU or --gpu-profile: the GPUs this project targets */

struct plan_entry {
    const struct strategy *strategy;
    struct workload workload;
    int ok;
    int interrupted;                     /* not planned: a signal stopped the sweep first */
    int skipped;                         /* not planned: the combination cannot run (microbatches
                                            that do not split the batch); workload keeps the asked m */
    char error[512];                     /* why place or plan failed */
    struct placement placement;
    struct schedule schedule;
    double work_ms[PB_MAX_DEVICES];      /* roofline per device at the plan's device profile's rates */
    double flops[PB_MAX_DEVICES];
    uint64_t params[PB_MAX_DEVICES], cpu_params;
    int copies, collectives;
    uint64_t copy_bytes;
    struct memory_plan memory;           /* per device at the workload and --decode; n_devices 0: none */
    struct kv_capacity capacity;
    int decode_tokens;                   /* --decode: the memory is sized for them too */
};

/* One point of the sweep (run/sweep.c) without an executor: placement p and the
 * prompt schedule (taken: *sched is left empty), its work priced at prof's roofline,
 * or, with p NULL, the failure pb_last_error() holds, recorded in e->error. */
/* A point not planned because of SIGINT/SIGTERM: status "interrupted". */
void plan_entry_interrupted(const struct strategy *s, const struct workload *w, struct plan_entry *e);
/* A combination that cannot run: status "skipped", the reason, the microbatches asked. */
void plan_entry_skipped(const struct strategy *s, const struct workload *w, const char *reason, struct plan_entry *e);
/* "ok", "interrupted", "skipped" or "failed", as plan.json and plan.csv write it. */
const char *plan_entry_status(const struct plan_entry *e);
void plan_entry_fill(struct plan_entry *e, const struct model_spec *m, const struct strategy *s,
                     const struct workload *w, const struct placement *p, struct schedule *sched,
                     const struct device_profile *prof);
void plan_entry_free(struct plan_entry *e);
void plan_print(FILE *f, const struct plan_entry *e);
int plan_write_json(const char *path, const struct options *o, const struct model_spec *m,
                    const struct device_profile *prof, const struct plan_entry *e, int n);
int plan_write_csv(const char *path, const struct model_spec *m, const struct plan_entry *e, int n);
/* plan.json and plan.csv into dir. */
int plan_write(const char *dir, const struct options *o, const struct model_spec *m,
               const struct device_profile *prof, const struct plan_entry *e, int n);
/* The profile --plan prices work at: --gpu-profile, else the shipped profile of
 * detected_gpu (GPU 0's name, or NULL), else PLAN_DEFAULT_PROFILE; *why says which. */
const char *plan_profile_name(const struct options *o, const char *detected_gpu, const char **why);
/* The whole --plan job: the sweep with no executor, table on stdout, files in dir
 * (run/plan_job.c). */
int plan_run(const struct options *o, const struct model_spec *m, const char *dir, const char *detected_gpu);
#endif
