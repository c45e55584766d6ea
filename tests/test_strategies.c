/* Placements and schedules of every strategy, checked on the CPU. */
#include <stdlib.h>
#include "../base/check.h"
#include "../strategies/strategy.h"
#include "test.h"

#define GIB (1ull << 30)

static struct placement placement_buf;

static void machine_of(struct machine *mc, int gpus, uint64_t each)
{
    memset(mc, 0, sizeof *mc);
    mc->gpus = gpus;
    for (int d = 0; d < gpus; d++) mc->gpu_memory[d] = each;
    mc->cpu_memory = 512 * GIB;
}

static struct workload prefill(int batch, int seq, int microbatches)
{
    struct workload w = {.batch = batch, .seq = seq, .context = seq, .microbatches = microbatches,
                         .mode = MODE_PREFILL, .dtype = DTYPE_BF16};
    return w;
}

static int layer_device(const struct placement *p, int layer)
{
    for (int i = 0; i < p->n_modules; i++)
        if (p->modules[i].kind == MODULE_LAYER && p->modules[i].layer == layer) return p->device[i];
    return -99;
}

static int kind_device(const struct placement *p, enum module_kind k)
{
    for (int i = 0; i < p->n_modules; i++)
        if (p->modules[i].kind == k) return p->device[i];
    return -99;
}

static int place(const char *strategy, const char *model, int gpus, const struct workload *w,
                 struct model_spec *m, struct placement *p)
{
    struct machine mc;
    machine_of(&mc, gpus, 80 * GIB);
    if (model_spec_load(model, m) != PB_OK) return PB_ERR;
    return strategy_find(strategy)->place(m, w, &mc, p);
}

TEST(test_naive_gives_remainder_to_last_gpu)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    struct placement *p = &placement_buf;
    CHECK_EQ_INT(place("naive", "models/tinyllama-1.1b.json", 4, &w, &m, p), PB_OK);
    /* 22 layers over 4 GPUs: per = 5; layers 15..21 on GPU 3 */
    CHECK_EQ_INT(layer_device(p, 0), 0);
    CHECK_EQ_INT(layer_device(p, 4), 0);
    CHECK_EQ_INT(layer_device(p, 5), 1);
    CHECK_EQ_INT(layer_device(p, 14), 2);
    CHECK_EQ_INT(layer_device(p, 15), 3);
    CHECK_EQ_INT(layer_device(p, 21), 3);
    CHECK_EQ_INT(kind_device(p, MODULE_EMBED), 0);
    CHECK_EQ_INT(kind_device(p, MODULE_NORM), 3);
    CHECK_EQ_INT(kind_device(p, MODULE_HEAD), 3);
}

TEST(test_naive_refuses_fewer_layers_than_gpus)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    CHECK_EQ_INT(place("naive", "models/llama-tiny.json", 8, &w, &m, &placement_buf), PB_ERR);
    CHECK(strstr(pb_last_error(), "ZeroDivisionError") != NULL);
}

TEST(test_single_puts_everything_on_gpu_0)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    struct placement *p = &placement_buf;
    CHECK_EQ_INT(place("single", "models/llama-2-7b.json", 4, &w, &m, p), PB_OK);
    for (int i = 0; i < p->n_modules; i++) CHECK_EQ_INT(p->device[i], 0);
    CHECK_EQ_INT(p->n_devices, 1);
}

/* optimal minimises the slowest GPU's work over all contiguous splits, which
 * include naive's and auto's: it can tie them, never lose. */
TEST(test_optimal_is_never_worse_than_naive_or_auto)
{
    const char *models[] = {"models/llama-2-7b.json", "models/tinyllama-1.1b.json",
                            "models/llama-3-8b.json", "models/llama-2-70b.json", "models/llama-3.2-1b.json"};
    int gpus[] = {2, 3, 4, 8};
    struct workload ws[] = {prefill(8, 512, 0), prefill(1, 128, 0)};
    static struct placement opt, other;
    for (int mi = 0; mi < 5; mi++)
        for (int gi = 0; gi < 4; gi++)
            for (int wi = 0; wi < 2; wi++) {
                struct model_spec m;
                double per[PB_MAX_DEVICES];
                if (place("optimal", models[mi], gpus[gi], &ws[wi], &m, &opt) != PB_OK) {
                    CHECK(!"optimal failed");
                    continue;
                }
                double best = placement_device_work(&m, &opt, &ws[wi], per);
                const char *rivals[] = {"naive", "auto"};
                for (int r = 0; r < 2; r++) {
                    if (place(rivals[r], models[mi], gpus[gi], &ws[wi], &m, &other) != PB_OK) continue;
                    double theirs = placement_device_work(&m, &other, &ws[wi], per);
                    CHECK(best <= theirs * (1 + 1e-12));
                }
            }
}

TEST(test_optimal_respects_memory_budgets)
{
    struct model_spec m;
    struct machine mc;
    struct workload w = prefill(8, 512, 0);
    struct placement *p = &placement_buf;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    machine_of(&mc, 2, 80 * GIB);
    mc.gpu_memory[0] = 3 * GIB;   /* room for the embedding and a few layers only */
    CHECK_EQ_INT(strategy_find("optimal")->place(&m, &w, &mc, p), PB_OK);
    uint64_t params[PB_MAX_DEVICES], cpu;
    placement_device_params(p, params, &cpu);
    CHECK(params[0] <= 3 * GIB);
    CHECK_EQ_INT(cpu, 0);
    machine_of(&mc, 2, 4 * GIB);  /* 12.6 GiB of weights cannot fit in 8 */
    CHECK_EQ_INT(strategy_find("optimal")->place(&m, &w, &mc, p), PB_ERR);
    CHECK(strstr(pb_last_error(), "does not fit") != NULL);
}

TEST(test_optimal_balances_equal_layers_evenly)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    struct placement *p = &placement_buf;
    CHECK_EQ_INT(place("optimal", "models/llama-2-7b.json", 2, &w, &m, p), PB_OK);
    int on0 = 0;
    for (int l = 0; l < m.layers; l++) on0 += layer_device(p, l) == 0;
    /* the head (lm_head on 32000 x 4096) is about one layer's work: GPU 0 takes one more layer */
    CHECK(on0 >= 16 && on0 <= 17);
}

TEST(test_tp_rejects_gpu_count_that_does_not_divide_heads)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    CHECK_EQ_INT(place("tp", "models/llama-2-7b.json", 3, &w, &m, &placement_buf), PB_ERR);
    CHECK(strstr(pb_last_error(), "32 attention heads") != NULL);
    CHECK_EQ_INT(place("tp", "models/llama-2-7b.json", 4, &w, &m, &placement_buf), PB_OK);
}

TEST(test_tp_replicates_kv_heads_when_fewer_than_gpus)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    /* TinyLlama: 4 kv heads; 8 GPUs each hold one kv head, replicated in pairs */
    CHECK_EQ_INT(place("tp", "models/tinyllama-1.1b.json", 8, &w, &m, &placement_buf), PB_OK);
}

TEST(test_single_refuses_a_model_larger_than_the_gpu)
{
    struct model_spec m;
    struct workload w = prefill(1, 128, 0);
    /* Llama-2-70B: about 128 GiB of bf16 parameters on one 80 GiB GPU */
    CHECK_EQ_INT(place("single", "models/llama-2-70b.json", 1, &w, &m, &placement_buf), PB_ERR);
    CHECK(strstr(pb_last_error(), "GPU 0 would hold") != NULL);
    CHECK_EQ_INT(place("naive", "models/llama-2-70b.json", 2, &w, &m, &placement_buf), PB_OK);
    CHECK_EQ_INT(place("tp", "models/llama-2-70b.json", 2, &w, &m, &placement_buf), PB_OK);
}

static int layers_on(const struct placement *p, int device)
{
    int n = 0;
    for (int i = 0; i < p->n_modules; i++) n += p->modules[i].kind == MODULE_LAYER && p->device[i] == device;
    return n;
}

TEST(test_auto_splits_llama_2_7b_7_9_9_7_on_4_gpus_and_leaves_gpu_7_empty_on_8)
{
    struct model_spec m;
    struct workload w = prefill(8, 512, 0);
    struct placement *p = &placement_buf;
    CHECK_EQ_INT(place("auto", "models/llama-2-7b.json", 4, &w, &m, p), PB_OK);
    CHECK_EQ_INT(layers_on(p, 0), 7);
    CHECK_EQ_INT(layers_on(p, 1), 9);
    CHECK_EQ_INT(layers_on(p, 2), 9);
    CHECK_EQ_INT(layers_on(p, 3), 7);
    CHECK_EQ_INT(place("auto", "models/llama-2-7b.json", 8, &w, &m, p), PB_OK);
    uint64_t params[PB_MAX_DEVICES], cpu;
    placement_device_params(p, params, &cpu);
    CHECK_EQ_INT(params[7], 0);
    CHECK(params[6] > 0);
}
