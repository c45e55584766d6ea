/* The measured run (bench without --plan): every strategy x workload executed on
 * the GPUs, measured, checked against `single`, and reported. The result types
 * are plain C so the reports (summary.c, trace_json.c) are tested on the CPU. */
#ifndef PB_RUN_H
#define PB_RUN_H
#include "../../base/check.h"
#include "../measure/metrics.h"
#include "../cli/options.h"
#include "../measure/trace.h"
#include "../../strategies/memory_model.h"

/* What one strategy x workload point measured, or why it failed. */
struct point_result {
    char strategy[PB_STRATEGY_NAME_LEN];
    struct workload w;             /* batch, seq, mode; microbatches as resolved by the strategy */
    int decode_tokens;             /* generate mode: greedy tokens after the prefill (0: prefill only) */
    int ok;                        /* 0: failed, skipped or interrupted, see reason */
    int skipped;                   /* 1: the combination cannot run (microbatches that do not divide
                                    * the batch): not run, not a failure; reason says why */
    int interrupted;               /* 1: not run, a signal stopped the sweep first */
    char reason[PB_ERROR_LEN];
    int n_devices;                 /* logical devices of the schedule */
    int ordinal[PB_MAX_DEVICES];   /* logical device -> CUDA ordinal */
    struct placement *placement;   /* owned; NULL if placing failed */
    char placement_summary[256];   /* "0:embed,0-15 1:16-31,head" */
    int stages, microbatches, steps;
    int iters;                     /* timed iterations: CUPTI activity collection paused */
    double *latency_ms;            /* owned: every timed iteration */
    double p50_ms, p90_ms, p99_ms, mean_ms;
    int profile_iters;             /* profiled iterations (CUPTI on): busy time, transfers, trace */
    double *profiled_ms;           /* owned: latency of every profiled iteration */
    double profiled_p50_ms;        /* p50 of those; NAN without profiled iterations */
    double cupti_overhead_pct;     /* (profiled p50 - timed p50) / timed p50 x 100; NAN if none */
    double tokens_per_s;           /* tokens processed (prefill) or generated (decode) per second */
    double speedup;                /* p50 of single / p50 of this point; NAN without a single run */
    struct iteration_metrics metrics;   /* mean over timed iterations */
    double bubble[PB_MAX_DEVICES];      /* pipeline: idle fraction per stage device */
    double gpipe_bound;                 /* (p-1)/(m+p-1); NAN for non-pipelines */
    double transfer_bytes, transfer_ms; /* all peer links, per iteration */
    double collective_bytes;       /* all-reduces and all-gathers per iteration, each call once, at
                                    * nccl-tests' size (all-gather: the gathered output) */
    double collective_busbw_gbps;  /* nccl-tests' bus bandwidth over every rank's NCCL time; NAN if none */
    int busy_known;
    uint64_t dropped;
    int logits_checked;            /* 1: compared with single's logits */
    int logits_match;              /* bit-identical (sequential, pipeline) or within tolerance (tp) */
    double max_abs_diff;
    double rel_error;              /* ||logits - single's|| / ||single's|| */
    int tokens_parted;             /* tp, hybrid in generate mode: greedy tokens other than single's
                                    * (another rounding order; the logits are then not compared) */
    double tolerance;              /* 0: bit for bit; else the bar on rel_error (tp, hybrid) */
    int graph;                     /* prefill or decode passes replayed from a CUDA graph */
    char logits_fnv1a[17];         /* FNV-1a 64 of the logits' bf16 bits (and greedy tokens), hex:
                                    * compares outputs across jobs (MPI vs one process) exactly */
    int predicted;                 /* 1: this row is the cost model's (bench --simulate), not measured */
    double predicted_ms;           /* --predict: the cost model's latency for this point; NAN if none */
    double prediction_error_pct;   /* (predicted - measured) / measured x 100; NAN if none */
    struct memory_plan memory;     /* predicted bytes per logical device; n_devices 0: not computed */
    struct kv_capacity capacity;   /* the largest batch x context the placement holds in its budgets */
    int memory_measured;           /* 1: measured_peak holds what the GPUs gave the executor */
    uint64_t measured_peak[PB_MAX_DEVICES];   /* per logical device: its GPU's memory in use at the
                                               * fullest moment sampled, less before the executor */
};

/* Where the run happened, for summary.json. */
struct run_env {
    int n_gpus;
    char gpu_name[PB_MAX_DEVICES][PB_GPU_NAME_LEN];
    uint64_t gpu_memory[PB_MAX_DEVICES];
    int driver_version, runtime_version, nccl_version, cublas_version, cupti_version;
    int peer[PB_MAX_DEVICES][PB_MAX_DEVICES];   /* 1: ordinal i can access j */
    int cupti_enabled;
    int profile_steps;             /* --profile-detail step: CUPTI timed whole graphs, not kernels */
    char cupti_note[256];          /* why CUPTI is off, when it is */
    char cupti_mode[48];           /* PB_CUPTI_MODE as applied ("gate,copies,ownzero"); empty: not a CUPTI run */
    char model[PB_MODEL_NAME_LEN];
    char command[2048];
    char started[32];              /* ISO 8601 UTC */
    int iters, warmup, profile_iters;
    char weights[16];              /* "random" (seeded), "safetensors", or "none" (predicted: no kernels ran) */
    char weights_dir[1024];        /* the safetensors folder, when weights is "safetensors" */
    uint64_t seed;                 /* of the random weights and the prompt */
};

void point_result_free(struct point_result *r);
/* A point the sweep did not run because of SIGINT/SIGTERM: status "interrupted". */
void point_result_interrupted(struct point_result *r, const char *strategy, const struct workload *w,
                              int decode_tokens);
/* "ok", "failed", "skipped" or "interrupted", as summary.csv and summary.json write it. */
const char *point_status(const struct point_result *r);
/* The point's strategy and workload in a file name: "pipeline-b8-s512-m8" (-gN: N
 * generated tokens; -mM: M microbatches, for strategies that take them). */
void point_tag(const struct point_result *r, char *buf, size_t len);
/* Driver, runtime, NCCL, cuBLAS and CUPTI versions and the start time (cuda_run.c:
 * it needs the CUDA libraries, so it is not in the CPU build's tests). */
void run_env_versions(struct run_env *env);

/* Reports: written under dir to a temporary name, then renamed. */
int summary_write_csv(const char *dir, const struct run_env *env, const struct point_result *r, int n);
int summary_write_json(const char *dir, const struct run_env *env, const struct point_result *r, int n);
/* The CSV columns in order, for docs and tests. */
extern const char *const summary_csv_columns[];

/* trace.json: Chrome trace events from every point's trace (traces[i] may be NULL). */
int trace_json_write(const char *path, const struct run_env *env, const struct point_result *r,
                     const struct trace *const *traces, int n);
/* dir/hta/<NN>-<point_tag>/rank-<d>.json: each point's activity on GPU d alone, the
 * trace of rank d as Holistic Trace Analysis reads a job (TraceAnalysis(trace_dir=...)). */
int trace_hta_write(const char *dir, const struct run_env *env, const struct point_result *r,
                    const struct trace *const *traces, int n);

/* The main job: run every strategy x workload on the GPUs, print the table,
 * write summary.csv, summary.json and trace.json into o->out_dir (created by the
 * caller). Returns 0 if every point ran and matched single, 1 otherwise. */
int run_measured(const struct options *o, const struct model_spec *m);
/* run/cuda_run.c: budgets for placement: free memory of each logical device's GPU,
 * split among the logical devices sharing it (--max-memory wins). */
int run_gpu_budgets(const struct options *o, const int *ordinal, int n, struct machine *mc);
#endif
