/* What bench --calibrate measured, and how it becomes a device profile. The
 * measuring is GPU code (cuda_calibrate.c); turning numbers into a profile is
 * plain C so that it is tested on the CPU. */
#ifndef PB_CALIBRATION_H
#define PB_CALIBRATION_H
#include "../../../strategies/strategy.h"
#include "device_profile.h"

/* Peer copies faster than this (GB/s, one way) cannot be PCIe Gen5 x16 (64 GB/s). */
#define CALIBRATION_NVLINK_GBPS 70.0

/* Linear-layer shapes timed for the kernel efficiencies: [M, K] x [N, K]^T for a
 * 4096 x 4096 weight (Llama-2-7B's q/o projections; its other weights differ by
 * at most 2.7x in one dimension) at the row counts prompts and batches give. */
#define CALIBRATION_SHAPES 5
#define CALIBRATION_SHAPE_N 4096
#define CALIBRATION_SHAPE_K 4096
extern const int calibration_shape_rows[CALIBRATION_SHAPES];   /* 1, 16, 128, 512, 4096 */

/* Message sizes the peer all-reduce is timed at, against NCCL (2 or more GPUs). */
#define CALIBRATION_AR_SIZES 6
extern const uint64_t calibration_ar_bytes[CALIBRATION_AR_SIZES];   /* 8 KiB .. 32 MiB */
enum { CALIBRATION_AR_ONESHOT, CALIBRATION_AR_TWOSHOT, CALIBRATION_AR_NCCL, CALIBRATION_AR_ALGOS };
/* Decode steps timed for the GEMV efficiencies: one layer of the model through the
 * kernel core (llama_layers: its own decode kernels at the model's own GEMV shapes,
 * the GEMV at one sequence, its tensor-core decode path above), at these batches,
 * attending to CALIBRATION_DECODE_CONTEXT positions. */
#define CALIBRATION_DECODE_POINTS 3
#define CALIBRATION_DECODE_CONTEXT 192
extern const int calibration_decode_batch[CALIBRATION_DECODE_POINTS];   /* 1, 4, 16 */

/* Prompt layers timed the same way, for the GEMM table at the row counts the
 * kernel core's own algorithm choice serves (batch x seq: 1 x 128, 4 x 128, 8 x 512). */
#define CALIBRATION_PROMPT_POINTS 3
extern const int calibration_prompt_batch[CALIBRATION_PROMPT_POINTS];   /* 1, 4, 8 */
extern const int calibration_prompt_seq[CALIBRATION_PROMPT_POINTS];     /* 128, 128, 512 */

/* Prompt layers timed on a part sized (and so tuned) for more rows than the call has,
 * as a pipeline stage sized for the whole batch runs each microbatch: batch x seq
 * tokens on a part of max_rows calibration_tuned_part_rows, whose short-prompt GEMM
 * algorithms are timed at gemm_tune_rows(max_rows) (kernels/gemm_class.h). Points
 * rising by (tune rows, rows), as the profile's gemm_tuned_above table. */
#define CALIBRATION_TUNED_POINTS 3
extern const int calibration_tuned_batch[CALIBRATION_TUNED_POINTS];       /* 1, 1, 2 */
extern const int calibration_tuned_seq[CALIBRATION_TUNED_POINTS];         /* 128, 128, 128 */
extern const int calibration_tuned_part_rows[CALIBRATION_TUNED_POINTS];   /* 256, 512, 512 */

struct calibration {
    int n_gpus;
    char gpu[PB_GPU_NAME_LEN];                   /* cudaDeviceProp.name of GPU 0 */
    uint64_t memory_bytes;             /* smallest total memory of the GPUs */
    double gemm_tflops[PB_MAX_DEVICES];    /* cuBLAS bf16 8192^3 per GPU */
    double copy_gbps[PB_MAX_DEVICES];      /* device-to-device copy, bytes read + written */
    double launch_us;                  /* per small operation, back to back on one stream */
    double peer_gbps[PB_MAX_DEVICES][PB_MAX_DEVICES];  /* one way i -> j; 0 if not measured */
    double peer_latency_us;            /* median small peer copy */
    int peer_access;                   /* 1: every pair could enable P2P access */
    double h2d_gbps, h2d_latency_us;   /* pinned host -> GPU 0 */
    double allreduce_bus_gbps;         /* NCCL, large message, nccl-tests bus bandwidth */
    double allreduce_small_us;         /* NCCL, small message: latency dominated */
    uint64_t allreduce_bytes;          /* the large message's size */
    double shape_us[CALIBRATION_SHAPES];   /* cuBLASLt bf16 GEMM per call, back to back in a CUDA
                                            * graph, weights rotated past L2, GPU 0; 0: not measured */
    double graph_launch_us;            /* per tiny kernel back to back inside a CUDA graph, GPU 0 */
    double ar_us[CALIBRATION_AR_ALGOS][CALIBRATION_AR_SIZES];   /* bf16 all-reduce per call, host wall
                                                                 * time; 0: not measured */
    double shared_ar_us[2][2];         /* [one-shot, two-shot][8 KiB, 32 MiB]: two logical ranks on
                                        * GPU 0, event-synchronised peer all-reduce, GPU time per
                                        * call with 50 calls queued ahead; 0: not measured */
    struct model_spec decode_model;    /* the model whose decode layer was timed */
    double decode_layer_us[CALIBRATION_DECODE_POINTS];   /* one layer, one token per sequence, back to
                                                          * back in a CUDA graph, GPU 0; 0: not measured */
    double prompt_layer_us[CALIBRATION_PROMPT_POINTS];   /* one layer over a prompt, likewise */
    /* The same layers on two parts of GPU 0, one per stream, interleaved in one graph:
     * time per pair of layers (one on each part); 0: not measured. */
    double decode_pair_us[CALIBRATION_DECODE_POINTS];
    double prompt_pair_us[CALIBRATION_PROMPT_POINTS];
    /* Tensor-parallel rank 0 of 2 (its attention and MLP halves) alone, and ranks 0 and 1
     * interleaved the same way (per pair); 0: not measured. */
    double decode_tp_us[CALIBRATION_DECODE_POINTS], decode_tp_pair_us[CALIBRATION_DECODE_POINTS];
    double prompt_tp_us[CALIBRATION_PROMPT_POINTS], prompt_tp_pair_us[CALIBRATION_PROMPT_POINTS];
    /* Prompt layers on parts tuned above their rows (calibration_tuned_*), one part
     * alone and two interleaved as above (per pair); 0: not measured. */
    double tuned_layer_us[CALIBRATION_TUNED_POINTS], tuned_pair_us[CALIBRATION_TUNED_POINTS];
    char date[32];                     /* ISO 8601 UTC, for the sources */
};

/* The shipped profile whose GPU this is ("NVIDIA H200" -> "h200"), or NULL. */
const char *calibration_base_name(const char *gpu_name);

/* Build a profile from measurements: measured numbers replace the base profile's
 * (the slowest GPU's for per-GPU numbers), the base supplies what cannot be measured
 * (datasheet peaks, links not present here); with no base, peaks are set to the
 * measurements and say so. Every source field says which it is. */
/* The GEMM efficiency table from the timed shapes at the measured GEMM and copy
 * rates (per point: achieved TFLOP/s over rate, achieved GB/s over bandwidth, after
 * one launch is taken off, since the simulator adds it back), then lifted: a point's
 * non-binding fraction only bounds it from below, so it takes the nearest point's
 * binding value where that is higher, which leaves the time at every measured point
 * unchanged and keeps interpolation between a memory-bound and a compute-bound point
 * from being slow on both counts. Returns the number of points (0: none measured). */
int calibration_gemm_table(const struct calibration *c, double tflops, double gbps, double launch_us,
                           struct efficiency_point *out);

/* The peer_allreduce section from ar_us: latency = the 8 KiB one-shot less one
 * launch; read_gbps = (N-1) x the largest size / (its one-shot less launch and
 * latency); oneshot_max_bytes = the largest size up to which one-shot is never slower
 * than two-shot, twoshot_max_bytes the largest up to which a peer one is never slower
 * than NCCL (at least oneshot_max_bytes). PB_ERR (no message) when not measured. */
int calibration_peer_allreduce(const struct calibration *c, double launch_us, struct peer_allreduce_profile *out);
/* The GEMV efficiency table from the timed decode layers: per batch B, the memory
 * fraction m at which the simulator's layer (sim_attention_half_ns + sim_mlp_half_ns
 * of profile p, whose other kernels keep their own pricing) takes the measured time.
 * The linears are memory-bound at these rows, so the layer's time is affine in 1/m
 * and m follows from two evaluations. A point whose other kernels alone already
 * exceed the measurement is left out. Returns the number of points (0: none). */
int calibration_gemv_table(const struct calibration *c, const struct device_profile *p,
                           struct efficiency_point *out);

/* The GEMM table's points at the prompt layers' rows, scaled (compute and memory
 * fractions alike) so the simulator's prompt layer takes the measured time: the time
 * is affine in 1 / scale, as for the GEMV. Points of other rows stay; a layer whose
 * rows have no point in the table, or that needs a fraction outside (0, 1.2], is left
 * out. Updates t (n points) in place; returns how many points were scaled. */
int calibration_scale_gemm_table(const struct calibration *c, const struct device_profile *p,
                                 struct efficiency_point *t, int n);

/* The gemm_tuned_above table from the layers on parts tuned above their rows: per
 * point, the profile's gemm fractions at the call's rows (p's table, after
 * calibration_scale_gemm_table) scaled, compute and memory alike, until the
 * simulator's prompt layer at those tune rows takes the measured time (affine in
 * 1 / scale, as above). A point that cannot be explained, or needs a fraction
 * outside (0, 1.2], is left out. Returns the number of points (0: none). */
int calibration_tuned_gemm_table(const struct calibration *c, const struct device_profile *p,
                                 struct tuned_efficiency_point *out);

/* The shared_gpu section from shared_ar_us: the traffic rate from the two one-shot
 * sizes (gbps = 10 x (32 MiB - 8 KiB) / (t(32 MiB) - t(8 KiB)), two ranks moving
 * n(n + 3) = 10 times the message), each algorithm's fixed cost its 8 KiB time less
 * that traffic. PB_ERR (no message) when not measured or not increasing with size. */
int calibration_shared_gpu(const struct calibration *c, struct shared_gpu_profile *out);

/* The shared_gpu_compute tables: at each timed layer's rows (decode: batch; prompt:
 * batch x seq), the pair's measured time over twice one layer as profile p's simulator
 * prices it (sim_attention_half_ns + sim_mlp_half_ns, tp world 1 or 2: the factor that
 * makes the simulator's two overlapping layers take the measured pair), for whole
 * layers (points) and tensor-parallel ranks of 2 (tp_points), rows rising, points not
 * measured left out; the same for the layers on parts tuned above their rows
 * (tuned_above_points, each layer priced at its tune rows).
 * Where p cannot price kernels, the measured single part instead.
 * PB_ERR (no message) when no point was measured. */
int calibration_shared_compute(const struct calibration *c, const struct device_profile *p,
                               struct shared_compute_profile *out);

int calibration_to_profile(const struct calibration *c, const struct device_profile *base,
                           struct device_profile *out);
/* Random bf16 bits in [-1, 1) (xorshift, seeded): calibration never times a GEMM on
 * zeros, which runs faster than real data. */
void calibration_fill_random_bf16(uint16_t *h, size_t n, uint64_t seed);
#endif
