/* --predict: the cost model's latency beside each measured point, and its error
 * (the cost-model executor on the point's program, run/sweep.c). */
#ifndef PB_PREDICT_H
#define PB_PREDICT_H
#include "../exec/model/device_profile.h"
#include "run.h"

/* The shipped profile for a GPU's product name ("NVIDIA H100 80GB HBM3" -> "h100"),
 * or NULL when none fits (then --gpu-profile must name one). */
const char *predict_profile_for_gpu(const char *gpu_name);
/* --allreduce auto's crossovers from the shipped profile of this GPU's kind, where it
 * has them (printed on stderr); known = 0 otherwise, or when algo is not auto. */
struct allreduce_table predict_allreduce_table(enum allreduce_algo algo, const char *gpu_name);
#endif
