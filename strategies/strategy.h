/* The strategy interface: a placement of modules on devices and a schedule of
 * steps on device streams. Plain C, no CUDA: everything here is testable on a CPU. */
#ifndef PB_STRATEGY_H
#define PB_STRATEGY_H
#include "../base/limits.h"
#include "../models/model_spec.h"

#define PB_DEVICE_CPU (-1)   /* accelerate's "cpu": weights in host memory, streamed */

enum run_mode { MODE_PREFILL, MODE_DECODE };

/* What one forward pass computes. */
struct workload {
    int batch;               /* sequences */
    int seq;                 /* new tokens per sequence in this pass (decode: 1) */
    int context;             /* positions each sequence attends to (prefill: seq; decode: kv + 1) */
    int microbatches;        /* pipeline: 0 means the strategy's default */
    enum run_mode mode;
    enum dtype dtype;
};

/* accelerate policies for the auto strategy. */
enum device_map_policy { MAP_AUTO, MAP_BALANCED, MAP_BALANCED_LOW_0, MAP_SEQUENTIAL };

/* Inputs a strategy may use to place modules. */
struct machine {
    int gpus;                            /* N */
    uint64_t gpu_memory[PB_MAX_DEVICES]; /* budget per GPU in bytes */
    uint64_t cpu_memory;                 /* budget for host offload */
    enum device_map_policy policy;
    int budgets_from_user;               /* 1: from --max-memory; 0: read from the GPUs, and
                                            transformers keeps 10% back on a single GPU */
};

/* module -> device. For tensor parallel every module lives on all N devices, sharded. */
struct placement {
    int n_modules;
    struct module modules[PB_MAX_MODULES];
    int device[PB_MAX_MODULES]; /* per module: GPU index or PB_DEVICE_CPU; -2 = sharded over all */
    int n_devices;           /* devices the schedule uses */
    int tensor_parallel;     /* 1: every module split over n_devices */
};

enum step_kind {
    STEP_EMBED,       /* token ids -> hidden states */
    STEP_LAYERS,      /* layers [layer, layer+count) on this device (tp: this rank's shard) */
    STEP_ATTENTION,   /* tp: attention half of one layer on this rank's heads */
    STEP_MLP,         /* tp: MLP half of one layer on this rank's columns */
    STEP_HEAD,        /* final norm + lm_head (tp: this rank's vocabulary slice) */
    STEP_COPY,        /* activations src -> dst device */
    STEP_ALLREDUCE,   /* one rank's part of a collective sum over all tp ranks */
    STEP_ALLGATHER    /* one rank's part of gathering lm_head vocabulary slices */
};

struct step {
    enum step_kind kind;
    int device;              /* device index in the schedule (0..n_devices-1) */
    int stream;              /* stream index on that device */
    int microbatch;
    int stage;               /* pipeline stage (sequential: the device's position), else 0 */
    int layer, count;        /* layers covered: [layer, layer + count) */
    int src, dst;            /* STEP_COPY: devices */
    int collective;          /* STEP_ALLREDUCE/ALLGATHER: id shared by the ranks of one call */
    int rows;                /* tokens this step processes (microbatch sequences x seq) */
    int batch_offset;        /* first sequence of the microbatch within the batch */
    int batch;               /* sequences in the microbatch */
    uint64_t bytes;          /* COPY/ALLREDUCE/ALLGATHER/H2D: bytes per rank moved */
    int offloaded;           /* STEP_LAYERS/HEAD of cpu modules: weights streamed host->device */
    double flops;            /* compute steps: arithmetic for the cost model */
    double mem_bytes;        /* compute steps: memory traffic for the cost model */
    int n_deps;
    int deps[PB_MAX_DEPS];   /* indices of earlier steps this one waits for */
};

struct schedule {
    int n_steps, cap;
    struct step *steps;
    int n_devices;
    int streams_per_device;
    int microbatches;
    int stages;
    int tp_world;            /* >1 for tensor parallel */
};

void schedule_init(struct schedule *s, int n_devices);
void schedule_free(struct schedule *s);
/* Append a step; returns its index or -1 when out of memory (message printed). */
int schedule_add(struct schedule *s, const struct step *st);
/* Convenience: append a copy of `bytes` from src to dst after `dep`. */
int schedule_add_copy(struct schedule *s, int src, int dst, uint64_t bytes, int microbatch, int dep);
/* 1 for a rank's part of a collective (all-reduce, all-gather). */
int step_is_collective(const struct step *st);
/* "embed", "layers", "copy", "allreduce", ... for plan.json and reports. */
const char *step_kind_name(enum step_kind k);
/* A step's label, the same in every executor's trace and NVTX ranges: "embed",
 * "layers 0-15" ("layer 3" for one), "attention 3", "mlp 3", "head", "copy 0->1",
 * "allreduce 3", "allgather 3"; " mbK" follows when the schedule has microbatches. */
void step_label(const struct schedule *s, const struct step *st, char *buf, size_t len);
/* Per-device FLOPs of a schedule (sum over its compute steps). */
void schedule_device_flops(const struct schedule *s, double *out);

struct strategy {
    const char *name;
    const char *help;   /* one line for --help */
    /* Assign modules to devices; print the reason and return -1 if impossible. */
    int (*place)(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                 struct placement *out);
    /* Turn a placement and workload into a schedule. */
    int (*plan)(const struct model_spec *m, const struct placement *p, const struct workload *w,
                struct schedule *out);
    int takes_microbatches;   /* 1: a sweep over --microbatches plans it once per count */
};

/* Whether a sweep point with microbatch index k > 0 applies to the named strategy. */
int strategy_takes_microbatches(const char *name);

/* Registry: NULL-terminated list, and lookup by name. */
extern const struct strategy *const strategies[];
const struct strategy *strategy_find(const char *name);

/* Shared helpers for strategies. */
void placement_init(struct placement *p, const struct model_spec *m, enum dtype dt, int n_devices);
/* The device a module placed on `device` runs on: cpu-offloaded modules execute on
 * GPU 0, as accelerate's hooks move their weights to the main device. */
int placement_exec_device(int device);
/* Layers [first, last) on each device: a sequential (non-tp) placement's stages in order.
 * Returns the number of stages; stage_device[i] is the device of stage i. */
int placement_stages(const struct placement *p, int *stage_device, int *stage_first, int *stage_count);
/* The schedule every sequential placement shares: embed, layer runs, copies at device
 * boundaries, head; microbatches > 1 gives the GPipe order. */
int plan_sequential(const struct model_spec *m, const struct placement *p, const struct workload *w,
                    int microbatches, struct schedule *out);
/* plan for the sequential strategies (single, naive, auto, optimal): the whole
 * batch walks the placement once, as the seed script and accelerate run it. */
int plan_one_pass(const struct model_spec *m, const struct placement *p, const struct workload *w,
                  struct schedule *out);
/* Work per device (FLOPs) of a placement for a workload, used by optimal and reports. */
double module_flops(const struct model_spec *m, const struct module *mod, const struct workload *w);
double module_mem_bytes(const struct model_spec *m, const struct module *mod, const struct workload *w);
/* Roofline time of a module on a nominal GPU: the measure optimal minimises. */
double module_work(const struct model_spec *m, const struct module *mod, const struct workload *w);
/* Work per device of a placement; returns the largest (the slowest GPU). */
double placement_device_work(const struct model_spec *m, const struct placement *p,
                             const struct workload *w, double *per_device);
/* Microbatches the pipeline uses for a placement and workload (default 2 x stages). */
int pipeline_microbatches(const struct placement *p, const struct workload *w);
/* Refuse, naming the GPU and the numbers, a placement whose parameters exceed a budget. */
int placement_check_memory(const struct placement *p, const struct machine *mc, const char *strategy);
/* Parameter bytes per device and offloaded to cpu. */
void placement_device_params(const struct placement *p, uint64_t *per_device, uint64_t *cpu);
#endif
