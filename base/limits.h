/* Every limit shared by more than one file, named once. Fixed-size arrays keep the
 * plain structs copyable and free of ownership; a config or flag beyond a limit is
 * refused with a message naming it (model_spec.c, cli.c), never truncated. */
#ifndef PB_LIMITS_H
#define PB_LIMITS_H

#define PB_MAX_LAYERS 1024                 /* decoder layers of a model */
#define PB_MAX_MODULES (PB_MAX_LAYERS + 4) /* the layers plus embed, norm, rotary, lm_head */
#define PB_MAX_STAGES PB_MAX_LAYERS        /* runs of layers on one device, in order */
#define PB_MAX_DEVICES 64                  /* logical devices of a placement or schedule */
#define PB_MAX_DEPS 8                      /* steps one step waits for */
#define PB_MAX_LIST 16                     /* values of one comma-separated flag */

/* Name buffers, with their terminating NUL. */
#define PB_MODEL_NAME_LEN 128              /* a model's name (its file name) */
#define PB_MODULE_NAME_LEN 48              /* "model.layers.1023" as in hf_device_map */
#define PB_STRATEGY_NAME_LEN 32            /* a strategy's name */
#define PB_GPU_NAME_LEN 96                 /* a GPU's product name */
#define PB_LABEL_LEN 96                    /* an NVTX range or trace label */
#endif
