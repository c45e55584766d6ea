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
/* Predicted times of a sequential split, priced by the harness's cost model at the
 * run's device profile for one model and workload (strategies never see the model
 * of a GPU): optimal minimises their sum. Each returns PB_OK with *ms set, or PB_ERR
 * with a message. */
struct split_pricing {
    /* Modules [first, end) run as one stage on GPU `device`. */
    int (*stage_ms)(const struct split_pricing *sp, int first, int end, int device, double *ms);
    /* The activations' copy into module `at` from GPU `from` to GPU `to`. */
    int (*copy_ms)(const struct split_pricing *sp, int at, int from, int to, double *ms);
    void *ctx;                           /* the harness's: its model, workload, profile, cache */
};

struct machine {
    int gpus;                            /* N */
    uint64_t gpu_memory[PB_MAX_DEVICES]; /* budget per GPU in bytes */
    uint64_t cpu_memory;                 /* budget for host offload */
    enum device_map_policy policy;
    int budgets_from_user;               /* 1: from --max-memory; 0: read from the GPUs, and
                                            transformers keeps 10% back on a single GPU */
    int tp;                              /* hybrid: GPUs per pipeline stage (--tp D); 0: default */
    int virtual_stages;                  /* pipeline, hybrid: layer chunks per stage
                                            (--virtual-stages V); 0 or 1: one contiguous run */
    const struct split_pricing *pricing; /* optimal's measure; NULL: nominal work (module_work),
                                            copies free */
};

/* module -> device. For tensor parallel a module lives on a group of tp_degree
 * devices, sharded: group g is devices g * tp_degree .. (g + 1) * tp_degree - 1
 * (tp: one group of all n_devices; hybrid: one group per pipeline stage). */
struct placement {
    int n_modules;
    struct module modules[PB_MAX_MODULES];
    int device[PB_MAX_MODULES]; /* per module: GPU index or PB_DEVICE_CPU; tensor parallel: its group */
    int n_devices;           /* devices the schedule uses */
    int tensor_parallel;     /* 1: modules split over groups of tp_degree devices */
    int tp_degree;           /* tensor parallel: devices per group */
    int virtual_stages;      /* layer chunks per pipeline stage; >1: interleaved (chunk c of
                                stage s holds the layers of virtual stage c * stages + s) */
};

enum step_kind {
    STEP_EMBED,       /* token ids -> hidden states */
    STEP_LAYERS,      /* layers [layer, layer+count) on this device (tp: this rank's shard) */
    STEP_ATTENTION,   /* tp: attention half of one layer on this rank's heads */
    STEP_MLP,         /* tp: MLP half of one layer on this rank's columns */
    STEP_HEAD,        /* final norm + lm_head (tp: this rank's vocabulary slice) */
    STEP_COPY,        /* activations src -> dst device */
    STEP_ALLREDUCE,   /* one rank's part of a collective sum over its tp group's ranks */
    STEP_ALLGATHER    /* one rank's part of gathering its group's lm_head vocabulary slices */
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
    int group;               /* STEP_ALLREDUCE/ALLGATHER: the tp group the call spans
                                (schedule.group_of); its ranks are that group's devices */
    int rows;                /* tokens this step processes (microbatch sequences x seq) */
    int seq;                 /* new tokens per sequence (a decode pass: 1) */
    int context;             /* positions each sequence attends to once this step's tokens are in */
    int batch_offset;        /* first sequence of the microbatch within the batch */
    int batch;               /* sequences in the microbatch */
    uint64_t bytes;          /* COPY/ALLREDUCE/ALLGATHER/H2D: bytes per rank moved */
    int offloaded;           /* STEP_LAYERS/HEAD of cpu modules: weights streamed host->device */
    double flops;            /* compute steps: arithmetic for the cost model */
    double mem_bytes;        /* compute steps: memory traffic for the cost model */
    double flops_per_position, bytes_per_position;   /* decode template: growth of flops and
                                                        mem_bytes per extra context position */
    int n_deps;
    int deps[PB_MAX_DEPS];   /* indices of earlier steps this one waits for */
};

struct schedule {
    int n_steps, cap;
    struct step *steps;
    int n_devices;
    int streams_per_device;
    int microbatches;
    int stages;              /* pipeline stages (GPUs, or tp groups for hybrid) */
    int virtual_stages;      /* layer chunks per stage (interleaved: > 1) */
    int tp_world;            /* >1 for tensor parallel: ranks per group */
    int n_groups;            /* tp groups collectives span; 1: all devices (tp) */
    int group_of[PB_MAX_DEVICES];   /* device -> its group */
};

void schedule_init(struct schedule *s, int n_devices);
void schedule_free(struct schedule *s);
/* Append a step; returns its index or -1 when out of memory (message printed). */
int schedule_add(struct schedule *s, const struct step *st);
/* Convenience: append a copy of `bytes` from src to dst after `dep`. */
int schedule_add_copy(struct schedule *s, int src, int dst, uint64_t bytes, int microbatch, int dep);
/* Devices in tp group g, and a device's rank (position) within its group. */
int schedule_group_size(const struct schedule *s, int group);
int schedule_group_rank(const struct schedule *s, int device);
/* Groups of `degree` consecutive devices (device d in group d / degree). */
void schedule_set_groups(struct schedule *s, int degree);
/* "embed", "layers", "copy", ... for reports. */
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

/* One iteration as data: the prompt pass, then `tokens` greedy decode passes.
 * Every decode pass runs the same steps, so they are one template schedule (seq 1)
 * and a table of passes, each with its own position and context: a 512-token
 * generation of a 70B model on 8 GPUs holds two schedules and 513 small entries,
 * not 513 schedules. The template's steps carry pass 1's context; pass k adds k - 1
 * positions, and with them flops_per_position and bytes_per_position of work.
 * Between passes each sequence's greedy token travels from the head (or tp's
 * all-gather) that produced it to the embed that reads it: `feed` lists those
 * dependencies, so executors wait on data, not on what "decode" means. */
struct pass {
    int decode;              /* 0: the prompt schedule; 1: the decode template */
    int pos;                 /* position of the pass's first new token in every sequence */
    int context;             /* positions each sequence attends to at the pass's end */
};

/* A decode-template embed step waits for step `from` of the pass before it. */
struct token_feed {
    int embed, from;
};

struct program {
    struct schedule prompt;        /* the pass over the prompt (prefill) */
    struct schedule decode;        /* one greedy token; n_steps 0 without generation */
    int n_passes;                  /* 1 + tokens */
    struct pass *passes;           /* [n_passes]; passes[0] is the prompt */
    int batch, seq, tokens;        /* sequences, prompt tokens each, greedy tokens after it */
    int greedy;                    /* 1: each pass's heads end in the greedy argmax feeding the next */
    struct token_feed *feed[2];    /* embed waits of a decode pass after [0] the prompt, [1] a decode pass */
    int n_feed[2];
};

/* A strategy's plan for w with every step's seq and context set from w (the cost
 * model reads them): what callers use instead of st->plan. */
int schedule_plan(const struct strategy *st, const struct model_spec *m, const struct placement *p,
                  const struct workload *w, struct schedule *out);
/* Place nothing: plan p for w (the prompt) and, with tokens > 0, the decode template
 * and its passes; every step gets its seq and context. Returns PB_ERR with the
 * strategy's message when it cannot plan. */
int program_plan(const struct strategy *st, const struct model_spec *m, const struct placement *p,
                 const struct workload *w, int tokens, struct program *out);
void program_free(struct program *g);
/* The schedule pass k runs, and the feed its embed steps wait on (none for k = 0). */
const struct schedule *program_pass_schedule(const struct program *g, int k);
const struct token_feed *program_pass_feed(const struct program *g, int k, int *n);
/* Context of a step in pass k (its template context plus the pass's growth). */
int program_step_context(const struct program *g, int k, const struct step *st);
/* Streams per device over both schedules, and whether any step is a collective. */
int program_streams_per_device(const struct program *g);
int program_has_collectives(const struct program *g);

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
/* The same roofline, max(FLOPs / flops_per_s, bytes / bytes_per_s), at a named GPU's rates
 * (seconds): what --plan prints for the device profile it names. */
double module_roofline(const struct model_spec *m, const struct module *mod, const struct workload *w,
                       double flops_per_s, double bytes_per_s);
double placement_device_roofline(const struct model_spec *m, const struct placement *p, const struct workload *w,
                                 double flops_per_s, double bytes_per_s, double *per_device);
/* Physical pipeline stages of a placement in order (GPUs, or tp groups), each holding
 * virtual_stages chunks of layers; stage_device[s] is stage s's first device
 * (PB_DEVICE_CPU for accelerate's offload). Returns the count. */
int placement_stage_devices(const struct placement *p, int *stage_device);
/* Cut the layers into `chunks` contiguous non-empty runs minimising the largest run's
 * work (module_work), the embedding counted in the first run and norm + lm_head in the
 * last; first[k] is run k's first layer. Refuses more chunks than layers. */
int layer_chunks(const struct model_spec *m, const struct workload *w, int chunks, int *first,
                 const char *strategy);
/* Chunk k of `chunks` belongs to stage k % stages: modules of an interleaved (or, with
 * stages == chunks, contiguous) placement; embed on stage 0, norm and lm_head with the
 * last chunk. p must be placement_init'ed. */
void placement_assign_chunks(struct placement *p, const int *first, int chunks, int stages);
/* Microbatches a pipeline uses for a placement and workload (default 2 x stages). */
int pipeline_microbatches(const struct placement *p, const struct workload *w);
/* Contiguous modules per GPU in execution order, within each GPU's memory, by an exact
 * dynamic program: the split whose slowest GPU has the least nominal work
 * (module_work): the balance a pipeline's throughput needs. `who` names the strategy
 * in messages. */
int place_balanced_split(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                         const char *who, struct placement *out);
/* Refuse a batch that `microbatches` equal microbatches cannot split. */
int plan_check_microbatches(const struct workload *w, int microbatches);
/* The schedule of an interleaved sequential placement (pipeline --virtual-stages):
 * microbatches issued in Megatron's interleaved order (pipeline_order). */
int plan_interleaved(const struct model_spec *m, const struct placement *p, const struct workload *w,
                     int microbatches, struct schedule *out);
/* One unit of pipelined work: a microbatch through one chunk of one stage. */
struct pipeline_unit {
    int microbatch, chunk, stage;
};
/* Every (microbatch, chunk, stage) in an order the executors can issue: each stage runs
 * Megatron's interleaved forward order (chunk 0 of `stages` microbatches, then chunk 1
 * of the same ones, ...), and a unit comes after the unit it takes its input from.
 * out holds microbatches x virtual_stages x stages units. */
int pipeline_order(int stages, int virtual_stages, int microbatches, struct pipeline_unit *out);
/* One tensor-parallel group's share of a microbatch: its ranks are devices first ..
 * first + degree - 1. The tp_add_* functions append every rank's steps; last[r] is
 * rank r's latest step (-1: none), updated; *collective numbers calls schedule-wide. */
struct tp_group {
    int first, degree, group, stage;
    int microbatch, batch_offset, batch;
    int collectives;   /* 0: a one-GPU group needs no all-reduce */
};
int tp_add_embed(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                 int *last);
int tp_add_layer(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                 int layer, int *collective, int *last);
int tp_add_head(struct schedule *s, const struct model_spec *m, const struct workload *w, const struct tp_group *g,
                int *collective, int *last);
/* Refuse, naming the GPU and the numbers, a placement whose parameters exceed a budget. */
int placement_check_memory(const struct placement *p, const struct machine *mc, const char *strategy);
/* Parameter bytes per device and offloaded to cpu. */
void placement_device_params(const struct placement *p, uint64_t *per_device, uint64_t *cpu);
#endif
