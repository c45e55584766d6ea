/* bench --calibrate: measure the present GPUs (GEMM rate, copy bandwidth, launch
 * overhead, host and peer links, NCCL all-reduce) and write a device profile. */
#ifndef PB_CUDA_CALIBRATE_H
#define PB_CUDA_CALIBRATE_H
#include "../exec/model/calibration.h"
#include "../cli/options.h"

/* Measures GPUs 0..N-1 (--gpus N, default all visible) and writes
 * <name>-calibrated.json into a new results folder (or --out DIR); prints what it
 * measured and how to use the file. PB_OK or PB_ERR with the failing call named. */
int run_calibrate(const struct options *o);

/* The per-kernel measurements (cuda_calibrate_kernels.c), on GPU dev: cuBLASLt bf16
 * GEMMs at calibration_shape_rows into c->shape_us, and the time per kernel of a
 * CUDA graph of tiny kernels. */
int calibrate_gemm_shapes(int dev, struct calibration *c);
int calibrate_graph_launch(int dev, double *us);
/* The peer-memory all-reduce (one-shot, two-shot) and NCCL's, bf16 on GPUs 0..n-1
 * at calibration_ar_bytes, into c->ar_us (cuda_calibrate_allreduce.c). */
int calibrate_peer_allreduce(int n, struct calibration *c);
/* Two logical ranks on GPU 0: the event-synchronised peer all-reduce (shared_ar_us). */
int calibrate_shared_allreduce(struct calibration *c);
/* One layer of model m (kernel core, CUDA graph): decode steps at calibration_decode_batch
 * sequences into c->decode_layer_us, prompts of calibration_prompt_batch x _seq tokens into
 * c->prompt_layer_us, and m into c->decode_model. */
int calibrate_model_layers(int dev, const struct model_spec *m, struct calibration *c);
#endif
