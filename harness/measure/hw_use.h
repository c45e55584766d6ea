/* How far each GPU is from its hardware (DESIGN.md's MBU / MFU, as vLLM's MFU
 * metrics and Holistic Trace Analysis's counters report them): the bytes and
 * FLOPs of a GPU's compute steps over the window, against the measured copy rate
 * and GEMM rate of the device profile. */
#ifndef PB_HW_USE_H
#define PB_HW_USE_H
#include "metrics.h"

/* Arithmetic and memory traffic per device of one iteration. */
struct step_work {
    int n_devices;
    double flops[PB_MAX_DEVICES];
    double bytes[PB_MAX_DEVICES];
};

/* Add `times` passes of schedule s: its compute steps' flops and mem_bytes per device
 * (copies and collectives move bytes over links, not through the GPU's memory roofline). */
void step_work_add(struct step_work *w, const struct schedule *s, double times);
/* The work of one iteration of a point: the prefill schedule, then with decode_tokens
 * > 0 one decode pass per token at its own context (seq + k + 1), planned by st. */
int step_work_of_point(const struct model_spec *m, const struct strategy *st, const struct placement *p,
                       const struct workload *w, int decode_tokens, struct step_work *out);
/* mbu = bytes / (window x copy_gbps), mfu = flops / (window x gemm_tflops) per GPU of m;
 * NAN where the window, a ceiling or busy time is unknown. */
void hw_use_fill(struct iteration_metrics *m, const struct step_work *w, double copy_gbps, double gemm_tflops);
#endif
