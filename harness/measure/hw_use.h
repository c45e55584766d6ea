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
/* The work of one iteration of a program: its prompt pass, then every decode pass as
 * the template plus the work its extra positions add (flops_ and bytes_per_position). */
void step_work_of_program(const struct program *g, struct step_work *out);
/* mbu = bytes / (window x copy_gbps), mfu = flops / (window x gemm_tflops) per GPU of m;
 * NAN where the window, a ceiling or busy time is unknown. */
void hw_use_fill(struct iteration_metrics *m, const struct step_work *w, double copy_gbps, double gemm_tflops);
#endif
