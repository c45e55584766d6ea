/* Discrete-event replay of a schedule on a device profile. The rules are the
 * GPU executor's: a stream runs its steps in schedule order; a step waits for its
 * dependencies; compute kernels of one device share its SMs; copies share the
 * copy engines of their source and destination; a collective ends when its last
 * rank has arrived plus the collective's time, each rank's NCCL kernel spinning
 * from its own arrival (which is what CUPTI records on the GPU). */
#include "simulate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../base/check.h"
#include "sim_kernels.h"

/* Fallback dtype when a step carries no work and we derive it from the model. */
#define SIM_FALLBACK_DTYPE DTYPE_BF16

static double launch_ns(const struct device_profile *p) { return p->launch_us * 1e3; }

static int step_kernels(const struct step *st)
{
    switch (st->kind) {
    case STEP_EMBED: return SIM_KERNELS_EMBED;
    case STEP_LAYERS: return SIM_KERNELS_LAYER * (st->count > 0 ? st->count : 1);
    case STEP_ATTENTION: return SIM_KERNELS_ATTENTION;
    case STEP_MLP: return SIM_KERNELS_MLP;
    case STEP_HEAD: return SIM_KERNELS_HEAD;
    default: return 0;
    }
}

static int is_compute(enum step_kind k)
{
    return k == STEP_EMBED || k == STEP_LAYERS || k == STEP_ATTENTION || k == STEP_MLP ||
           k == STEP_HEAD;
}


/* Work of a step the strategy left empty, from the model (prefill assumed: the step
 * does not say how long the KV cache is). Tensor-parallel halves split as tp.c does. */
static void fallback_work(const struct model_spec *m, const struct step *st, int tp_world,
                          double *flops, double *bytes)
{
    *flops = *bytes = 0;
    if (!m) return;
    int batch = st->batch > 0 ? st->batch : 1;
    int seq = st->rows > 0 ? st->rows / batch : 1;
    if (seq < 1) seq = 1;
    double rows = (double)batch * seq, size = dtype_size(SIM_FALLBACK_DTYPE), h = m->hidden;
    double tp = tp_world > 0 ? tp_world : 1;
    double mlp_params = (double)model_mlp_params(m), mlp_flops = 2.0 * rows * mlp_params;
    double layer_flops = model_layer_flops(m, batch, seq, seq);
    double layer_bytes = model_layer_bytes(m, SIM_FALLBACK_DTYPE, batch, seq, seq);
    switch (st->kind) {
    case STEP_EMBED: *bytes = 2 * rows * h * size; break;
    case STEP_LAYERS:
        *flops = (st->count > 0 ? st->count : 1) * layer_flops;
        *bytes = (st->count > 0 ? st->count : 1) * layer_bytes;
        break;
    case STEP_ATTENTION:
        *flops = (layer_flops - mlp_flops) / tp;
        *bytes = (layer_bytes - mlp_params * size) / tp;
        break;
    case STEP_MLP:
        *flops = mlp_flops / tp;
        *bytes = mlp_params * size / tp + 2 * rows * h * size;
        break;
    case STEP_HEAD:
        *flops = model_head_flops(m, (int)rows) / tp;
        *bytes = ((double)m->vocab * h + rows * m->vocab) * size / tp;
        break;
    default: break;
    }
}

double sim_compute_ns(const struct device_profile *p, const struct model_spec *m,
                      const struct step *st, int tp_world, int part_rows)
{
    /* With the model and the profile's kernel efficiencies, each kernel is priced
     * on its own (sim_kernels.c); otherwise the step is one roofline. */
    if (m && p->kernels.present && st->rows > 0) return sim_step_kernels_ns(p, m, st, tp_world, part_rows);
    double flops = st->flops, bytes = st->mem_bytes;
    if (flops <= 0 && bytes <= 0) fallback_work(m, st, tp_world, &flops, &bytes);
    /* TFLOP/s -> FLOP/ns is x1e3; GB/s -> bytes/ns is x1. */
    double t_math = flops / (p->bf16_tflops * 1e3);
    double t_mem = bytes / p->hbm_gbps;
    return fmax(t_math, t_mem) + step_kernels(st) * launch_ns(p);
}

double sim_copy_ns(const struct device_profile *p, uint64_t bytes)
{
    const struct link_profile *l = &p->link[p->peer_link];
    return l->latency_us * 1e3 + (double)bytes / l->peer_gbps;
}

double sim_h2d_ns(const struct device_profile *p, uint64_t bytes)
{
    const struct link_profile *l = &p->link[LINK_PCIE];
    return l->latency_us * 1e3 + (double)bytes / l->gbps;
}

double sim_allreduce_ns(const struct device_profile *p, uint64_t bytes, int n)
{
    if (n <= 1) return 0;
    double steps = 2.0 * (n - 1);
    return launch_ns(p) + steps * p->allreduce.step_latency_us * 1e3 +
           steps / n * (double)bytes / p->allreduce.bus_gbps;
}

/* Read bandwidth (bytes/ns) and barrier latency (ns) of the peer path. */
static void peer_rates(const struct device_profile *p, int one_gpu, double *read, double *latency)
{
    const struct link_profile *l = &p->link[p->peer_link];
    *read = one_gpu ? p->hbm_gbps : p->peer_allreduce.present ? p->peer_allreduce.read_gbps : l->peer_gbps;
    *latency = (p->peer_allreduce.present ? p->peer_allreduce.latency_us : l->latency_us) * 1e3;
}

double sim_peer_allreduce_ns(const struct device_profile *p, enum allreduce_algo algo, uint64_t bytes, int n,
                             int one_gpu)
{
    if (n <= 1) return 0;
    const struct shared_gpu_profile *sh = &p->shared_gpu;
    if (one_gpu && sh->present) {
        /* Every rank's phases move bytes on the one GPU (kernels/allreduce.cu, events
         * between phases). One-shot, per rank: stage (read, write: 2), read all n stages
         * and write the sum (n + 1): n + 3 times the message, n(n + 3) over the ranks.
         * Two-shot, per rank: stage (2), reduce-scatter (read n slices of 1/n, write
         * one: 1 + 1/n), all-gather (n - 1 slices read and written: 2(n - 1)/n):
         * 3 + (2n - 1)/n, 5n - 1 over the ranks. */
        double traffic = algo == ALLREDUCE_TWOSHOT ? 5.0 * n - 1.0 : (double)n * (n + 3.0);
        double fixed = (algo == ALLREDUCE_TWOSHOT ? sh->twoshot_us : sh->oneshot_us) * 1e3;
        return fixed + traffic * (double)bytes / sh->gbps;
    }
    double read, latency;
    peer_rates(p, one_gpu, &read, &latency);
    if (algo == ALLREDUCE_TWOSHOT) return launch_ns(p) + 2 * latency + 2.0 * (n - 1) / n * (double)bytes / read;
    return launch_ns(p) + latency + (n - 1.0) * (double)bytes / read;
}

double sim_peer_allgather_ns(const struct device_profile *p, uint64_t bytes, int n, int one_gpu)
{
    if (n <= 1) return 0;
    /* On one GPU every rank copies all n slices (its own too) in that GPU's memory. */
    if (one_gpu) return (double)n * n * (launch_ns(p) + 2.0 * (double)bytes / p->hbm_gbps);
    return n * sim_copy_ns(p, bytes);
}

double sim_allgather_ns(const struct device_profile *p, uint64_t bytes, int n)
{
    if (n <= 1) return 0;
    double steps = n - 1.0;
    return launch_ns(p) + steps * p->allreduce.step_latency_us * 1e3 +
           steps * (double)bytes / p->allreduce.bus_gbps;
}

/* ---- the event loop ------------------------------------------------------------ */

enum sim_state { PENDING, ARRIVED, DONE };

struct sim {
    const struct device_profile *prof;
    const struct model_spec *m;
    const struct schedule *s;
    int n;
    enum sim_state *state;
    double *start, *end;       /* ns from the iteration's start */
    double *ready;             /* when a step's stream predecessor and dependencies were done */
    double *slow;              /* compute: x its time, where logical devices share its GPU (1 elsewhere) */
    double *h2d_start;         /* offloaded steps: the weight transfer before compute starts */
    double *h2d_end;
    int *prev_on_stream;       /* previous step on the same (device, stream), or -1 */
    int *group;                /* collectives: first member of the call, else -1 */
    int *group_size;           /* at the first member: ranks of the tp group the call spans */
    double *compute_free, *copy_out_free, *copy_in_free, *h2d_free;  /* per GPU (gpu[] below) */
    int gpu[PB_MAX_DEVICES];   /* logical device -> the GPU whose SMs and engines it uses */
    int shift;                 /* positions every step's context is past its template's */
    int part_rows;             /* rows the executor sizes (and tunes) the parts for: sim_schedule_part_rows */
    enum allreduce_algo allreduce;   /* how tp sums run (--allreduce) */
    int nccl;                  /* NCCL communicators exist: the executor's rule, cuda_executor.c */
};

/* Logical devices on one CUDA ordinal (--devices 0,0) share that GPU: the first
 * logical device of each ordinal stands for it. NULL: every device its own GPU. */
static void sim_map_gpus(struct sim *x, const int *ordinal)
{
    for (int d = 0; d < PB_MAX_DEVICES; d++) {
        x->gpu[d] = d;
        for (int k = 0; ordinal && k < d && k < x->s->n_devices && d < x->s->n_devices; k++)
            if (ordinal[k] == ordinal[d]) {
                x->gpu[d] = x->gpu[k];
                break;
            }
    }
}

static int same_call(const struct step *a, const struct step *b)
{
    return a->kind == b->kind && a->collective == b->collective;
}

static int sim_alloc(struct sim *x)
{
    int n = x->n, nd = x->s->n_devices > 0 ? x->s->n_devices : 1;
    x->state = calloc((size_t)n + 1, sizeof *x->state);
    x->start = calloc((size_t)n + 1, sizeof *x->start);
    x->end = calloc((size_t)n + 1, sizeof *x->end);
    x->ready = calloc((size_t)n + 1, sizeof *x->ready);
    x->slow = calloc((size_t)n + 1, sizeof *x->slow);
    x->h2d_start = calloc((size_t)n + 1, sizeof *x->h2d_start);
    x->h2d_end = calloc((size_t)n + 1, sizeof *x->h2d_end);
    x->prev_on_stream = calloc((size_t)n + 1, sizeof *x->prev_on_stream);
    x->group = calloc((size_t)n + 1, sizeof *x->group);
    x->group_size = calloc((size_t)n + 1, sizeof *x->group_size);
    x->compute_free = calloc((size_t)nd * 4, sizeof *x->compute_free);
    if (!x->state || !x->start || !x->end || !x->ready || !x->slow || !x->h2d_start || !x->h2d_end || !x->prev_on_stream ||
        !x->group || !x->group_size || !x->compute_free)
        return pb_fail("out of host memory simulating a schedule of %d steps", n);
    for (int i = 0; i < n; i++) x->slow[i] = 1;
    x->copy_out_free = x->compute_free + nd;
    x->copy_in_free = x->compute_free + 2 * nd;
    x->h2d_free = x->compute_free + 3 * nd;
    return PB_OK;
}

static void sim_release(struct sim *x)
{
    free(x->state);
    free(x->start);
    free(x->end);
    free(x->ready);
    free(x->slow);
    free(x->h2d_start);
    free(x->h2d_end);
    free(x->prev_on_stream);
    free(x->group);
    free(x->group_size);
    free(x->compute_free);
}

/* Stream predecessors and collective groups, and a check that every step names a
 * device the schedule has. */
static int sim_index(struct sim *x)
{
    const struct schedule *s = x->s;
    int nd = s->n_devices, ns = s->streams_per_device > 0 ? s->streams_per_device : 1;
    /* The first member of each call by (kind, id): ids number calls schedule-wide, so a
     * table indexed by id finds it at once (a backward scan per call was quadratic in
     * the steps of a tp schedule: 70B over 8 GPUs has 1280 calls a pass). */
    int max_id = -1;
    for (int i = 0; i < x->n; i++)
        if (step_is_collective(&s->steps[i]) && s->steps[i].collective > max_id) max_id = s->steps[i].collective;
    int *last = malloc(((size_t)nd * ns + 2 * ((size_t)max_id + 1)) * sizeof *last);
    if (!last) return pb_fail("out of host memory simulating a schedule");
    int *first = last + nd * ns;   /* [kind is all-gather][id] */
    for (int i = 0; i < nd * ns + 2 * (max_id + 1); i++) last[i] = -1;
    for (int i = 0; i < x->n; i++) {
        const struct step *st = &s->steps[i];
        if (st->device < 0 || st->device >= nd || st->stream < 0 || st->stream >= ns) {
            free(last);
            return pb_fail("schedule: step %d runs on device %d stream %d, outside the schedule's "
                           "%d devices x %d streams", i, st->device, st->stream, nd, ns);
        }
        if (st->kind == STEP_COPY && (st->src < 0 || st->src >= nd || st->dst < 0 || st->dst >= nd)) {
            free(last);
            return pb_fail("schedule: copy step %d goes from device %d to %d, outside the schedule's "
                           "%d devices", i, st->src, st->dst, nd);
        }
        int slot = st->device * ns + st->stream;
        x->prev_on_stream[i] = last[slot];
        last[slot] = i;
        x->group[i] = -1;
        if (!step_is_collective(st)) continue;
        if (st->group < 0 || st->group >= s->n_groups || s->group_of[st->device] != st->group) {
            free(last);
            return pb_fail("schedule: collective step %d runs on device %d, which is not in its group %d",
                           i, st->device, st->group);
        }
        /* The first member of a call is the lowest index with the same kind and id. */
        if (st->collective >= 0) {
            int *f = &first[(st->kind == STEP_ALLGATHER) * (max_id + 1) + st->collective];
            if (*f < 0) *f = i;
            x->group[i] = *f;
        }
        for (int j = i - 1; st->collective < 0 && j >= 0 && x->group[i] < 0; j--)
            if (step_is_collective(&s->steps[j]) && same_call(&s->steps[j], st)) x->group[i] = x->group[j];
        if (x->group[i] < 0) x->group[i] = i;
        /* A call ends once every rank of its group has arrived. */
        x->group_size[x->group[i]] = schedule_group_size(s, st->group);
    }
    free(last);
    return PB_OK;
}

/* The earliest time step i may start on its stream: its stream predecessor and its
 * dependencies done. Returns 0 if one of them is not done yet. */
static int ready_time(const struct sim *x, int i, double *t)
{
    const struct step *st = &x->s->steps[i];
    double r = 0;
    int p = x->prev_on_stream[i];
    if (p >= 0) {
        if (x->state[p] != DONE) return 0;
        r = fmax(r, x->end[p]);
    }
    for (int k = 0; k < st->n_deps; k++) {
        int d = st->deps[k];
        if (d < 0 || d >= i) continue;   /* schedule_add refuses these; ignore defensively */
        if (x->state[d] != DONE) return 0;
        r = fmax(r, x->end[d]);
    }
    *t = r;
    return 1;
}

/* Run a step whose inputs are ready at `t`; collectives only arrive here. */
static void sim_run_step(struct sim *x, int i, double t)
{
    const struct step *st = &x->s->steps[i];
    const struct device_profile *p = x->prof;
    int d = x->gpu[st->device];
    x->ready[i] = t;
    if (step_is_collective(st)) {
        x->start[i] = t;
        x->state[i] = ARRIVED;
        return;
    }
    if (st->kind == STEP_COPY && x->gpu[st->src] == x->gpu[st->dst]) {
        /* Between logical devices of one GPU: a device-to-device copy in its own
         * memory (read and write), on its copy engine. */
        int g = x->gpu[st->src];
        double b = fmax(t, x->copy_out_free[g]);
        x->start[i] = b;
        x->end[i] = b + p->launch_us * 1e3 + 2.0 * (double)st->bytes / p->hbm_gbps;
        x->copy_out_free[g] = x->end[i];
    } else if (st->kind == STEP_COPY) {
        int gs = x->gpu[st->src], gd = x->gpu[st->dst];
        double b = fmax(t, fmax(x->copy_out_free[gs], x->copy_in_free[gd]));
        x->start[i] = b;
        x->end[i] = b + sim_copy_ns(p, st->bytes);
        x->copy_out_free[gs] = x->copy_in_free[gd] = x->end[i];
    } else {
        double b = t;
        if (st->offloaded && st->bytes) {
            /* accelerate's offload hook copies the weights in before the module runs. */
            x->h2d_start[i] = fmax(b, x->h2d_free[d]);
            b = x->h2d_end[i] = x->h2d_free[d] = x->h2d_start[i] + sim_h2d_ns(p, st->bytes);
        }
        b = fmax(b, x->compute_free[d]);
        x->start[i] = b;
        struct step at = *st;   /* the step at this pass's context */
        at.context += x->shift;
        at.flops += x->shift * st->flops_per_position;
        at.mem_bytes += x->shift * st->bytes_per_position;
        x->end[i] = b + x->slow[i] * sim_compute_ns(p, x->m, &at, x->s->tp_world, x->part_rows);
        x->compute_free[d] = x->end[i];
    }
    x->state[i] = DONE;
}

/* Ranks of step st's group on one GPU (--devices 0,0): peer reads are its own memory. */
static int call_on_one_gpu(const struct sim *x, const struct step *st)
{
    for (int a = 0; a < x->s->n_devices; a++)
        for (int b = 0; b < a; b++)
            if (x->s->group_of[a] == st->group && x->s->group_of[b] == st->group && x->gpu[a] == x->gpu[b])
                return 1;
    return 0;
}

/* A call's time once all ranks are in, by the path the CUDA executor takes for it. */
static double sim_call_ns(const struct sim *x, const struct step *st, uint64_t bytes, int size)
{
    int one_gpu = call_on_one_gpu(x, st);
    struct allreduce_table table = device_profile_allreduce_table(x->prof);
    if (st->kind == STEP_ALLGATHER)
        return x->nccl && !one_gpu ? sim_allgather_ns(x->prof, bytes, size)
                                   : sim_peer_allgather_ns(x->prof, bytes, size, one_gpu);
    enum allreduce_algo algo = allreduce_choose(x->allreduce, &table, bytes, x->nccl && !one_gpu);
    return algo == ALLREDUCE_NCCL ? sim_allreduce_ns(x->prof, bytes, size)
                                  : sim_peer_allreduce_ns(x->prof, algo, bytes, size, one_gpu);
}

/* When every rank of step i's call has arrived, all of them end together. */
static void sim_try_finish_call(struct sim *x, int i)
{
    const struct step *st = &x->s->steps[i];
    int g = x->group[i], size = x->group_size[g], arrived = 0;
    double last = 0;
    uint64_t bytes = 0;
    for (int j = g; j < x->n && arrived < size; j++) {
        if (x->group[j] != g) continue;
        if (x->state[j] != ARRIVED) return;
        arrived++;
        last = fmax(last, x->start[j]);
        if (x->s->steps[j].bytes > bytes) bytes = x->s->steps[j].bytes;
    }
    double t = sim_call_ns(x, st, bytes, size);
    int shared = call_on_one_gpu(x, st);
    /* Stop at the last member: scanning on to the schedule's end made this quadratic. */
    for (int j = g, marked = 0; j < x->n && marked < size; j++) {
        if (x->group[j] != g) continue;
        x->end[j] = last + t;
        x->state[j] = DONE;
        /* Ranks sharing a GPU sum with kernels on its SMs: its compute waits for them. */
        int gpu = x->gpu[x->s->steps[j].device];
        if (shared && x->compute_free[gpu] < x->end[j]) x->compute_free[gpu] = x->end[j];
        marked++;
    }
}

/* Resolve steps in passes over the schedule until all are done. A pass resolves a
 * step once its stream predecessor and dependencies are; schedules in issue order
 * finish in one or two passes. No progress in a pass means the schedule deadlocks. */
static int sim_iterate(struct sim *x)
{
    int done = 0;
    while (done < x->n) {
        int progress = 0;
        for (int i = 0; i < x->n; i++) {
            if (x->state[i] != PENDING) continue;
            double t;
            if (!ready_time(x, i, &t)) continue;
            sim_run_step(x, i, t);
            progress = 1;
            if (x->state[i] == ARRIVED) sim_try_finish_call(x, i);
        }
        int now = 0;
        for (int i = 0; i < x->n; i++) now += x->state[i] == DONE;
        if (!progress) {
            for (int i = 0; i < x->n; i++)
                if (x->state[i] != DONE)
                    return pb_fail("schedule cannot finish: step %d (device %d, stream %d) waits "
                                   "forever (a dependency cycle, or a collective that not every "
                                   "rank reaches)", i, x->s->steps[i].device, x->s->steps[i].stream);
        }
        done = now;
    }
    return PB_OK;
}

/* Logical devices sharing a GPU run their kernels interleaved wherever both have
 * work: a compute step whose time from ready to end overlaps that of a compute step
 * of another logical device on its GPU (in the replay just made, where the GPU ran
 * them one after the other) is priced at the profile's measured slowdown for its
 * rows (the tp table for tensor-parallel halves; whole layers of a microbatch below
 * its part's tune rows: the tuned_above points of those tune rows, where the profile
 * has them). Returns 1 when any step was marked (the caller replays again). */
static int mark_shared_compute(struct sim *x)
{
    const struct shared_compute_profile *sc = &x->prof->shared_compute;
    if (sc->layers.n <= 0 && sc->tp.n <= 0 && sc->tuned_above.n <= 0) return 0;
    int marked = 0;
    for (int i = 0; i < x->n; i++) {
        const struct step *a = &x->s->steps[i];
        if (!is_compute(a->kind)) continue;
        for (int j = 0; j < x->n; j++) {
            const struct step *b = &x->s->steps[j];
            if (j == i || !is_compute(b->kind) || b->device == a->device || x->gpu[b->device] != x->gpu[a->device])
                continue;
            if (x->ready[i] < x->end[j] && x->ready[j] < x->end[i]) {
                /* tensor-parallel halves (whole-layer steps are never sharded: sim_step_call) */
                int tp = x->s->tp_world > 1 && a->kind != STEP_LAYERS;
                double rows = a->rows > 0 ? a->rows : 1;
                x->slow[i] = tp ? shared_slowdown_at(&sc->tp, rows)
                                : shared_layer_slowdown_at(sc, rows,
                                                           sim_step_call(x->m, a, 1, x->part_rows).tune_rows);
                marked = 1;
                break;
            }
        }
    }
    return marked;
}

/* Back to the start of the replay, keeping the index and the slowdowns. */
static void sim_rewind(struct sim *x)
{
    int nd = x->s->n_devices > 0 ? x->s->n_devices : 1;
    memset(x->state, 0, (size_t)x->n * sizeof *x->state);
    memset(x->start, 0, (size_t)x->n * sizeof *x->start);
    memset(x->end, 0, (size_t)x->n * sizeof *x->end);
    memset(x->h2d_start, 0, (size_t)x->n * sizeof *x->h2d_start);
    memset(x->h2d_end, 0, (size_t)x->n * sizeof *x->h2d_end);
    memset(x->compute_free, 0, (size_t)nd * 4 * sizeof *x->compute_free);
}

/* ---- records ------------------------------------------------------------------ */

static uint64_t ns_at(double base, double t) { return (uint64_t)llround(base + t); }

static int emit_step(const struct sim *x, int i, int iteration, double base, struct trace *out)
{
    const struct step *st = &x->s->steps[i];
    struct record r = {.device = st->device, .stream = st->stream, .iteration = iteration,
                       .src_device = -1, .dst_device = -1, .correlation = (uint32_t)i};
    r.has_step = 1;   /* as the CUDA executor tags its records */
    r.step = i;
    r.microbatch = x->s->microbatches > 1 ? st->microbatch : -1;
    step_label(x->s, st, r.name, sizeof r.name);
    r.start_ns = ns_at(base, x->start[i]);
    r.end_ns = ns_at(base, x->end[i]);
    if (is_compute(st->kind)) {
        if (st->offloaded && st->bytes) {
            struct record h = r;
            h.kind = REC_MEMCPY;
            h.copy = COPY_HTOD;
            h.dst_device = st->device;
            h.bytes = st->bytes;
            h.start_ns = ns_at(base, x->h2d_start[i]);
            h.end_ns = ns_at(base, x->h2d_end[i]);
            snprintf(h.name, sizeof h.name, "h2d weights (%.70s)", r.name);
            PB_TRY(trace_add(out, &h));
        }
        r.kind = REC_KERNEL;
    } else if (step_is_collective(st)) {
        r.kind = REC_COMM;
        r.bytes = st->bytes;
    } else {   /* STEP_COPY: every other kind is compute or a collective */
        r.kind = REC_MEMCPY;
        r.copy = COPY_PTOP;
        r.src_device = st->src;
        r.dst_device = st->dst;
        r.bytes = st->bytes;
    }
    return trace_add(out, &r);
}

int simulate_schedule(const struct device_profile *prof, const struct model_spec *m,
                      const struct schedule *s, int iterations, struct trace *out,
                      double *latency_ms)
{
    return simulate_schedule_on(prof, m, s, NULL, iterations, out, latency_ms);
}

static int simulate_shifted(const struct device_profile *prof, const struct model_spec *m,
                            const struct schedule *s, const int *ordinal, int shift, enum allreduce_algo algo,
                            int part_rows, int iterations, struct trace *out, double *latency_ms);

int simulate_schedule_on(const struct device_profile *prof, const struct model_spec *m,
                         const struct schedule *s, const int *ordinal, int iterations, struct trace *out,
                         double *latency_ms)
{
    return simulate_shifted(prof, m, s, ordinal, 0, ALLREDUCE_NCCL, 0, iterations, out, latency_ms);
}

int simulate_schedule_allreduce(const struct device_profile *prof, const struct model_spec *m,
                                const struct schedule *s, const int *ordinal, enum allreduce_algo algo,
                                int iterations, struct trace *out, double *latency_ms)
{
    return simulate_shifted(prof, m, s, ordinal, 0, algo, 0, iterations, out, latency_ms);
}

int simulate_step_on_parts(const struct device_profile *prof, const struct model_spec *m, const struct schedule *s,
                           const int *ordinal, enum allreduce_algo algo, int part_rows, struct trace *out,
                           double *latency_ms)
{
    return simulate_shifted(prof, m, s, ordinal, 0, algo, part_rows, 1, out, latency_ms);
}

int simulate_pass(const struct device_profile *prof, const struct model_spec *m, const struct program *g,
                  int k, const int *ordinal, enum allreduce_algo algo, struct trace *out, double *latency_ms)
{
    const struct schedule *s = program_pass_schedule(g, k);
    int shift = g->passes[k].decode ? g->passes[k].context - g->passes[1].context : 0;
    /* every pass runs on the parts the prompt sized */
    return simulate_shifted(prof, m, s, ordinal, shift, algo, sim_schedule_part_rows(&g->prompt), 1, out,
                            latency_ms);
}

static int simulate_shifted(const struct device_profile *prof, const struct model_spec *m,
                            const struct schedule *s, const int *ordinal, int shift, enum allreduce_algo algo,
                            int part_rows, int iterations, struct trace *out, double *latency_ms)
{
    trace_init(out, s->n_devices);
    out->predicted = 1;
    out->busy_known = 1;
    *latency_ms = 0;
    if (iterations < 1) iterations = 1;
    if (s->n_steps == 0) return PB_OK;
    struct sim x = {.prof = prof, .m = m, .s = s, .n = s->n_steps, .shift = shift, .allreduce = algo,
                    .part_rows = part_rows > 0 ? part_rows : sim_schedule_part_rows(s)};
    sim_map_gpus(&x, ordinal);
    /* NCCL runs only where no two ranks share a GPU: auto's communicators, or nccl's. */
    int shared = 0;
    for (int a = 0; a < s->n_devices; a++)
        for (int b = 0; b < a; b++) shared |= s->group_of[a] == s->group_of[b] && x.gpu[a] == x.gpu[b];
    x.nccl = algo == ALLREDUCE_NCCL || (algo == ALLREDUCE_AUTO && !shared);
    int rc = sim_alloc(&x);
    if (rc == PB_OK) rc = sim_index(&x);
    if (rc == PB_OK) rc = sim_iterate(&x);
    int one_gpu = 0;   /* any two logical devices on one GPU, whatever their groups */
    for (int a = 0; a < s->n_devices; a++)
        for (int b = 0; b < a; b++) one_gpu |= x.gpu[a] == x.gpu[b];
    if (rc == PB_OK && one_gpu && mark_shared_compute(&x)) {
        sim_rewind(&x);
        rc = sim_iterate(&x);
    }
    double length = 0;
    for (int i = 0; rc == PB_OK && i < x.n; i++) length = fmax(length, x.end[i]);
    /* Every iteration is the same replay: the executor waits for one to end before
     * it launches the next, and the model has no state that carries over. */
    for (int it = 0; rc == PB_OK && it < iterations; it++) {
        double base = it * length;
        struct record range = {.kind = REC_RANGE, .device = -1, .iteration = it,
                               .src_device = -1, .dst_device = -1,
                               .start_ns = ns_at(base, 0), .end_ns = ns_at(base, length)};
        snprintf(range.name, sizeof range.name, "iteration %d", it);
        rc = trace_add(out, &range);
        for (int i = 0; rc == PB_OK && i < x.n; i++) rc = emit_step(&x, i, it, base, out);
    }
    sim_release(&x);
    if (rc != PB_OK) {
        trace_free(out);
        return rc;
    }
    *latency_ms = length / 1e6;
    return PB_OK;
}
