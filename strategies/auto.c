/* The `auto` strategy: the device map transformers 5.17 (with accelerate 1.15) picks for
 * from_pretrained(device_map="auto" | "balanced" | "balanced_low_0" | "sequential").
 *
 * transformers' _get_device_map does two things, and so does this file:
 *  1. budgets: "sequential" takes the per-device max_memory as given; the others run
 *     get_balanced_memory, which caps every GPU but the last at
 *     total // n + 1.25 * max(decoder layer, mean leaf module) (balanced_low_0: divide by
 *     n - 1 and give GPU 0 only what the others cannot hold);
 *  2. infer_auto_device_map: walk the module tree in order, filling one device after
 *     another; a module that does not fit is split into its children unless it is a
 *     decoder layer (a no-split module) or has none, else the walk moves to the next
 *     device. GPU 0 and the cpu keep room for the largest layer still to be placed
 *     (for weights offloaded to the cpu to be brought back). After the GPUs comes the
 *     cpu, then the disk.
 * Sizes are counted as transformers' own compute_module_sizes does: parameters and all
 * buffers (rotary_emb's non-persistent inv_freq and original_inv_freq, float32), with the
 * tied lm_head.weight not counted at all. The quirks (the largest-layer reservation
 * recomputed without the module being placed, the strict and non-strict comparisons)
 * are reproduced on purpose: the fixture of real maps checks them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "strategy.h"
#include "../base/check.h"

/* Tree nodes: root, model, lm_head, model's four children, then the decoder layers.
 * Children of a node are contiguous, so a node lists them as a range. */
enum { N_ROOT, N_MODEL, N_HEAD, N_EMBED, N_LAYERS, N_NORM, N_ROTARY, N_FIRST_LAYER };
#define AUTO_MAX_NODES (N_FIRST_LAYER + PB_MAX_LAYERS)
#define AUTO_MAX_SLOTS (PB_MAX_DEVICES + 2) /* GPUs, cpu, disk */
#define AUTO_DISK (-2)
#define AUTO_UNASSIGNED (-1)
/* rotary_emb registers inv_freq and original_inv_freq, each head_dim/2 float32 values. */
#define ROTARY_BUFFERS 2
#define ROTARY_BUFFER_ELEMENT 4

struct tree_node {
    char name[PB_MODULE_NAME_LEN];
    int64_t bytes;           /* parameters and buffers below this node */
    int parent;
    int first_child, n_children;
    int no_split;            /* a decoder layer: placed whole or not at all */
};

struct module_tree {
    int n;
    struct tree_node node[AUTO_MAX_NODES];
    int tied;                /* lm_head.weight is model.embed_tokens.weight */
    int64_t embed_weight;    /* bytes of model.embed_tokens.weight */
    int64_t layer_bytes;     /* one decoder layer */
    int n_leaves;            /* modules holding tensors directly, as get_balanced_memory counts */
};

/* Devices in accelerate's order: GPUs by index, then cpu, then disk. */
struct device_slots {
    int n;
    int id[AUTO_MAX_SLOTS];        /* GPU index, PB_DEVICE_CPU or AUTO_DISK */
    int64_t budget[AUTO_MAX_SLOTS];
    int main_device[AUTO_MAX_SLOTS]; /* first GPU and cpu keep room for the largest layer */
};

/* The walk's state: the modules still to place, front first. */
struct walk {
    int queue[AUTO_MAX_NODES];
    int len;
    int max_names[AUTO_MAX_NODES]; /* the remaining layers of the largest size */
    int n_max_names;
    int64_t max_layer;
    int64_t used[AUTO_MAX_SLOTS];
    int slot;                       /* device being filled */
    int assigned[AUTO_MAX_NODES];   /* slot per node, or AUTO_UNASSIGNED */
};


static void set_node(struct module_tree *t, int i, const char *name, int64_t bytes, int parent)
{
    struct tree_node *n = &t->node[i];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->bytes = bytes;
    n->parent = parent;
    n->first_child = 0;
    n->n_children = 0;
    n->no_split = 0;
}

static void set_children(struct module_tree *t, int i, int first, int count)
{
    t->node[i].first_child = first;
    t->node[i].n_children = count;
}

static int build_tree(const struct model_spec *m, enum dtype dt, struct module_tree *t)
{
    if (m->layers < 0 || m->layers > AUTO_MAX_NODES - N_FIRST_LAYER)
        return pb_fail("auto: %d layers is more than the placement can hold", m->layers);
    int64_t size = dtype_size(dt);
    int head_dim = m->head_dim > 0 ? m->head_dim : m->hidden / m->heads;
    t->tied = m->tie_embeddings;
    t->embed_weight = (int64_t)model_embed_params(m) * size;
    t->layer_bytes = (int64_t)model_layer_params(m) * size;
    int64_t rotary = (int64_t)ROTARY_BUFFERS * (head_dim / 2) * ROTARY_BUFFER_ELEMENT;
    int64_t head = t->tied ? 0 : t->embed_weight;
    int64_t norm = (int64_t)m->hidden * size;
    int64_t layers = t->layer_bytes * m->layers;
    int64_t model = t->embed_weight + layers + norm + rotary;

    t->n = N_FIRST_LAYER + m->layers;
    set_node(t, N_ROOT, "", model + head, -1);
    set_node(t, N_MODEL, "model", model, N_ROOT);
    set_node(t, N_HEAD, "lm_head", head, N_ROOT);
    set_node(t, N_EMBED, "model.embed_tokens", t->embed_weight, N_MODEL);
    set_node(t, N_LAYERS, "model.layers", layers, N_MODEL);
    set_node(t, N_NORM, "model.norm", norm, N_MODEL);
    set_node(t, N_ROTARY, "model.rotary_emb", rotary, N_MODEL);
    set_children(t, N_ROOT, N_MODEL, 2);
    set_children(t, N_MODEL, N_EMBED, 4);
    set_children(t, N_LAYERS, N_FIRST_LAYER, m->layers);
    for (int i = 0; i < m->layers; i++) {
        char name[PB_MODULE_NAME_LEN];
        snprintf(name, sizeof name, "model.layers.%d", i);
        set_node(t, N_FIRST_LAYER + i, name, t->layer_bytes, N_LAYERS);
        t->node[N_FIRST_LAYER + i].no_split = 1;
    }
    /* Leaf modules: embedding, per layer 7 projections and 2 norms, the final norm, rotary
     * (it holds buffers), and lm_head unless its only weight is the tied one. */
    t->n_leaves = 1 + 9 * m->layers + 1 + (rotary > 0) + !t->tied;
    return PB_OK;
}

/* get_balanced_memory's cap for every GPU but the last. */
static int64_t balanced_per_gpu(const struct module_tree *t, int n_layers, int divisor)
{
    int64_t total = t->node[N_ROOT].bytes;
    int64_t per_gpu = total / divisor;
    int64_t no_split = n_layers > 0 ? t->layer_bytes : 0;
    /* Python: int(sum(leaves) / len(leaves)), a float division truncated. */
    int64_t mean_leaf = (int64_t)((double)total / (double)(t->n_leaves > 0 ? t->n_leaves : 1));
    int64_t larger = no_split > mean_leaf ? no_split : mean_leaf;
    return per_gpu + (int64_t)(1.25 * (double)larger);
}

/* GPU budgets of the policy; a GPU with budget 0 is absent from max_memory. */
static int policy_budgets(const struct module_tree *t, int n_layers, const struct machine *mc,
                          int64_t *gpu)
{
    int num = 0, last = -1, first = -1;
    for (int i = 0; i < mc->gpus; i++) {
        gpu[i] = (int64_t)mc->gpu_memory[i];
        if (gpu[i] > 0) {
            num++;
            last = i;
            if (first < 0) first = i;
        }
    }
    if (mc->policy == MAP_SEQUENTIAL || num == 0) return PB_OK;
    int low_zero = mc->policy == MAP_BALANCED_LOW_0;
    if (num == 1) {
        low_zero = 0;
        /* Budgets read from the GPUs (not given by the user): keep 10% for activations. */
        if (!mc->budgets_from_user) gpu[first] = (int64_t)floor((double)gpu[first] * 0.9);
    }
    int64_t per_gpu = balanced_per_gpu(t, n_layers, low_zero ? num - 1 : num);
    for (int i = 0; i < last; i++) {
        if (gpu[i] <= 0) continue;
        int64_t cap = low_zero && i == 0 ? gpu[0] : per_gpu;
        if (cap < gpu[i]) gpu[i] = cap;
    }
    if (!low_zero) return PB_OK;
    if (gpu[0] <= 0) return pb_fail("auto: balanced_low_0 needs a memory budget for GPU 0");
    int64_t others = 0;
    for (int i = 1; i < num; i++) {
        if (gpu[i] <= 0) return pb_fail("auto: balanced_low_0 needs budgets for GPUs 0..%d", num - 1);
        others += gpu[i];
    }
    int64_t min_zero = t->node[N_ROOT].bytes - others;
    if (min_zero < 0) min_zero = 0;
    if (min_zero < gpu[0]) gpu[0] = min_zero;
    return PB_OK;
}

static void build_slots(const struct machine *mc, const int64_t *gpu, struct device_slots *s)
{
    s->n = 0;
    for (int i = 0; i < mc->gpus; i++) {
        if ((int64_t)mc->gpu_memory[i] <= 0) continue; /* not in max_memory */
        s->id[s->n] = i;
        s->budget[s->n] = gpu[i];
        s->main_device[s->n] = s->n == 0;
        s->n++;
    }
    /* A cpu budget of 0 behaves as no cpu entry: nothing fits there, the walk moves on. */
    s->id[s->n] = PB_DEVICE_CPU;
    s->budget[s->n] = (int64_t)mc->cpu_memory;
    s->main_device[s->n] = 1;
    s->n++;
    s->id[s->n] = AUTO_DISK;
    s->budget[s->n] = INT64_MAX;
    s->main_device[s->n] = 0;
    s->n++;
}

/* `name` is `other` or one of its ancestors (accelerate: other.startswith(name + ".")). */
static int is_within(const char *other, const char *name)
{
    size_t n = strlen(name);
    return strcmp(other, name) == 0 || (strncmp(other, name, n) == 0 && other[n] == '.');
}

/* get_max_layer_size: the largest module that will be placed whole (a leaf or a no-split
 * layer), depth first through the given nodes, with every node reaching that size. */
static void max_layer_visit(const struct module_tree *t, int i, struct walk *w)
{
    const struct tree_node *n = &t->node[i];
    if (n->n_children > 0 && !n->no_split) {
        for (int c = 0; c < n->n_children; c++) max_layer_visit(t, n->first_child + c, w);
        return;
    }
    if (n->bytes > w->max_layer) {
        w->max_layer = n->bytes;
        w->n_max_names = 0;
    }
    if (n->bytes == w->max_layer) w->max_names[w->n_max_names++] = i;
}

static void max_layer_recompute(const struct module_tree *t, struct walk *w)
{
    w->max_layer = 0;
    w->n_max_names = 0;
    for (int q = 0; q < w->len; q++) max_layer_visit(t, w->queue[q], w);
}

/* Forget the node being placed (and what lies within it) from the largest-layer list;
 * once none is left, the largest among the modules still queued takes over. */
static void max_layer_forget(const struct module_tree *t, struct walk *w, int node)
{
    int kept = 0;
    for (int k = 0; k < w->n_max_names; k++) {
        int other = w->max_names[k];
        if (!is_within(t->node[other].name, t->node[node].name)) w->max_names[kept++] = other;
    }
    w->n_max_names = kept;
    if (kept == 0) max_layer_recompute(t, w);
}

static void queue_remove(struct walk *w, int at)
{
    memmove(&w->queue[at], &w->queue[at + 1], (size_t)(w->len - at - 1) * sizeof w->queue[0]);
    w->len--;
}

/* Replace queue[at] by the node's children, in order. */
static void queue_expand(const struct module_tree *t, struct walk *w, int at)
{
    const struct tree_node *n = &t->node[w->queue[at]];
    int k = n->n_children;
    memmove(&w->queue[at + k], &w->queue[at + 1], (size_t)(w->len - at - 1) * sizeof w->queue[0]);
    for (int c = 0; c < k; c++) w->queue[at + c] = n->first_child + c;
    w->len += k - 1;
}

static void queue_push_front(struct walk *w, int node)
{
    memmove(&w->queue[1], &w->queue[0], (size_t)w->len * sizeof w->queue[0]);
    w->queue[0] = node;
    w->len++;
}

/* The tied parameters outside `node` whose partner lies inside it (none, or one). */
static int tied_outside(const struct module_tree *t, int node, const char **param)
{
    static const char *const group[2] = {"lm_head.weight", "model.embed_tokens.weight"};
    if (!t->tied) return 0;
    const char *name = t->node[node].name;
    int in0 = is_within(group[0], name), in1 = is_within(group[1], name);
    if (in0 == in1) return 0; /* neither or both inside: the tie does not cross the boundary */
    *param = in0 ? group[1] : group[0];
    return 1;
}

/* Bytes compute_module_sizes gives a parameter: the tied copy is not counted. */
static int64_t param_bytes(const struct module_tree *t, const char *param)
{
    return strcmp(param, "model.embed_tokens.weight") == 0 ? t->embed_weight : 0;
}

/* get_module_size_with_ties: the node plus the queued module holding its tied partner,
 * less the partner itself. Sets *tied_at to that module's queue index (or -1). */
static int size_with_ties(const struct module_tree *t, const struct walk *w, int node, int64_t *size,
                          int *tied_at)
{
    const char *param;
    *size = t->node[node].bytes;
    *tied_at = -1;
    if (!tied_outside(t, node, &param)) return PB_OK;
    for (int q = 0; q < w->len; q++) {
        const char *name = t->node[w->queue[q]].name;
        if (is_within(param, name) && strcmp(param, name) != 0) {
            *tied_at = q;
            *size += t->node[w->queue[q]].bytes - param_bytes(t, param);
            return PB_OK;
        }
    }
    return pb_fail("auto: %s is tied to %s, which is not among the modules left to place",
                   t->node[node].name, param);
}

static int splittable(const struct module_tree *t, int node)
{
    return t->node[node].n_children > 0 && !t->node[node].no_split;
}

static void assign(struct walk *w, int node, int tied_at, int64_t size)
{
    w->used[w->slot] += size;
    w->assigned[node] = w->slot;
    if (tied_at < 0) return;
    int tied = w->queue[tied_at];
    queue_remove(w, tied_at);
    w->assigned[tied] = w->slot;
}

/* One step of infer_auto_device_map for the node at the front of the queue. */
static int place_front(const struct module_tree *t, const struct device_slots *s, struct walk *w)
{
    int node = w->queue[0];
    queue_remove(w, 0);
    max_layer_forget(t, w, node);
    int64_t size = t->node[node].bytes, with_ties;
    int tied_at;
    int slot = w->slot, disk = s->id[slot] == AUTO_DISK;
    int64_t max_size = s->budget[slot], reserved = 0;
    if (s->main_device[slot]) {
        max_size -= w->max_layer;
        reserved = w->max_layer;
    }
    PB_TRY(size_with_ties(t, w, node, &with_ties, &tied_at));
    if (disk || w->used[slot] + with_ties <= max_size) {
        assign(w, node, tied_at, with_ties);
        return PB_OK;
    }
    /* The node fits without its tied partner: split the partner if it can be split. */
    if (tied_at >= 0 && w->used[slot] + size <= max_size && splittable(t, w->queue[tied_at])) {
        queue_expand(t, w, tied_at);
        queue_push_front(w, node);
        max_layer_recompute(t, w);
        return PB_OK;
    }
    if (w->used[slot] + size >= max_size && splittable(t, node)) {
        queue_push_front(w, node);
        queue_expand(t, w, 0);
        max_layer_recompute(t, w);
        return PB_OK;
    }
    /* Move on; the device keeps the room it reserved for the largest layer. */
    w->used[slot] += reserved;
    w->slot++;
    queue_push_front(w, node);
    return PB_OK;
}

static int infer_device_map(const struct module_tree *t, const struct device_slots *s, struct walk *w)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < t->n; i++) w->assigned[i] = AUTO_UNASSIGNED;
    w->queue[w->len++] = N_MODEL;
    w->queue[w->len++] = N_HEAD;
    max_layer_recompute(t, w);
    /* The disk takes everything, so every pass places a node or moves to a later device. */
    while (w->len > 0) PB_TRY(place_front(t, s, w));
    return PB_OK;
}

static int node_by_name(const struct module_tree *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->node[i].name, name) == 0) return i;
    return -1;
}

/* A module goes where it, or the nearest enclosing module, was assigned. */
static int module_slot(const struct module_tree *t, const struct walk *w, int node)
{
    for (; node >= 0; node = t->node[node].parent)
        if (w->assigned[node] != AUTO_UNASSIGNED) return w->assigned[node];
    return AUTO_UNASSIGNED;
}

static int fill_placement(const struct module_tree *t, const struct device_slots *s, const struct walk *w,
                          struct placement *out)
{
    for (int i = 0; i < out->n_modules; i++) {
        const char *name = out->modules[i].name;
        int node = node_by_name(t, name);
        if (node < 0) return pb_fail("auto: module %s is not in the model's module tree", name);
        int slot = module_slot(t, w, node);
        if (slot == AUTO_UNASSIGNED) return pb_fail("auto: module %s was not placed", name);
        if (s->id[slot] == AUTO_DISK)
            return pb_fail("auto: %s fits neither the GPUs nor the cpu budget; accelerate would offload "
                           "it to disk, which placebench does not do (raise the cpu= entry of --max-memory)",
                           name);
        out->device[i] = s->id[slot];
    }
    return PB_OK;
}

/* The tree and the walk together: about 100 KiB, so they live on the heap. */
struct auto_work {
    struct module_tree tree;
    struct walk walk;
    struct device_slots slots;
};

static int place_with(struct auto_work *a, const struct model_spec *m, const struct workload *w,
                      const struct machine *mc, struct placement *out)
{
    int64_t gpu[PB_MAX_DEVICES];
    PB_TRY(build_tree(m, w->dtype, &a->tree));
    PB_TRY(policy_budgets(&a->tree, m->layers, mc, gpu));
    build_slots(mc, gpu, &a->slots);
    PB_TRY(infer_device_map(&a->tree, &a->slots, &a->walk));
    placement_init(out, m, w->dtype, mc->gpus);
    return fill_placement(&a->tree, &a->slots, &a->walk, out);
}

static int auto_place(const struct model_spec *m, const struct workload *w, const struct machine *mc,
                      struct placement *out)
{
    if (mc->gpus < 1 || mc->gpus > PB_MAX_DEVICES)
        return pb_fail("auto: needs 1 to %d GPUs, got %d", PB_MAX_DEVICES, mc->gpus);
    struct auto_work *a = malloc(sizeof *a);
    if (!a) return pb_fail("auto: out of memory");
    int status = place_with(a, m, w, mc, out);
    free(a);
    return status;
}

const struct strategy auto_strategy = {
    .name = "auto",
    .help = "what transformers' device_map=auto|balanced|balanced_low_0|sequential picks "
            "(--device-map, --max-memory)",
    .place = auto_place,
    .plan = plan_one_pass,
};
