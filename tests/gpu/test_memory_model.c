/* The memory model (strategies/memory_model.c) against what the kernel core and
 * the executor allocate: for every strategy, a few models and shapes, each
 * device's predicted bytes equal the sum of llama_part_bytes over the parts
 * exec_build_parts makes there, plus the executor's own buffers. It calls no
 * CUDA function, but links the kernel core, so it lives with the GPU tests. */
#include <stdlib.h>
#include <string.h>
#include "../../harness/exec/cuda/cuda_exec_internal.h"
#include "../../strategies/memory_model.h"
#include "../test.h"

/* Bytes create_parts (harness/exec/cuda/cuda_executor.c) allocates beside the parts on logical device d. */
static uint64_t executor_extra(const struct cuda_config *c, const struct part_layout *l, int d)
{
    uint64_t extra = 0;
    if (l->tp && c->n_devices > 1) extra += (uint64_t)c->batch * c->seq * (uint64_t)c->m->vocab * 2;
    if (c->decode_tokens > 0 && !l->tp) {
        if (l->parts[l->head_part].logical == d) extra += (uint64_t)c->batch * sizeof(int);
        if (d == 0) extra += sizeof(int);
    }
    return extra;
}

/* 0 when every device of the placement agrees with the kernel core. */
static int compare(const char *model, const char *strategy, int gpus, uint64_t budget, int batch, int seq,
                   int decode)
{
    struct model_spec m;
    char path[256];
    if (model_spec_load(model_resolve_path(model, path, sizeof path), &m)) return 1;
    struct machine mc = {.gpus = gpus, .cpu_memory = 1ull << 40, .policy = MAP_AUTO, .budgets_from_user = 1};
    for (int d = 0; d < gpus; d++) mc.gpu_memory[d] = budget;
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    static struct placement p;
    const struct strategy *st = strategy_find(strategy);
    if (st->place(&m, &w, &mc, &p)) return 1;
    struct schedule pre = {0};   /* the layout reads its microbatches */
    if (st->plan(&m, &p, &w, &pre)) return 1;
    struct memory_shape s = {.batch = batch, .seq = seq, .decode_tokens = decode};
    static struct memory_plan mp;
    if (memory_plan_compute(&m, &p, DTYPE_BF16, &s, &mp)) return 1;
    struct cuda_config c = {.m = &m, .p = &p, .prefill = &pre, .n_devices = p.n_devices, .batch = batch,
                            .seq = seq, .decode_tokens = decode};
    int ordinal[PB_MAX_DEVICES];
    for (int d = 0; d < p.n_devices; d++) ordinal[d] = c.ordinal[d] = d;
    static struct part_layout l;
    int built = exec_build_parts(&c, ordinal, &l);
    schedule_free(&pre);
    if (built) return 1;
    int bad = 0;
    for (int d = 0; d < p.n_devices; d++) {
        uint64_t kernel = executor_extra(&c, &l, d);
        for (int k = 0; k < l.n_parts; k++)
            if (l.parts[k].logical == d) kernel += llama_part_bytes(&m, &l.parts[k].d);
        if (kernel != mp.gpu[d].peak) {
            fprintf(stderr, "  %s %s on %d GPUs, batch %d x %d + %d: GPU %d: model %llu bytes, kernel core %llu\n",
                    model, strategy, gpus, batch, seq, decode, d, (unsigned long long)mp.gpu[d].peak,
                    (unsigned long long)kernel);
            bad = 1;
        }
    }
    return bad;
}

TEST(test_memory_model_is_the_kernel_cores_arena_byte_for_byte)
{
    const char *models[] = {"llama-2-7b", "llama-2-70b", "tinyllama-1.1b", "llama-3.2-1b"};
    const char *strategies[] = {"single", "naive", "auto", "optimal", "pipeline", "tp"};
    const int shapes[][3] = {{1, 128, 0}, {8, 512, 64}, {3, 100, 7}, {2, 1000, 300}};
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++)
        for (size_t si = 0; si < sizeof strategies / sizeof *strategies; si++)
            for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
                int gpus = strcmp(strategies[si], "single") ? (mi == 1 ? 8 : 4) : 1;
                CHECK(compare(models[mi], strategies[si], gpus, 1ull << 40, shapes[k][0], shapes[k][1],
                              shapes[k][2]) == 0);
            }
}

TEST(test_memory_model_counts_cpu_offload_staging_as_the_kernel_core_does)
{
    /* 7B with 6 GiB per GPU: auto offloads the last layers and the head to cpu */
    CHECK(compare("llama-2-7b", "auto", 2, 6ull << 30, 4, 256, 16) == 0);
    CHECK(compare("llama-2-7b", "auto", 1, 4ull << 30, 1, 128, 0) == 0);
}
