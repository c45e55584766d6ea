/* See tiny_model.h. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tiny_model.h"

static char path[256];
static void remove_config(void) { unlink(path); }

const char *gpu_tiny_config(void)
{
    if (path[0]) return path;
    snprintf(path, sizeof path, "/tmp/placebench-test-tiny-%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return "models/llama-tiny.json";
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256, \"intermediate_size\": 704,"
          " \"num_hidden_layers\": 6, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
          " \"vocab_size\": 512, \"max_position_embeddings\": 1024, \"rms_norm_eps\": 1e-05,"
          " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}\n", f);
    fclose(f);
    atexit(remove_config);  /* the suite's processes read it until the end */
    return path;
}
