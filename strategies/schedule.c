/* Building schedules: the growable step list, and the schedule every sequential
 * placement shares (naive, auto, optimal, single; pipeline with microbatches). */
#include <stdlib.h>
#include <string.h>
#include "../base/check.h"
#include "strategy.h"

void schedule_init(struct schedule *s, int n_devices)
{
    memset(s, 0, sizeof *s);
    s->n_devices = n_devices;
    s->streams_per_device = 1;
    s->microbatches = 1;
    s->stages = 1;
    s->virtual_stages = 1;
    s->tp_world = 1;
    s->n_groups = 1;   /* group_of all 0: a collective spans every device */
}

void schedule_set_groups(struct schedule *s, int degree)
{
    if (degree < 1) degree = 1;
    s->tp_world = degree;
    s->n_groups = (s->n_devices + degree - 1) / degree;
    for (int d = 0; d < PB_MAX_DEVICES; d++) s->group_of[d] = d < s->n_devices ? d / degree : 0;
}

int schedule_group_size(const struct schedule *s, int group)
{
    int n = 0;
    for (int d = 0; d < s->n_devices; d++) n += s->group_of[d] == group;
    return n;
}

int schedule_group_rank(const struct schedule *s, int device)
{
    int r = 0;
    for (int d = 0; d < device; d++) r += s->group_of[d] == s->group_of[device];
    return r;
}

void schedule_free(struct schedule *s)
{
    free(s->steps);
    s->steps = NULL;
    s->n_steps = s->cap = 0;
}

int schedule_add(struct schedule *s, const struct step *st)
{
    if (s->n_steps == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        struct step *grown = realloc(s->steps, (size_t)cap * sizeof *grown);
        if (!grown) return pb_fail("out of host memory for a schedule of %d steps", cap);
        s->steps = grown;
        s->cap = cap;
    }
    for (int i = 0; i < st->n_deps; i++)
        if (st->deps[i] < 0 || st->deps[i] >= s->n_steps)
            return pb_fail("schedule: step %d depends on step %d, which does not precede it",
                           s->n_steps, st->deps[i]);
    if (st->stream + 1 > s->streams_per_device) s->streams_per_device = st->stream + 1;
    s->steps[s->n_steps] = *st;
    return s->n_steps++;
}

/* Copies run on stream 1 of the source device so the next microbatch's compute
 * on stream 0 is not queued behind them. */
int schedule_add_copy(struct schedule *s, int src, int dst, uint64_t bytes, int microbatch, int dep)
{
    struct step st = {.kind = STEP_COPY, .device = src, .stream = 1, .microbatch = microbatch,
                      .src = src, .dst = dst, .bytes = bytes, .n_deps = dep >= 0 ? 1 : 0,
                      .deps = {dep}};
    st.rows = dep >= 0 ? s->steps[dep].rows : 0;
    st.batch = dep >= 0 ? s->steps[dep].batch : 0;
    st.batch_offset = dep >= 0 ? s->steps[dep].batch_offset : 0;
    return schedule_add(s, &st);
}

/* The one table of step names: plan.json, traces and NVTX ranges all read it. */
static const char *const step_kind_names[] = {
    [STEP_EMBED] = "embed", [STEP_LAYERS] = "layers", [STEP_ATTENTION] = "attention", [STEP_MLP] = "mlp",
    [STEP_HEAD] = "head",   [STEP_COPY] = "copy",     [STEP_ALLREDUCE] = "allreduce", [STEP_ALLGATHER] = "allgather",
};

int step_is_collective(const struct step *st)
{
    return st->kind == STEP_ALLREDUCE || st->kind == STEP_ALLGATHER;
}

const char *step_kind_name(enum step_kind k)
{
    return (unsigned)k < sizeof step_kind_names / sizeof step_kind_names[0] ? step_kind_names[k] : "unknown";
}

void step_label(const struct schedule *s, const struct step *st, char *buf, size_t len)
{
    const char *kind = step_kind_name(st->kind);
    int n;
    switch (st->kind) {
    case STEP_LAYERS:
        n = st->count > 1 ? snprintf(buf, len, "%s %d-%d", kind, st->layer, st->layer + st->count - 1)
                          : snprintf(buf, len, "layer %d", st->layer);
        break;
    case STEP_ATTENTION:
    case STEP_MLP: n = snprintf(buf, len, "%s %d", kind, st->layer); break;
    case STEP_COPY: n = snprintf(buf, len, "%s %d->%d", kind, st->src, st->dst); break;
    case STEP_ALLREDUCE:
    case STEP_ALLGATHER: n = snprintf(buf, len, "%s %d", kind, st->collective); break;
    default: n = snprintf(buf, len, "%s", kind); break;
    }
    if (s->microbatches > 1 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " mb%d", st->microbatch);
}

void schedule_device_flops(const struct schedule *s, double *out)
{
    for (int d = 0; d < s->n_devices; d++) out[d] = 0;
    for (int i = 0; i < s->n_steps; i++) out[s->steps[i].device] += s->steps[i].flops;
}

void placement_init(struct placement *p, const struct model_spec *m, enum dtype dt, int n_devices)
{
    memset(p, 0, sizeof *p);
    p->n_modules = model_modules(m, dt, p->modules);
    p->n_devices = n_devices;
    p->virtual_stages = 1;
}

int placement_exec_device(int device)
{
    return device == PB_DEVICE_CPU ? 0 : device;
}

int placement_stages(const struct placement *p, int *stage_device, int *stage_first, int *stage_count)
{
    int n = 0, prev = -3;
    for (int i = 0; i < p->n_modules; i++) {
        const struct module *mod = &p->modules[i];
        if (mod->kind != MODULE_LAYER) continue;
        if (p->device[i] != prev) {
            stage_device[n] = p->device[i];
            stage_first[n] = mod->layer;
            stage_count[n] = 0;
            n++;
            prev = p->device[i];
        }
        stage_count[n - 1]++;
    }
    return n;
}

int placement_stage_devices(const struct placement *p, int *stage_device)
{
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES], n = 0;
    int runs = placement_stages(p, sd, sf, sc);
    /* Interleaved placements revisit their stages: each owner counts once, in order. */
    for (int i = 0; i < runs; i++) {
        int seen = 0;
        for (int k = 0; k < n && !seen; k++) seen = sd[k] == sd[i];
        if (!seen && n < PB_MAX_DEVICES) sd[n++] = sd[i];
    }
    for (int k = 0; k < n; k++) stage_device[k] = p->tensor_parallel ? sd[k] * p->tp_degree : sd[k];
    return n;
}

double module_flops(const struct model_spec *m, const struct module *mod, const struct workload *w)
{
    if (mod->kind == MODULE_LAYER) return model_layer_flops(m, w->batch, w->seq, w->context);
    if (mod->kind == MODULE_HEAD) return model_head_flops(m, w->batch * w->seq);
    return 0;
}

double module_mem_bytes(const struct model_spec *m, const struct module *mod, const struct workload *w)
{
    double size = dtype_size(w->dtype), rows = (double)w->batch * w->seq;
    switch (mod->kind) {
    case MODULE_LAYER: return model_layer_bytes(m, w->dtype, w->batch, w->seq, w->context);
    case MODULE_EMBED: return 2 * rows * m->hidden * size;
    case MODULE_NORM: return 2 * rows * m->hidden * size;
    case MODULE_HEAD: return (double)m->vocab * m->hidden * size + rows * ((double)m->vocab + m->hidden) * size;
    default: return 0;
    }
}

static int module_index(const struct placement *p, enum module_kind kind)
{
    for (int i = 0; i < p->n_modules; i++)
        if (p->modules[i].kind == kind) return i;
    return -1;
}

/* A compute step for one microbatch; work scales with its share of the batch. */
static struct step compute_step(enum step_kind kind, int device, int mb, int offset, int batch,
                                const struct workload *w)
{
    struct step st = {.kind = kind, .device = device, .microbatch = mb, .batch_offset = offset,
                      .batch = batch, .rows = batch * w->seq};
    return st;
}

/* Moves a microbatch's activations to `device` if they are elsewhere; returns the
 * step the next compute must wait for. */
static int move_to(struct schedule *s, const struct model_spec *m, const struct workload *w,
                   int *at, int device, int last, int mb)
{
    if (*at == device) return last;
    uint64_t bytes = (uint64_t)s->steps[last].rows * m->hidden * dtype_size(w->dtype);
    int c = schedule_add_copy(s, *at, device, bytes, mb, last);
    *at = device;
    return c;
}

/* Where one microbatch is on its way through a sequential placement: the device
 * holding its activations and the step that produced them. */
struct walk {
    int mb, offset, batch;
    int at, last;
};

static int walk_embed(struct schedule *s, const struct model_spec *m, const struct placement *p,
                      const struct workload *w, struct walk *k)
{
    struct workload part = *w;
    part.batch = k->batch;
    int e = module_index(p, MODULE_EMBED);
    k->at = placement_exec_device(p->device[e]);
    struct step st = compute_step(STEP_EMBED, k->at, k->mb, k->offset, k->batch, w);
    st.mem_bytes = module_mem_bytes(m, &p->modules[e], &part);
    st.offloaded = p->device[e] == PB_DEVICE_CPU;
    return (k->last = schedule_add(s, &st)) < 0 ? PB_ERR : PB_OK;
}

/* Layers [first, first + count) on `device` (GPU or PB_DEVICE_CPU) as pipeline stage `stage`. */
static int walk_layers(struct schedule *s, const struct model_spec *m, const struct workload *w, struct walk *k,
                       int device, int first, int count, int stage)
{
    int dev = placement_exec_device(device);
    int dep = move_to(s, m, w, &k->at, dev, k->last, k->mb);
    if (dep < 0) return PB_ERR;
    struct step st = compute_step(STEP_LAYERS, dev, k->mb, k->offset, k->batch, w);
    st.stage = stage;
    st.layer = first;
    st.count = count;
    st.offloaded = device == PB_DEVICE_CPU;
    if (st.offloaded) st.bytes = (uint64_t)count * model_layer_params(m) * dtype_size(w->dtype);
    st.flops = count * model_layer_flops(m, k->batch, w->seq, w->context);
    st.mem_bytes = count * model_layer_bytes(m, w->dtype, k->batch, w->seq, w->context);
    st.n_deps = 1;
    st.deps[0] = dep;
    return (k->last = schedule_add(s, &st)) < 0 ? PB_ERR : PB_OK;
}

/* Final norm and lm_head run together where lm_head lives. */
static int walk_head(struct schedule *s, const struct model_spec *m, const struct placement *p,
                     const struct workload *w, struct walk *k, int stage)
{
    struct workload part = *w;
    part.batch = k->batch;
    int h = module_index(p, MODULE_HEAD);
    int dev = placement_exec_device(p->device[h]);
    int dep = move_to(s, m, w, &k->at, dev, k->last, k->mb);
    if (dep < 0) return PB_ERR;
    struct step st = compute_step(STEP_HEAD, dev, k->mb, k->offset, k->batch, w);
    st.stage = stage;
    st.offloaded = p->device[h] == PB_DEVICE_CPU;
    if (st.offloaded) st.bytes = p->modules[h].param_bytes;
    st.flops = module_flops(m, &p->modules[h], &part);
    st.mem_bytes = module_mem_bytes(m, &p->modules[h], &part);
    st.n_deps = 1;
    st.deps[0] = dep;
    return (k->last = schedule_add(s, &st)) < 0 ? PB_ERR : PB_OK;
}

static int plan_microbatch(const struct model_spec *m, const struct placement *p, const struct workload *w,
                           int mb, int offset, int batch, struct schedule *s)
{
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    int stages = placement_stages(p, sd, sf, sc);
    struct walk k = {.mb = mb, .offset = offset, .batch = batch};
    PB_TRY(walk_embed(s, m, p, w, &k));
    for (int i = 0; i < stages; i++) PB_TRY(walk_layers(s, m, w, &k, sd[i], sf[i], sc[i], i));
    return walk_head(s, m, p, w, &k, stages ? stages - 1 : 0);
}

int plan_check_microbatches(const struct workload *w, int microbatches)
{
    if (w->batch % microbatches)
        return pb_fail("batch %d cannot be split into %d equal microbatches; choose a divisor of %d",
                       w->batch, microbatches, w->batch);
    return PB_OK;
}

int plan_sequential(const struct model_spec *m, const struct placement *p, const struct workload *w,
                    int microbatches, struct schedule *out)
{
    if (microbatches < 1) microbatches = 1;
    PB_TRY(plan_check_microbatches(w, microbatches));
    schedule_init(out, p->n_devices);
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES];
    out->stages = placement_stages(p, sd, sf, sc);
    out->microbatches = microbatches;
    int per = w->batch / microbatches;
    /* Microbatch-major issue order: each device's stream then runs microbatches in
     * order and events let stage k+1 work on microbatch i while stage k does i+1. */
    for (int mb = 0; mb < microbatches; mb++)
        if (plan_microbatch(m, p, w, mb, mb * per, per, out) != PB_OK) {
            schedule_free(out);
            return PB_ERR;
        }
    return PB_OK;
}

int plan_interleaved(const struct model_spec *m, const struct placement *p, const struct workload *w,
                     int microbatches, struct schedule *out)
{
    if (microbatches < 1) microbatches = 1;
    PB_TRY(plan_check_microbatches(w, microbatches));
    int sd[PB_MAX_STAGES], sf[PB_MAX_STAGES], sc[PB_MAX_STAGES], stage_dev[PB_MAX_DEVICES];
    int chunks = placement_stages(p, sd, sf, sc), stages = placement_stage_devices(p, stage_dev);
    int v = p->virtual_stages;
    if (chunks != v * stages)
        return pb_fail("internal: an interleaved placement of %d chunks over %d stages x %d virtual stages",
                       chunks, stages, v);
    size_t n_units = (size_t)microbatches * chunks;
    struct pipeline_unit *order = malloc(n_units * sizeof *order);
    struct walk *k = malloc((size_t)microbatches * sizeof *k);
    if (!order || !k) {
        free(order);
        free(k);
        return pb_fail("out of host memory planning %d microbatches x %d chunks", microbatches, chunks);
    }
    schedule_init(out, p->n_devices);
    out->stages = stages;
    out->virtual_stages = v;
    out->microbatches = microbatches;
    int per = w->batch / microbatches, rc = pipeline_order(stages, v, microbatches, order);
    for (int mb = 0; mb < microbatches; mb++) k[mb] = (struct walk){.mb = mb, .offset = mb * per, .batch = per};
    for (size_t u = 0; rc == PB_OK && u < n_units; u++) {
        struct walk *wk = &k[order[u].microbatch];
        int run = order[u].chunk * stages + order[u].stage;   /* runs are in layer order */
        if (run == 0) rc = walk_embed(out, m, p, w, wk);
        if (rc == PB_OK) rc = walk_layers(out, m, w, wk, sd[run], sf[run], sc[run], order[u].stage);
        if (rc == PB_OK && run == chunks - 1) rc = walk_head(out, m, p, w, wk, order[u].stage);
    }
    free(order);
    free(k);
    if (rc != PB_OK) schedule_free(out);
    return rc;
}

int plan_one_pass(const struct model_spec *m, const struct placement *p, const struct workload *w,
                  struct schedule *out)
{
    return plan_sequential(m, p, w, 1, out);
}
