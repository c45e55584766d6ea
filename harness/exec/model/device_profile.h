/* A device profile: what the cost model knows about one GPU kind and the links
 * between GPUs of one machine. Profiles live in profiles/<name>.json; every
 * number carries its source (a datasheet or a measurement), see docs/COST_MODEL.md.
 * Units: GB/s = 10^9 bytes/s, TFLOP/s = 10^12 FLOP/s, times in microseconds. */
#ifndef PB_DEVICE_PROFILE_H
#define PB_DEVICE_PROFILE_H
#include <stdint.h>
#include "../../../base/limits.h"
#include "../../../kernels/allreduce_algo.h"

#define PB_PROFILE_SOURCE 320

enum link_kind { LINK_NVLINK, LINK_PCIE, LINK_KINDS };

struct link_profile {
    int present;                  /* 0: the GPU has no such link (e.g. no NVLink on L40S) */
    double gbps;                  /* achievable bandwidth of one copy, per direction */
    double peer_gbps;             /* GPU-to-GPU copies over this link (optional in JSON: gbps);
                                   * lower where P2P is off and copies bounce through the host */
    double peak_gbps;             /* datasheet bandwidth per direction */
    double latency_us;            /* fixed cost of one copy before bytes flow */
    char source[PB_PROFILE_SOURCE];
};

/* Ring all-reduce: t = 2(N-1)/N * bytes / bus_gbps + 2(N-1) * step_latency_us,
 * plus one kernel launch. bus_gbps is nccl-tests' "busbw", so a measured busbw
 * drops in unchanged. */
struct allreduce_profile {
    double bus_gbps;
    double step_latency_us;
    char source[PB_PROFILE_SOURCE];
};

/* The peer-memory all-reduce (kernels/allreduce.h), optional in JSON ("peer_allreduce"):
 * one-shot t = launch + latency_us + (n-1) x bytes / read_gbps; two-shot
 * t = launch + 2 x latency_us + 2(n-1)/n x bytes / read_gbps (docs/COST_MODEL.md).
 * The crossovers are what --allreduce auto picks by: one-shot up to
 * oneshot_max_bytes, two-shot up to twoshot_max_bytes, NCCL above. */
struct peer_allreduce_profile {
    int present;
    double read_gbps;             /* a kernel's loads from peer memory, per GPU */
    double latency_us;            /* one flag barrier: a store to every peer and the wait for theirs */
    uint64_t oneshot_max_bytes, twoshot_max_bytes;
    char source[PB_PROFILE_SOURCE];
};

/* Logical devices sharing one GPU (--devices 0,0), optional in JSON ("shared_gpu"),
 * from bench --calibrate's two-rank peer all-reduce on GPU 0 (cuda_calibrate_allreduce.c).
 * There the ranks meet through events, each phase is a launch per rank, and every
 * rank's traffic is the one GPU's: one-shot t = oneshot_us + N(N+3) x bytes / gbps
 * (each rank stages its input, read and write, then reads all N stages and writes the
 * sum), two-shot t = twoshot_us + (5N-1) x bytes / gbps (docs/COST_MODEL.md). */
struct shared_gpu_profile {
    int present;
    double oneshot_us, twoshot_us;   /* one call's fixed cost on the GPU: launches and event waits */
    double gbps;                     /* the phases' traffic, bytes read plus written, on the one GPU */
    char source[PB_PROFILE_SOURCE];
};

/* Compute of logical devices sharing one GPU, optional in JSON ("shared_gpu_compute"):
 * from bench --calibrate's pairs (the same layer on each of two parts of GPU 0, a
 * stream each, in one graph) against one part alone, at the rows of each timed layer
 * (decode batches, prompt batch x seq). `slowdown` = the pair's time over twice one
 * part's: what interleaving two logical devices' kernels on one GPU costs beyond
 * running them one after the other. `layers` for whole layers (pipeline, naive
 * stages), `tp` for tensor-parallel ranks of two (half the heads and MLP columns
 * each). The simulator prices a compute step that overlaps another logical device's
 * on its GPU at the slowdown for its rows. */
#define PB_SHARED_POINTS 8
struct shared_slowdown_table {
    int n;
    struct {
        int rows;
        double slowdown;
    } point[PB_SHARED_POINTS];    /* rows rising */
};
/* Whole layers of `rows` rows on parts whose short-prompt GEMM algorithms were timed
 * at tune_rows > rows (a pipeline stage sized for the whole batch running a
 * microbatch: kernels/gemm_class.h), points rising by (tune_rows, rows). */
struct shared_tuned_table {
    int n;
    struct {
        int rows, tune_rows;
        double slowdown;
    } point[PB_SHARED_POINTS];
};
struct shared_compute_profile {
    struct shared_slowdown_table layers, tp;   /* "points", "tp_points" */
    struct shared_tuned_table tuned_above;     /* "tuned_above_points", optional */
    char source[PB_PROFILE_SOURCE];
};
/* slowdown at `rows`: linear in log(rows) between points, the end points beyond; 1 with no points. */
double shared_slowdown_at(const struct shared_slowdown_table *t, double rows);
/* Whole layers of `rows` rows on a part tuned at tune_rows: where tune_rows > rows and
 * tuned_above has points of that tune_rows, those points and the layers table's value
 * at tune_rows as a last point there (a call of tune_rows rows is the tuned call),
 * linear in log(rows), the first point's value below them; otherwise the layers
 * table at rows (shared_slowdown_at), as a profile without tuned_above_points. */
double shared_layer_slowdown_at(const struct shared_compute_profile *c, double rows, int tune_rows);

/* Kernel efficiency at one row count M (tokens of one call): the fraction of the
 * profile's GEMM rate (compute) and copy bandwidth (memory) a kernel reached there.
 * Both come from one timing, so max(flops / (rate x compute), bytes / (bw x memory))
 * gives back the measured time at that M; between points they are interpolated. */
struct efficiency_point {
    int rows;
    double compute;               /* of bf16_tflops; 1 where only bandwidth was measured */
    double memory;                /* of hbm_gbps, counting weights plus activations in and out */
};

#define PB_EFFICIENCY_POINTS 8

/* The same for a prompt GEMM of `rows` rows on a part whose short-prompt algorithms
 * were timed at tune_rows > rows (kernels/gemm_class.h): a pipeline stage or serving
 * part sized for the whole batch runs its smaller calls with the algorithms chosen
 * for its own rows, which can be far from the best tile at the call's rows. */
struct tuned_efficiency_point {
    int rows, tune_rows;
    double compute, memory;
};
#define PB_KERNELS_SOURCE 2048

/* What the simulator needs to price each kernel of a layer by its own roofline
 * (docs/COST_MODEL.md). Absent in a profile: the whole step is one roofline at the
 * profile's rates, as before per-kernel pricing. */
struct kernel_profile {
    int present;
    int n_gemm;                   /* cuBLASLt GEMMs of prompts (prefill), by M */
    struct efficiency_point gemm[PB_EFFICIENCY_POINTS];
    int n_gemv;                   /* the kernel core's GEMV of one-token steps (decode), by rows */
    struct efficiency_point gemv[PB_EFFICIENCY_POINTS];
    int n_gemm_tuned_above;       /* optional ("gemm_tuned_above"): 0, prompt calls take gemm at their rows */
    struct tuned_efficiency_point gemm_tuned_above[PB_EFFICIENCY_POINTS];   /* rising by (tune_rows, rows) */
    double attention_tflops;      /* prefill flash attention, causal FLOPs per second */
    double memory_efficiency;     /* small kernels and decode attention, of hbm_gbps */
    char source[PB_KERNELS_SOURCE];
};

struct device_profile {
    char name[64];                /* short name, e.g. "h200" */
    char gpu[PB_GPU_NAME_LEN];               /* product name, e.g. "NVIDIA H200 SXM 141GB" */
    char path[512];               /* file it was loaded from (for messages) */
    int measured;                 /* 1: written by bench --calibrate on real GPUs */

    uint64_t memory_bytes;        /* device memory as nvidia-smi reports it */
    char memory_source[PB_PROFILE_SOURCE];

    double bf16_tflops;           /* achievable dense bf16 GEMM rate (cuBLAS, large square) */
    double bf16_peak_tflops;      /* datasheet dense rate (no sparsity) */
    char gemm_source[PB_PROFILE_SOURCE];

    double hbm_gbps;              /* achievable, counting bytes read plus bytes written */
    double hbm_peak_gbps;         /* datasheet */
    char hbm_source[PB_PROFILE_SOURCE];

    double launch_us;             /* per kernel on the GPU timeline, back to back inside a CUDA graph */
    char launch_source[PB_PROFILE_SOURCE];

    enum link_kind peer_link;     /* what carries GPU-to-GPU copies in this machine */
    struct link_profile link[LINK_KINDS];  /* host-to-device always uses LINK_PCIE */
    struct allreduce_profile allreduce;
    struct peer_allreduce_profile peer_allreduce;
    struct shared_gpu_profile shared_gpu;   /* "shared_gpu" in JSON, optional */
    struct shared_compute_profile shared_compute;   /* "shared_gpu_compute" in JSON, optional */
    struct kernel_profile kernels;  /* per-kernel efficiencies ("kernels" in JSON, optional) */
};

/* Efficiency at `rows` from a table sorted by rows: linear in log(rows) between
 * points, the end point's value beyond them. */
double efficiency_at(const struct efficiency_point *t, int n, double rows, int memory);
/* A prompt GEMM's fraction at `rows` rows on a part tuned at tune_rows (0: at its own
 * rows): where tune_rows > rows and gemm_tuned_above has points of that tune_rows,
 * those points and the gemm table's value at tune_rows as a last point there, linear
 * in log(rows), the first point's value below them; otherwise efficiency_at of the
 * gemm table, which is all a profile without gemm_tuned_above gives. */
double gemm_efficiency_at(const struct kernel_profile *k, double rows, int tune_rows, int memory);

const char *link_kind_name(enum link_kind k);

/* The crossovers --allreduce auto picks by (known = 0 where the profile has no peer_allreduce). */
struct allreduce_table device_profile_allreduce_table(const struct device_profile *p);

/* Load a profile: a name ("h200" -> profiles/h200.json, looked up in the current
 * directory, then beside the executable and its parent) or a path to a .json file.
 * On failure prints "<file>: <field>: <problem>" and returns -1. */
int device_profile_load(const char *name_or_path, struct device_profile *out);

/* Parse a profile from JSON text; `origin` names the text in messages. */
int device_profile_parse(const char *json, const char *origin, struct device_profile *out);

/* Check the values of a filled profile (positive rates, achievable <= peak...). */
int device_profile_validate(const struct device_profile *p, const char *origin);

/* Write a profile as JSON (to a temporary name, then renamed). */
int device_profile_write(const struct device_profile *p, const char *path);
#endif
