/* The second executor: replays a schedule against a device profile as a
 * discrete-event simulation and writes the same activity records the GPU run
 * writes (marked predicted), so metrics and reports work unchanged.
 * The model and its formulas: docs/COST_MODEL.md. */
#ifndef PB_SIMULATE_H
#define PB_SIMULATE_H
#include "../../../models/model_spec.h"
#include "../../../strategies/strategy.h"
#include "device_profile.h"
#include "../../measure/trace.h"

/* Kernels the kernel core launches per prompt step, for the launch term of the
 * one-roofline model (profiles without "kernels"; kernels/llama_forward.cu):
 * attention = RMSNorm, QKV GEMM, rope, attention, output GEMM with the residual
 * fused; MLP = RMSNorm, gate/up GEMM, SwiGLU, down GEMM. */
#define SIM_KERNELS_EMBED 1
#define SIM_KERNELS_ATTENTION 5
#define SIM_KERNELS_MLP 4
#define SIM_KERNELS_LAYER (SIM_KERNELS_ATTENTION + SIM_KERNELS_MLP)
#define SIM_KERNELS_HEAD 2

/* Cost of single steps in nanoseconds (exported for tests and reports). */
/* Compute: with a model and a profile that has "kernels", the sum of the step's
 * kernels, each by its own roofline (sim_kernels.h), its prompt GEMMs at the tune
 * rows of a part of part_rows (sim_schedule_part_rows; 0: the step's own rows).
 * Otherwise one roofline:
 * max(flops / rate, mem_bytes / bandwidth) + kernels x launch overhead, flops and
 * mem_bytes from the step, or from model_spec.h when the step leaves them 0.
 * Offloaded steps add the host-to-device weight transfer (sim_h2d_ns) separately. */
double sim_compute_ns(const struct device_profile *p, const struct model_spec *m,
                      const struct step *st, int tp_world, int part_rows);
/* GPU-to-GPU copy over the profile's peer link: latency + bytes / peer bandwidth. */
double sim_copy_ns(const struct device_profile *p, uint64_t bytes);
/* Host-to-device over PCIe: latency + bytes / bandwidth. */
double sim_h2d_ns(const struct device_profile *p, uint64_t bytes);
/* Ring all-reduce of `bytes` (each rank's buffer) over n ranks, once all have arrived:
 * launch + 2(n-1) x step latency + 2(n-1)/n x bytes / bus bandwidth. 0 for n == 1. */
double sim_allreduce_ns(const struct device_profile *p, uint64_t bytes, int n);
/* Peer-memory all-reduce (kernels/allreduce.h) of `bytes` per rank over n ranks, read
 * at the profile's peer_allreduce.read_gbps (where it has none: the peer link's
 * copy bandwidth and latency; ranks on one GPU: its memory bandwidth):
 * one-shot launch + latency + (n-1) x bytes / read; two-shot launch + 2 latencies +
 * 2(n-1)/n x bytes / read. 0 for n == 1. */
double sim_peer_allreduce_ns(const struct device_profile *p, enum allreduce_algo algo, uint64_t bytes, int n,
                             int one_gpu);
/* Peer all-gather: every rank copies the n slices into place, one copy each. */
double sim_peer_allgather_ns(const struct device_profile *p, uint64_t bytes, int n, int one_gpu);
/* Ring all-gather of `bytes` per rank: launch + (n-1) x step latency + (n-1) x bytes / bus bw. */
double sim_allgather_ns(const struct device_profile *p, uint64_t bytes, int n);

/* Simulate `iterations` back-to-back forward passes of `s` (each starts when the
 * previous one has ended, as the executor synchronises between them). Initialises
 * *out (the caller frees it with trace_free) with REC_KERNEL / REC_COMM / REC_MEMCPY
 * records per step and a REC_RANGE per iteration; out->predicted = 1. *latency_ms
 * gets the time of one iteration. Returns -1 with a message if the schedule cannot
 * finish (a dependency cycle, a collective missing a rank). */
int simulate_schedule(const struct device_profile *prof, const struct model_spec *m,
                      const struct schedule *s, int iterations, struct trace *out,
                      double *latency_ms);
/* The same where logical device d runs on CUDA ordinal ordinal[d]: devices on one
 * ordinal share its compute and copy engines, and copies between them are
 * device-to-device in its memory (a measured --devices 0,0 run). */
int simulate_schedule_on(const struct device_profile *prof, const struct model_spec *m,
                         const struct schedule *s, const int *ordinal, int iterations, struct trace *out,
                         double *latency_ms);
/* The same with tp sums priced as --allreduce `algo` runs them (auto: by size from the
 * profile's table, as the CUDA executor picks; the two above price NCCL's ring). */
int simulate_schedule_allreduce(const struct device_profile *prof, const struct model_spec *m,
                                const struct schedule *s, const int *ordinal, enum allreduce_algo algo,
                                int iterations, struct trace *out, double *latency_ms);
/* One serving step on parts sized for part_rows rows (the program planned for every
 * slot: sim_schedule_part_rows of its prompt; 0: the step's own), tp sums as `algo`.
 * The schedules above run on parts sized for themselves (sim_schedule_part_rows). */
int simulate_step_on_parts(const struct device_profile *prof, const struct model_spec *m, const struct schedule *s,
                           const int *ordinal, enum allreduce_algo algo, int part_rows, struct trace *out,
                           double *latency_ms);
/* Pass k of a program, once: its schedule with every step at the pass's context
 * (the decode template's work grown by the positions past pass 1); tp sums as `algo`. */
int simulate_pass(const struct device_profile *prof, const struct model_spec *m, const struct program *g,
                  int k, const int *ordinal, enum allreduce_algo algo, struct trace *out, double *latency_ms);
#endif
