/* The tiny model of the GPU suite's executor tests: one the kernel core supports
 * (head_dim 64; models/llama-tiny.json has 32), with an intermediate size whose
 * quarter is a multiple of 8, so tp runs on 4 logical devices. */
#ifndef PB_TESTS_GPU_TINY_MODEL_H
#define PB_TESTS_GPU_TINY_MODEL_H
#ifdef __cplusplus
extern "C" {
#endif
/* Path of its config.json, written once per process under /tmp. */
const char *gpu_tiny_config(void);
#ifdef __cplusplus
}
#endif
#endif
