/* What bench --calibrate measured, and how it becomes a device profile. The
 * measuring is GPU code (cuda_calibrate.c); turning numbers into a profile is
 * plain C so that it is tested on the CPU. */
#ifndef PB_CALIBRATION_H
#define PB_CALIBRATION_H
#include "../strategies/strategy.h"
#include "device_profile.h"

/* Peer copies faster than this (GB/s, one way) cannot be PCIe Gen5 x16 (64 GB/s). */
#define CALIBRATION_NVLINK_GBPS 70.0

struct calibration {
    int n_gpus;
    char gpu[96];                      /* cudaDeviceProp.name of GPU 0 */
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
    char date[32];                     /* ISO 8601 UTC, for the sources */
};

/* The shipped profile whose GPU this is ("NVIDIA H200" -> "h200"), or NULL. */
const char *calibration_base_name(const char *gpu_name);

/* Build a profile from measurements: measured numbers replace the base profile's
 * (the slowest GPU's for per-GPU numbers), the base supplies what cannot be measured
 * (datasheet peaks, links not present here); with no base, peaks are set to the
 * measurements and say so. Every source field says which it is. */
int calibration_to_profile(const struct calibration *c, const struct device_profile *base,
                           struct device_profile *out);
#endif
