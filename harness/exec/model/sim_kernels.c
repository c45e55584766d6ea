/* Each kernel of a step by its own roofline. Prompts and decode steps run
 * different kernels (cuBLASLt tiles vs the GEMV, flash vs split-KV attention), and
 * a kernel far from both of the large-GEMM and copy ceilings (small GEMMs, the
 * attention kernel, ~300 short launches a pass) is what one roofline for the whole
 * step got wrong: docs/PERF.md, the cost model section. */
#include "sim_kernels.h"

#include <math.h>

#include "../../../kernels/gemm_class.h"

/* The kernel core is bf16 throughout. */
#define ELEM 2.0

/* Per-rank widths of one layer, as llama_part shards it (kv heads replicated when
 * there are fewer than ranks). */
struct dims {
    double h, q, kv, inter, vocab, hd;
    double heads;   /* query heads on this rank */
};

static struct dims dims_of(const struct model_spec *m, int tp)
{
    int t = tp > 0 ? tp : 1;
    int kv_heads = m->kv_heads >= t ? m->kv_heads / t : 1;
    struct dims d = {.h = m->hidden, .hd = m->head_dim, .heads = (double)m->heads / t,
                     .inter = (double)m->intermediate / t, .vocab = (double)m->vocab / t};
    d.q = d.heads * m->head_dim;
    d.kv = (double)kv_heads * m->head_dim;
    return d;
}

static double launch_ns(const struct device_profile *p) { return p->launch_us * 1e3; }
static double flop_per_ns(double tflops) { return tflops * 1e3; }

/* The roofline of one linear at fractions `compute` and `memory`, plus its launch. */
static double linear_at(const struct device_profile *p, int rows, int n, int k, int accumulate, double compute,
                        double memory)
{
    double m = rows, flops = 2.0 * m * n * k;
    double bytes = ((double)n * k + m * k + (accumulate ? 2.0 : 1.0) * m * n) * ELEM;
    double t_math = flops / (flop_per_ns(p->bf16_tflops) * compute);
    double t_mem = bytes / (p->hbm_gbps * memory);
    return fmax(t_math, t_mem) + launch_ns(p);
}

double sim_linear_ns(const struct device_profile *p, int rows, int n, int k, int accumulate, int decode)
{
    if (!decode) return sim_prompt_linear_ns(p, rows, 0, n, k, accumulate);
    const struct kernel_profile *kp = &p->kernels;
    return linear_at(p, rows, n, k, accumulate, efficiency_at(kp->gemv, kp->n_gemv, rows, 0),
                     efficiency_at(kp->gemv, kp->n_gemv, rows, 1));
}

double sim_prompt_linear_ns(const struct device_profile *p, int rows, int tune_rows, int n, int k, int accumulate)
{
    const struct kernel_profile *kp = &p->kernels;
    return linear_at(p, rows, n, k, accumulate, gemm_efficiency_at(kp, rows, tune_rows, 0),
                     gemm_efficiency_at(kp, rows, tune_rows, 1));
}

int sim_tune_rows(int seq, int rows, int part_rows)
{
    if (seq <= 1 || gemm_class_for_seq(seq) != GEMM_CLASS_SHORT || part_rows <= 0) return 0;
    int tune = gemm_tune_rows(part_rows);
    return tune > rows ? tune : 0;
}

int sim_schedule_part_rows(const struct schedule *s)
{
    int most = 0;
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        if (st->kind != STEP_EMBED && st->kind != STEP_LAYERS && st->kind != STEP_ATTENTION && st->kind != STEP_MLP &&
            st->kind != STEP_HEAD)
            continue;
        int batch = st->batch > 0 ? st->batch : 1;
        int seq = st->seq > 0 ? st->seq : st->rows > 0 ? st->rows / batch : 1;
        int rows = (st->batch_offset + batch) * (seq > 0 ? seq : 1);
        if (rows > most) most = rows;
    }
    return most;
}

/* A linear of call c: the GEMV table for decode, else the prompt GEMM at c's tune rows. */
static double call_linear_ns(const struct device_profile *p, const struct sim_call *c, int n, int k, int accumulate)
{
    int rows = c->batch * c->seq;
    if (c->seq == 1) return sim_linear_ns(p, rows, n, k, accumulate, 1);
    return sim_prompt_linear_ns(p, rows, c->tune_rows, n, k, accumulate);
}

double sim_memory_kernel_ns(const struct device_profile *p, double bytes)
{
    return bytes / (p->hbm_gbps * p->kernels.memory_efficiency) + launch_ns(p);
}

/* RMSNorm of `rows` rows: read and write each row, read the weight. */
static double rmsnorm_ns(const struct device_profile *p, const struct dims *d, double rows)
{
    return sim_memory_kernel_ns(p, (2.0 * rows + 1.0) * d->h * ELEM);
}

/* Sum over the seq new positions of the positions each attends to (causal). */
static double attended(const struct sim_call *c)
{
    return (double)c->seq * (c->context - c->seq) + (double)c->seq * (c->seq + 1) / 2.0;
}

/* Prompts: the flash kernel at its own rate (or its bytes, for a long cache and a
 * short prompt). Decode: one kernel ropes, reads the cache split over blocks and
 * combines the splits. */
static double attention_kernel_ns(const struct device_profile *p, const struct dims *d, const struct sim_call *c)
{
    double rows = (double)c->batch * c->seq;
    double bytes = (2.0 * rows * d->q + 2.0 * c->batch * (double)c->context * d->kv) * ELEM;
    double t_mem = bytes / (p->hbm_gbps * p->kernels.memory_efficiency);
    if (c->seq == 1) return t_mem + launch_ns(p);
    double flops = 4.0 * c->batch * d->heads * d->hd * attended(c);
    return fmax(flops / flop_per_ns(p->kernels.attention_tflops), t_mem) + launch_ns(p);
}

double sim_attention_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c)
{
    struct dims d = dims_of(m, c->tp);
    int rows = c->batch * c->seq, decode = c->seq == 1;
    double qkv = d.q + 2 * d.kv;
    /* prompts rope in a kernel of their own (qkv in, q and the cache out); decode ropes in attention */
    double rope = decode ? 0.0 : sim_memory_kernel_ns(p, 2.0 * rows * qkv * ELEM);
    /* o (and down below) priced as adding into the residual: a tp rank's GEMM writes
     * its partial instead and the peer all-reduce reads the residual, the same bytes
     * on the same GPU (NCCL's residual add, a kernel of its own, is not priced) */
    return rmsnorm_ns(p, &d, rows) + call_linear_ns(p, c, (int)qkv, (int)d.h, 0) + rope +
           attention_kernel_ns(p, &d, c) + call_linear_ns(p, c, (int)d.h, (int)d.q, 1);
}

double sim_mlp_half_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c)
{
    struct dims d = dims_of(m, c->tp);
    int rows = c->batch * c->seq, decode = c->seq == 1;
    double t = rmsnorm_ns(p, &d, rows) + call_linear_ns(p, c, (int)(2 * d.inter), (int)d.h, 0);
    /* Prompts run SwiGLU as its own pass; the decode GEMV applies it in its epilogue. */
    if (!decode) t += sim_memory_kernel_ns(p, 3.0 * rows * d.inter * ELEM);
    return t + call_linear_ns(p, c, (int)d.h, (int)d.inter, 1);
}

double sim_embed_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c)
{
    return sim_memory_kernel_ns(p, 2.0 * c->batch * c->seq * (double)m->hidden * ELEM);
}

/* Final norm and lm_head on every row, as the strategies count the head's work. */
double sim_head_ns(const struct device_profile *p, const struct model_spec *m, const struct sim_call *c)
{
    struct dims d = dims_of(m, c->tp);
    int rows = c->batch * c->seq;
    return rmsnorm_ns(p, &d, rows) + call_linear_ns(p, c, (int)d.vocab, (int)d.h, 0);
}

struct sim_call sim_step_call(const struct model_spec *m, const struct step *st, int tp_world, int part_rows)
{
    (void)m;
    struct sim_call c = {.batch = st->batch > 0 ? st->batch : 1, .tp = tp_world > 0 ? tp_world : 1};
    if (st->kind == STEP_LAYERS) c.tp = 1;   /* whole layers: the executor refuses tp here */
    /* The step says its seq and context (strategies/program.c); a step built without
     * them is a prompt of rows / batch tokens. */
    c.seq = st->seq > 0 ? st->seq : st->rows > 0 ? st->rows / c.batch : 1;
    if (c.seq < 1) c.seq = 1;
    c.context = st->context >= c.seq ? st->context : c.seq;
    c.tune_rows = sim_tune_rows(c.seq, c.batch * c.seq, part_rows);
    return c;
}

double sim_step_kernels_ns(const struct device_profile *p, const struct model_spec *m, const struct step *st,
                           int tp_world, int part_rows)
{
    struct sim_call c = sim_step_call(m, st, tp_world, part_rows);
    switch (st->kind) {
    case STEP_EMBED: return sim_embed_ns(p, m, &c);
    case STEP_LAYERS:
        return (st->count > 0 ? st->count : 1) * (sim_attention_half_ns(p, m, &c) + sim_mlp_half_ns(p, m, &c));
    case STEP_ATTENTION: return sim_attention_half_ns(p, m, &c);
    case STEP_MLP: return sim_mlp_half_ns(p, m, &c);
    case STEP_HEAD: return sim_head_ns(p, m, &c);
    default: return 0;
    }
}
