/* Measurements -> device profile. Per-GPU numbers take the slowest GPU, as a
 * schedule waits for its slowest member; links take the slowest pair. */
#include "calibration.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../../base/check.h"
#include "sim_kernels.h"

const int calibration_shape_rows[CALIBRATION_SHAPES] = {1, 16, 128, 512, 4096};
const int calibration_decode_batch[CALIBRATION_DECODE_POINTS] = {1, 4, 16};
const int calibration_prompt_batch[CALIBRATION_PROMPT_POINTS] = {1, 4, 8};
const int calibration_prompt_seq[CALIBRATION_PROMPT_POINTS] = {128, 128, 512};
const int calibration_tuned_batch[CALIBRATION_TUNED_POINTS] = {1, 1, 2};
const int calibration_tuned_seq[CALIBRATION_TUNED_POINTS] = {128, 128, 128};
const int calibration_tuned_part_rows[CALIBRATION_TUNED_POINTS] = {256, 512, 512};

const char *calibration_base_name(const char *gpu_name)
{
    static const struct { const char *needle, *name; } known[] = {
        {"H200", "h200"}, {"H100", "h100"}, {"A100", "a100"}, {"L40S", "l40s"}, {"4090", "rtx4090"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (gpu_name && strstr(gpu_name, known[i].needle)) return known[i].name;
    return NULL;
}

static double slowest(const double *v, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > 0 && (m == 0 || v[i] < m)) m = v[i];
    return m;
}

/* A peak no lower than what was measured: a datasheet peak can sit under a
 * boosted card's measurement, and validation refuses achievable > peak. */
static double peak_of(double base_peak, double measured) { return fmax(base_peak, measured); }

static void link_from_peers(const struct calibration *c, struct device_profile *p, const char *gpus)
{
    double slow = 0;
    int si = 0, sj = 0;
    for (int i = 0; i < c->n_gpus; i++)
        for (int j = 0; j < c->n_gpus; j++)
            if (i != j && c->peer_gbps[i][j] > 0 && (slow == 0 || c->peer_gbps[i][j] < slow)) {
                slow = c->peer_gbps[i][j];
                si = i;
                sj = j;
            }
    if (slow <= 0) return;
    enum link_kind k = slow >= CALIBRATION_NVLINK_GBPS ? LINK_NVLINK : LINK_PCIE;
    struct link_profile *l = &p->link[k];
    p->peer_link = k;
    if (k == LINK_PCIE) {
        /* The host link's own figures stay; peer copies get theirs. */
        l->peer_gbps = slow;
        l->peak_gbps = peak_of(l->peak_gbps, slow);
        size_t n = strlen(l->source);
        snprintf(l->source + n, sizeof l->source - n, "; peer_gbps: bench --calibrate %s, slowest pair "
                 "%d->%d of %s, cudaMemcpyPeerAsync one way%s", c->date, si, sj, gpus,
                 c->peer_access ? "" : " (no P2P access: staged through the host)");
        return;
    }
    double base_peak = l->present ? l->peak_gbps : 0;
    l->present = 1;
    l->gbps = l->peer_gbps = slow;
    l->peak_gbps = peak_of(base_peak, slow);
    l->latency_us = c->peer_latency_us;
    snprintf(l->source, sizeof l->source, "bench --calibrate %s: cudaMemcpyPeerAsync one way, slowest "
             "pair %d->%d of %s; latency: median small copy; peak: %s", c->date, si, sj, gpus,
             base_peak > 0 ? "datasheet (base profile)" : "not known, set to the measurement");
}

/* An efficiency as the simulator may use it: positive and, within validation's
 * margin, not above the ceiling it is a fraction of. */
static double fraction(double achieved, double ceiling) { return fmin(1.2, fmax(1e-4, achieved / ceiling)); }

static int binds_memory(const struct efficiency_point *p) { return p->memory >= p->compute; }

/* Lift each point's non-binding fraction to the nearest binding one of that kind. */
static void lift_table(struct efficiency_point *t, int n)
{
    struct efficiency_point raw[PB_EFFICIENCY_POINTS];
    memcpy(raw, t, (size_t)n * sizeof *t);
    for (int i = 0; i < n; i++) {
        int mem = binds_memory(&raw[i]);
        for (int d = 1; d < n; d++) {
            int near = -1;
            if (i - d >= 0 && binds_memory(&raw[i - d]) != mem) near = i - d;
            else if (i + d < n && binds_memory(&raw[i + d]) != mem) near = i + d;
            if (near < 0) continue;
            if (mem) t[i].compute = fmax(raw[i].compute, raw[near].compute);
            else t[i].memory = fmax(raw[i].memory, raw[near].memory);
            break;
        }
    }
}

int calibration_gemm_table(const struct calibration *c, double tflops, double gbps, double launch_us,
                           struct efficiency_point *out)
{
    int n = 0;
    double nn = CALIBRATION_SHAPE_N, k = CALIBRATION_SHAPE_K;
    for (int i = 0; i < CALIBRATION_SHAPES && n < PB_EFFICIENCY_POINTS; i++) {
        if (!(c->shape_us[i] > 0) || !(tflops > 0) || !(gbps > 0)) continue;
        double m = calibration_shape_rows[i];
        /* The kernel's own time; never less than half the call, should launch_us be off. */
        double s = fmax(c->shape_us[i] - launch_us, 0.5 * c->shape_us[i]) * 1e-6;
        double flops = 2.0 * m * nn * k, bytes = (nn * k + m * k + m * nn) * 2.0;
        out[n++] = (struct efficiency_point){.rows = (int)m, .compute = fraction(flops / s, tflops * 1e12),
                                             .memory = fraction(bytes / s, gbps * 1e9)};
    }
    lift_table(out, n);
    return n;
}

/* What a calibrated profile keeps when its base has no kernel efficiencies: plain
 * estimates, said so in the source. */
static void default_kernels(struct kernel_profile *k, double tflops)
{
    memset(k, 0, sizeof *k);
    k->n_gemv = 1;
    k->gemv[0] = (struct efficiency_point){.rows = 1, .compute = 1, .memory = 0.85};
    k->attention_tflops = 0.13 * tflops;   /* the H100's flash attention: 105 of 798 TFLOP/s */
    k->memory_efficiency = 1.0;
    snprintf(k->source, sizeof k->source, "gemv 0.85 of the copy rate, attention at 0.13 x the GEMM rate "
             "and small kernels at the copy rate: estimates from the H100's figures (docs/PERF.md)");
}

static void kernels_from_shapes(const struct calibration *c, const struct device_profile *base,
                                struct device_profile *out)
{
    struct efficiency_point table[PB_EFFICIENCY_POINTS];
    int n = calibration_gemm_table(c, out->bf16_tflops, out->hbm_gbps, out->launch_us, table);
    if (n == 0) return;
    struct kernel_profile *k = &out->kernels;
    if (!base || !base->kernels.present) default_kernels(k, out->bf16_tflops);
    char kept[PB_KERNELS_SOURCE / 2];
    snprintf(kept, sizeof kept, "%.1000s", k->source);
    k->present = 1;
    k->n_gemm = n;
    memcpy(k->gemm, table, (size_t)n * sizeof *table);
    snprintf(k->source, sizeof k->source, "gemm: bench --calibrate %s, cuBLASLt bf16 [M, %d] x [%d, %d]^T at "
             "M = 1, 16, 128, 512, 4096 back to back in a CUDA graph, weights rotated past L2, GPU 0 of %d x "
             "%.40s, less one launch, over the measured GEMM and copy rates, non-binding fractions lifted; "
             "gemv, attention_tflops, memory_efficiency: not measured, kept: %s", c->date,
             CALIBRATION_SHAPE_K, CALIBRATION_SHAPE_N, CALIBRATION_SHAPE_K, c->n_gpus, c->gpu, kept);
}

/* The simulator's decode layer (ns) on p with a one-point GEMV table of memory fraction m. */
static double decode_layer_ns(const struct device_profile *p, const struct model_spec *m, int batch, double mem)
{
    static struct device_profile q;   /* large; CPU code, one caller at a time */
    q = *p;
    q.kernels.n_gemv = 1;
    q.kernels.gemv[0] = (struct efficiency_point){.rows = batch, .compute = 1, .memory = mem};
    struct sim_call call = {.batch = batch, .seq = 1, .context = CALIBRATION_DECODE_CONTEXT, .tp = 1};
    return sim_attention_half_ns(&q, m, &call) + sim_mlp_half_ns(&q, m, &call);
}

int calibration_gemv_table(const struct calibration *c, const struct device_profile *p,
                           struct efficiency_point *out)
{
    int n = 0;
    if (!p->kernels.present || c->decode_model.layers <= 0) return 0;
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++) {
        if (!(c->decode_layer_us[i] > 0)) continue;
        int b = calibration_decode_batch[i];
        double at_one = decode_layer_ns(p, &c->decode_model, b, 1.0);
        double linears = decode_layer_ns(p, &c->decode_model, b, 0.5) - at_one;   /* their bytes / bw */
        double inverse = 1.0 + (c->decode_layer_us[i] * 1e3 - at_one) / linears;
        if (!(linears > 0) || !(inverse > 0)) continue;
        double mem = 1.0 / inverse;
        if (mem < 1e-4 || mem > 1.2) continue;
        out[n++] = (struct efficiency_point){.rows = b, .compute = 1, .memory = mem};
    }
    return n;
}

/* The simulator's prompt layer (ns) on p with table t, point k's fractions times scale. */
static double prompt_layer_ns(const struct device_profile *p, const struct model_spec *m, int i,
                              const struct efficiency_point *t, int n, int k, double scale)
{
    static struct device_profile q;   /* large; CPU code, one caller at a time */
    q = *p;
    q.kernels.n_gemm = n;
    memcpy(q.kernels.gemm, t, (size_t)n * sizeof *t);
    q.kernels.gemm[k].compute *= scale;
    q.kernels.gemm[k].memory *= scale;
    struct sim_call call = {.batch = calibration_prompt_batch[i], .seq = calibration_prompt_seq[i],
                            .context = calibration_prompt_seq[i], .tp = 1};
    return sim_attention_half_ns(&q, m, &call) + sim_mlp_half_ns(&q, m, &call);
}

int calibration_scale_gemm_table(const struct calibration *c, const struct device_profile *p,
                                 struct efficiency_point *t, int n)
{
    int scaled = 0;
    if (c->decode_model.layers <= 0) return 0;
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++) {
        int rows = calibration_prompt_batch[i] * calibration_prompt_seq[i], k = -1;
        for (int j = 0; j < n; j++)
            if (t[j].rows == rows) k = j;
        if (!(c->prompt_layer_us[i] > 0) || k < 0) continue;
        double at_one = prompt_layer_ns(p, &c->decode_model, i, t, n, k, 1.0);
        double linears = prompt_layer_ns(p, &c->decode_model, i, t, n, k, 0.5) - at_one;
        double inverse = 1.0 + (c->prompt_layer_us[i] * 1e3 - at_one) / linears;
        if (!(linears > 0) || !(inverse > 0)) continue;
        double compute = t[k].compute / inverse, memory = t[k].memory / inverse;
        if (compute < 1e-4 || memory < 1e-4 || compute > 1.2 || memory > 1.2) continue;
        t[k].compute = compute;
        t[k].memory = memory;
        scaled++;
    }
    return scaled;
}

/* The tune rows of tuned point i (0 where the point is not below its part's tuning). */
static int tuned_point_tune_rows(int i)
{
    int b = calibration_tuned_batch[i], q = calibration_tuned_seq[i];
    return sim_tune_rows(q, b * q, calibration_tuned_part_rows[i]);
}

/* The simulator's layer of tuned point i (ns) on p, the point's fractions (compute, memory). */
static double tuned_layer_ns(const struct device_profile *p, const struct model_spec *m, int i, double compute,
                             double memory)
{
    static struct device_profile q;   /* large; CPU code, one caller at a time */
    q = *p;
    int b = calibration_tuned_batch[i], seq = calibration_tuned_seq[i];
    q.kernels.n_gemm_tuned_above = 1;
    q.kernels.gemm_tuned_above[0] = (struct tuned_efficiency_point){
        .rows = b * seq, .tune_rows = tuned_point_tune_rows(i), .compute = compute, .memory = memory};
    struct sim_call call = {.batch = b, .seq = seq, .context = seq, .tp = 1, .tune_rows = tuned_point_tune_rows(i)};
    return sim_attention_half_ns(&q, m, &call) + sim_mlp_half_ns(&q, m, &call);
}

int calibration_tuned_gemm_table(const struct calibration *c, const struct device_profile *p,
                                 struct tuned_efficiency_point *out)
{
    int n = 0;
    if (!p->kernels.present || c->decode_model.layers <= 0) return 0;
    for (int i = 0; i < CALIBRATION_TUNED_POINTS && n < PB_EFFICIENCY_POINTS; i++) {
        int rows = calibration_tuned_batch[i] * calibration_tuned_seq[i], tune = tuned_point_tune_rows(i);
        if (!(c->tuned_layer_us[i] > 0) || tune <= rows) continue;
        /* the fractions a call at these rows has on a part tuned at its own rows */
        double c0 = efficiency_at(p->kernels.gemm, p->kernels.n_gemm, rows, 0);
        double m0 = efficiency_at(p->kernels.gemm, p->kernels.n_gemm, rows, 1);
        double at_one = tuned_layer_ns(p, &c->decode_model, i, c0, m0);
        double linears = tuned_layer_ns(p, &c->decode_model, i, 0.5 * c0, 0.5 * m0) - at_one;
        double inverse = 1.0 + (c->tuned_layer_us[i] * 1e3 - at_one) / linears;
        if (!(linears > 0) || !(inverse > 0)) continue;
        double compute = c0 / inverse, memory = m0 / inverse;
        if (compute < 1e-4 || memory < 1e-4 || compute > 1.2 || memory > 1.2) continue;
        out[n++] = (struct tuned_efficiency_point){.rows = rows, .tune_rows = tune, .compute = compute,
                                                   .memory = memory};
    }
    return n;
}

/* Adds to the end of a profile field's source; what does not fit is cut, as snprintf cuts. */
__attribute__((format(printf, 3, 4))) static void source_append(char *source, size_t size, const char *fmt, ...)
{
    size_t used = strlen(source);
    if (used + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(source + used, size - used, fmt, ap);
    va_end(ap);
}

static void kernels_from_tuned(const struct calibration *c, struct device_profile *out)
{
    struct kernel_profile *k = &out->kernels;
    k->n_gemm_tuned_above = 0;   /* a base profile's points belong to its own gemm table, not this card's */
    if (!k->present) return;
    struct tuned_efficiency_point t[PB_EFFICIENCY_POINTS];
    int n = calibration_tuned_gemm_table(c, out, t);
    if (n == 0) return;
    k->n_gemm_tuned_above = n;
    memcpy(k->gemm_tuned_above, t, (size_t)n * sizeof *t);
    source_append(k->source, sizeof k->source, "; gemm_tuned_above: bench --calibrate %s, the prompt layer on "
                  "parts tuned at more rows than the call (rows at tune rows:", c->date);
    for (int i = 0; i < n; i++) {
        double base = efficiency_at(k->gemm, k->n_gemm, t[i].rows, 1);
        source_append(k->source, sizeof k->source, " %d at %d x%.3f", t[i].rows, t[i].tune_rows,
                      base > 0 ? t[i].memory / base : 0);
    }
    source_append(k->source, sizeof k->source, " of the gemm fractions at those rows), scaled until the modelled "
                  "layer takes the measured time");
}

static void kernels_from_prompts(const struct calibration *c, struct device_profile *out)
{
    struct kernel_profile *k = &out->kernels;
    if (!k->present) return;
    int scaled = calibration_scale_gemm_table(c, out, k->gemm, k->n_gemm);
    if (!scaled) return;
    source_append(k->source, sizeof k->source, "; gemm at the prompt layers' rows scaled: bench --calibrate %s, "
                  "one prompt layer of %.60s (llama_layers: the kernel core's own GEMM algorithms at the model's "
                  "shapes) at 1 x 128, 4 x 128, 8 x 512 tokens back to back in a CUDA graph, GPU 0; both fractions "
                  "scaled until the modelled layer takes the measured time (%d of 3 points)",
                  c->date, c->decode_model.name, scaled);
}

static void kernels_from_decode(const struct calibration *c, struct device_profile *out)
{
    struct kernel_profile *k = &out->kernels;
    /* Per-kernel pricing needs the prompt GEMM table too: only with it is there a gemv to replace. */
    if (!k->present) return;
    struct efficiency_point table[PB_EFFICIENCY_POINTS];
    int n = calibration_gemv_table(c, out, table);
    if (n == 0) return;
    k->n_gemv = n;
    memcpy(k->gemv, table, (size_t)n * sizeof *table);
    source_append(k->source, sizeof k->source, "; gemv (replacing what was kept): bench --calibrate %s, one decode "
                  "layer of %.60s (llama_layers: the kernel core's GEMV shapes) at batch 1, 4, 16 attending to %d "
                  "positions, back to back in a CUDA graph, GPU 0; memory fraction at which the modelled layer (its "
                  "other kernels at their own pricing) takes the measured time", c->date, c->decode_model.name,
                  CALIBRATION_DECODE_CONTEXT);
}

static void launch_from(const struct calibration *c, struct device_profile *out)
{
    if (c->graph_launch_us > 0) {
        out->launch_us = c->graph_launch_us;
        snprintf(out->launch_source, sizeof out->launch_source, "bench --calibrate %s: median time per "
                 "kernel of 1000 one-thread kernels (llama_advance_pos) back to back in a CUDA graph, GPU 0",
                 c->date);
    } else if (c->launch_us > 0) {
        out->launch_us = c->launch_us;
        snprintf(out->launch_source, sizeof out->launch_source, "bench --calibrate %s: median time per "
                 "4-byte cudaMemsetAsync, 2000 back to back on one stream, GPU 0", c->date);
    }
}

const uint64_t calibration_ar_bytes[CALIBRATION_AR_SIZES] = {8192, 65536, 524288, 4194304, 16777216, 33554432};

/* The largest size up to which algorithm `a` is never slower than the faster of
 * `b` and `c` (c < 0: b alone); 0 when it loses at the smallest size. */
static uint64_t wins_up_to(const struct calibration *cal, int a, int b, int c)
{
    uint64_t bound = 0;
    for (int s = 0; s < CALIBRATION_AR_SIZES; s++) {
        double mine = cal->ar_us[a][s];
        if (c >= 0) mine = fmin(mine, cal->ar_us[c][s]);
        if (mine > cal->ar_us[b][s]) break;
        bound = calibration_ar_bytes[s];
    }
    return bound;
}

int calibration_peer_allreduce(const struct calibration *c, double launch_us, struct peer_allreduce_profile *out)
{
    for (int a = 0; a < CALIBRATION_AR_ALGOS; a++)
        for (int s = 0; s < CALIBRATION_AR_SIZES; s++)
            if (!(c->ar_us[a][s] > 0)) return PB_ERR;
    int last = CALIBRATION_AR_SIZES - 1;
    double latency = fmax(0, c->ar_us[CALIBRATION_AR_ONESHOT][0] - launch_us);
    double transfer_us = c->ar_us[CALIBRATION_AR_ONESHOT][last] - launch_us - latency;
    if (!(transfer_us > 0)) return PB_ERR;
    out->present = 1;
    out->latency_us = latency;
    out->read_gbps = (c->n_gpus - 1.0) * (double)calibration_ar_bytes[last] / (transfer_us * 1e3);
    out->oneshot_max_bytes = wins_up_to(c, CALIBRATION_AR_ONESHOT, CALIBRATION_AR_TWOSHOT, -1);
    uint64_t peer = wins_up_to(c, CALIBRATION_AR_ONESHOT, CALIBRATION_AR_NCCL, CALIBRATION_AR_TWOSHOT);
    out->twoshot_max_bytes = peer > out->oneshot_max_bytes ? peer : out->oneshot_max_bytes;
    return PB_OK;
}

int calibration_shared_gpu(const struct calibration *c, struct shared_gpu_profile *out)
{
    const double small = 8 << 10, large = 32 << 20, ranks = 2;
    const double one = ranks * (ranks + 3), two = 5 * ranks - 1;   /* traffic, times the message */
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 2; k++)
            if (!(c->shared_ar_us[a][k] > 0)) return PB_ERR;
    double grow_us = c->shared_ar_us[0][1] - c->shared_ar_us[0][0];
    if (!(grow_us > 0)) return PB_ERR;
    memset(out, 0, sizeof *out);
    out->present = 1;
    out->gbps = one * (large - small) / (grow_us * 1e3);
    out->oneshot_us = fmax(0, c->shared_ar_us[0][0] - one * small / out->gbps / 1e3);
    out->twoshot_us = fmax(0, c->shared_ar_us[1][0] - two * small / out->gbps / 1e3);
    return PB_OK;
}

static void add_shared_point(struct shared_slowdown_table *t, int rows, double single_us, double pair_us)
{
    if (!(single_us > 0) || !(pair_us > 0) || t->n == PB_SHARED_POINTS) return;
    if (t->n > 0 && rows <= t->point[t->n - 1].rows) return;
    t->point[t->n].rows = rows;
    t->point[t->n].slowdown = fmin(4, fmax(0.5, pair_us / (2 * single_us)));
    t->n++;
}

/* One layer as the simulator prices it on p (us), tp world 1 or 2; `measured` where p
 * cannot price kernels (no kernels table, or no model). */
static double modelled_layer_us(const struct calibration *c, const struct device_profile *p, int batch, int seq,
                                int context, int tp, int tune_rows, double measured)
{
    if (!p || !p->kernels.present || c->decode_model.layers <= 0) return measured;
    struct sim_call call = {.batch = batch, .seq = seq, .context = context, .tp = tp, .tune_rows = tune_rows};
    return (sim_attention_half_ns(p, &c->decode_model, &call) + sim_mlp_half_ns(p, &c->decode_model, &call)) / 1e3;
}

int calibration_shared_compute(const struct calibration *c, const struct device_profile *p,
                               struct shared_compute_profile *out)
{
    memset(out, 0, sizeof *out);
    /* decode rows (1, 4, 16) lie below every prompt's (128 and up) */
    for (int i = 0; i < CALIBRATION_DECODE_POINTS; i++) {
        int b = calibration_decode_batch[i], ctx = CALIBRATION_DECODE_CONTEXT;
        add_shared_point(&out->layers, b, modelled_layer_us(c, p, b, 1, ctx, 1, 0, c->decode_layer_us[i]),
                         c->decode_pair_us[i]);
        add_shared_point(&out->tp, b, modelled_layer_us(c, p, b, 1, ctx, 2, 0, c->decode_tp_us[i]),
                         c->decode_tp_pair_us[i]);
    }
    for (int i = 0; i < CALIBRATION_PROMPT_POINTS; i++) {
        int b = calibration_prompt_batch[i], q = calibration_prompt_seq[i];
        add_shared_point(&out->layers, b * q, modelled_layer_us(c, p, b, q, q, 1, 0, c->prompt_layer_us[i]),
                         c->prompt_pair_us[i]);
        add_shared_point(&out->tp, b * q, modelled_layer_us(c, p, b, q, q, 2, 0, c->prompt_tp_us[i]),
                         c->prompt_tp_pair_us[i]);
    }
    /* parts tuned above their rows: over twice the layer priced at its tune rows */
    struct shared_tuned_table *t = &out->tuned_above;
    for (int i = 0; i < CALIBRATION_TUNED_POINTS && t->n < PB_SHARED_POINTS; i++) {
        int b = calibration_tuned_batch[i], q = calibration_tuned_seq[i], tune = tuned_point_tune_rows(i);
        double one = modelled_layer_us(c, p, b, q, q, 1, tune, c->tuned_layer_us[i]);
        if (tune <= b * q || !(c->tuned_layer_us[i] > 0) || !(one > 0) || !(c->tuned_pair_us[i] > 0)) continue;
        t->point[t->n].rows = b * q;
        t->point[t->n].tune_rows = tune;
        t->point[t->n].slowdown = fmin(4, fmax(0.5, c->tuned_pair_us[i] / (2 * one)));
        t->n++;
    }
    return out->layers.n > 0 || out->tp.n > 0 || t->n > 0 ? PB_OK : PB_ERR;
}

int calibration_to_profile(const struct calibration *c, const struct device_profile *base,
                           struct device_profile *out)
{
    if (c->n_gpus < 1) return pb_fail("calibration: no GPU was measured");
    if (base) *out = *base;
    else memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%.40s-calibrated", base ? base->name : "gpu");
    snprintf(out->gpu, sizeof out->gpu, "%s", c->gpu);
    out->path[0] = 0;
    out->measured = 1;
    char gpus[64];
    snprintf(gpus, sizeof gpus, "%d x %.40s", c->n_gpus, c->gpu);
    const char *peak_note = base ? "datasheet (base profile)" : "not known, set to the measurement";

    out->memory_bytes = c->memory_bytes;
    snprintf(out->memory_source, sizeof out->memory_source, "bench --calibrate %s: cudaMemGetInfo "
             "total, smallest of %s", c->date, gpus);

    double gemm = slowest(c->gemm_tflops, c->n_gpus), copy = slowest(c->copy_gbps, c->n_gpus);
    if (gemm <= 0 || copy <= 0) return pb_fail("calibration: GEMM rate or copy bandwidth was not measured");
    out->bf16_tflops = gemm;
    out->bf16_peak_tflops = peak_of(base ? base->bf16_peak_tflops : 0, gemm);
    snprintf(out->gemm_source, sizeof out->gemm_source, "bench --calibrate %s: cuBLAS bf16 GEMM "
             "8192^3, fp32 accumulate, random data, median, slowest of %s; peak: %s", c->date, gpus,
             peak_note);
    out->hbm_gbps = copy;
    out->hbm_peak_gbps = peak_of(base ? base->hbm_peak_gbps : 0, copy);
    snprintf(out->hbm_source, sizeof out->hbm_source, "bench --calibrate %s: cudaMemcpyAsync "
             "device-to-device of 1 GiB, bytes read + written, median, slowest of %s; peak: %s",
             c->date, gpus, peak_note);
    launch_from(c, out);
    kernels_from_shapes(c, base, out);
    kernels_from_prompts(c, out);
    kernels_from_tuned(c, out);
    kernels_from_decode(c, out);

    struct link_profile *pcie = &out->link[LINK_PCIE];
    if (c->h2d_gbps > 0) {
        double base_peak = pcie->present ? pcie->peak_gbps : 0;
        pcie->present = 1;
        pcie->gbps = pcie->peer_gbps = c->h2d_gbps;
        pcie->peak_gbps = peak_of(base_peak, c->h2d_gbps);
        pcie->latency_us = c->h2d_latency_us;
        snprintf(pcie->source, sizeof pcie->source, "bench --calibrate %s: pinned host -> GPU 0 "
                 "cudaMemcpyAsync of 256 MiB, median; latency: median small copy; peak: %s", c->date,
                 base_peak > 0 ? "datasheet (base profile)" : "not known, set to the measurement");
    }
    if (!base) out->peer_link = LINK_PCIE;
    link_from_peers(c, out, gpus);

    if (c->allreduce_bus_gbps > 0 && c->n_gpus > 1) {
        out->allreduce.bus_gbps = c->allreduce_bus_gbps;
        double steps = 2.0 * (c->n_gpus - 1);
        out->allreduce.step_latency_us = fmax(0, (c->allreduce_small_us - out->launch_us) / steps);
        snprintf(out->allreduce.source, sizeof out->allreduce.source, "bench --calibrate %s: NCCL "
                 "all-reduce of %.0f MiB on %s, bus bandwidth (nccl-tests definition); step latency "
                 "from an 8 KiB all-reduce of %.1f us less one launch, over 2(N-1) steps", c->date,
                 (double)c->allreduce_bytes / (1 << 20), gpus, c->allreduce_small_us);
    } else if (!base) {
        /* One GPU and nothing to start from: a placeholder the user should replace. */
        out->allreduce.bus_gbps = pcie->present ? pcie->gbps * 0.8 : 1;
        out->allreduce.step_latency_us = 10;
        snprintf(out->allreduce.source, sizeof out->allreduce.source, "not measured (one GPU): "
                 "guessed as 80%% of the host link; calibrate on 2 or more GPUs");
    }
    if (c->n_gpus > 1 && calibration_peer_allreduce(c, out->launch_us, &out->peer_allreduce) == PB_OK)
        snprintf(out->peer_allreduce.source, sizeof out->peer_allreduce.source, "bench --calibrate %s: peer "
                 "all-reduce of bf16 on %s, 8 KiB to 32 MiB against NCCL; one-shot 8 KiB %.1f us", c->date, gpus,
                 c->ar_us[CALIBRATION_AR_ONESHOT][0]);
    if (calibration_shared_gpu(c, &out->shared_gpu) == PB_OK)
        snprintf(out->shared_gpu.source, sizeof out->shared_gpu.source, "bench --calibrate %s: two logical "
                 "ranks on GPU 0, event-synchronised peer all-reduce of bf16, GPU time per call of 50 queued "
                 "ahead: one-shot 8 KiB %.1f us, 32 MiB %.1f us; two-shot 8 KiB %.1f us", c->date,
                 c->shared_ar_us[0][0], c->shared_ar_us[0][1], c->shared_ar_us[1][0]);
    if (calibration_shared_compute(c, out, &out->shared_compute) == PB_OK) {
        snprintf(out->shared_compute.source, sizeof out->shared_compute.source, "bench --calibrate %s: a layer "
                 "of %.40s on each of two parts of GPU 0, a stream each, in one graph: the pair's time over twice "
                 "one layer as this profile prices it (tp: ranks 0, 1 of 2), at decode batches 1, 4, 16, prompts "
                 "of 128, 512, 4096 rows", c->date,
                 c->decode_model.name);
        if (out->shared_compute.tuned_above.n > 0)
            source_append(out->shared_compute.source, sizeof out->shared_compute.source,
                          "; tuned_above_points: the same on parts tuned above the call's rows");
    }
    /* Loading requires a source for everything; say plainly what nobody measured. */
    for (int k = 0; k < LINK_KINDS; k++)
        if (!out->link[k].source[0])
            snprintf(out->link[k].source, sizeof out->link[k].source, "not measured here");
    if (!out->launch_source[0]) snprintf(out->launch_source, sizeof out->launch_source, "not measured");
    return device_profile_validate(out, "calibrated profile");
}

void calibration_fill_random_bf16(uint16_t *h, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float f = (float)((x >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        h[i] = (uint16_t)(bits >> 16);
    }
}
