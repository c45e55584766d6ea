/* CUPTI activity collection. The only file with global mutable state: CUPTI
 * delivers record buffers to plain callbacks with no user pointer, so the
 * buffers, the stream map and the dropped count live here, behind cupti.h. */
#include <cupti.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../../base/check.h"
#include "cupti.h"

/* Host buffers CUPTI fills, kept in a pool once CUPTI hands them back: a fresh
 * buffer asked for in the middle of a profiled iteration cost that iteration time
 * in proportion to its size (an H200 at 1x128: 32 MiB fresh buffers made the
 * profiled iterations 3-4x slower than untraced ones, docs/PERF.md). */
#define BUFFER_BYTES (8u << 20)
#define BUFFER_POOL 16
#define BUFFER_PREPARED 4   /* zeroed at cupti_start */
#define ALIGN 8
#define MAX_STREAMS 1024
#define PB_MAX_DEVICES_CUPTI 64   /* CUDA ordinals the collector maps */

struct stream_map {
    uint32_t cupti_id;
    int device, stream, dst;
};

/* Work replayed from a CUDA graph is reported on the stream that launched the
 * graph, so its records are placed by graph node instead: the executor names
 * the (device, stream) of every captured node, and instantiation's clones
 * inherit it (CUPTI reports the clone's id). */
struct node_map {
    uint64_t node_id;
    struct cupti_place where;
};

/* A launch's correlation id and the step it was issued for (external correlation). */
struct corr_map {
    uint32_t correlation;
    int step, microbatch;
};

static struct {
    pthread_mutex_t lock;
    int active;
    int collecting;           /* activity kinds enabled (cupti_set_collecting) */
    struct stream_map streams[MAX_STREAMS];
    int n_streams;
    struct node_map *nodes;
    int n_nodes, cap_nodes;
    CUpti_SubscriberHandle subscriber;   /* graph node clones; NULL if not subscribed */
    int ordinal_device[PB_MAX_DEVICES_CUPTI];
    struct corr_map *corr;    /* correlations seen since the last collect */
    int n_corr, cap_corr;
    struct record *pending;   /* decoded records not yet collected */
    int n_pending, cap_pending;
    uint64_t dropped;
    int oom;                  /* records lost to host allocation failure */
    int steps_only;           /* --profile-detail step: graph records, no kernel records */
    int n_graphs;             /* graph records since the last collect */
    uint8_t *pool[BUFFER_POOL];   /* buffers CUPTI has handed back, for its next requests */
    int n_pool;
    struct cupti_mode mode;   /* PB_CUPTI_MODE (cupti_set_mode) */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .mode = {.gate = 1, .copies = 1, .own_zero = 1}};

/* __cxa_demangle from libstdc++, declared here because this is C. */
extern char *__cxa_demangle(const char *mangled, char *out, size_t *len, int *status);

#define CUPTI_CHECK(call)                                                                          \
    do {                                                                                           \
        CUptiResult r_ = (call);                                                                   \
        if (r_ != CUPTI_SUCCESS) {                                                                 \
            const char *s_ = "unknown";                                                            \
            cuptiGetResultString(r_, &s_);                                                         \
            return pb_fail("%s:%d: %s failed: %s; run with --no-cupti to time without CUPTI",     \
                           __FILE__, __LINE__, #call, s_);                                         \
        }                                                                                          \
    } while (0)

/* A new buffer, zeroed when CUPTI is told buffers come zeroed (ownzero). */
static uint8_t *new_buffer(void)
{
    uint8_t *b = aligned_alloc(ALIGN, BUFFER_BYTES);
    if (b && g.mode.own_zero) memset(b, 0, BUFFER_BYTES);
    return b;
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    pthread_mutex_lock(&g.lock);
    *buffer = g.n_pool > 0 ? g.pool[--g.n_pool] : NULL;
    pthread_mutex_unlock(&g.lock);
    if (!*buffer) *buffer = new_buffer();
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static int lookup_stream(uint32_t id, int *device, int *stream, int *dst)
{
    for (int i = 0; i < g.n_streams; i++)
        if (g.streams[i].cupti_id == id) {
            *device = g.streams[i].device;
            *stream = g.streams[i].stream;
            *dst = g.streams[i].dst;
            return 1;
        }
    return 0;
}

static const struct cupti_place *lookup_node(uint64_t id)
{
    for (int i = g.n_nodes - 1; id && i >= 0; i--)
        if (g.nodes[i].node_id == id) return &g.nodes[i].where;
    return NULL;
}

static int add_node(uint64_t id, const struct cupti_place *where)
{
    if (g.n_nodes == g.cap_nodes) {
        int cap = g.cap_nodes ? 2 * g.cap_nodes : 1024;
        struct node_map *grown = realloc(g.nodes, (size_t)cap * sizeof *grown);
        if (!grown) return PB_ERR;
        g.nodes = grown;
        g.cap_nodes = cap;
    }
    g.nodes[g.n_nodes++] = (struct node_map){id, *where};
    return PB_OK;
}

static void place(struct record *r, uint32_t device_id, uint32_t stream_id, uint64_t graph_node)
{
    int dev, st, dst;
    const struct cupti_place *n = lookup_node(graph_node);
    if (n) {
        r->device = n->device;
        r->stream = n->stream;
        r->dst_device = n->dst;
        r->has_step = n->step >= 0;
        r->step = n->step;
        r->microbatch = n->microbatch;
    } else if (lookup_stream(stream_id, &dev, &st, &dst)) {
        r->device = dev;
        r->stream = st;
        r->dst_device = dst;
    } else {
        /* An unregistered stream (a library's own): the first logical device on that GPU. */
        r->device = device_id < PB_MAX_DEVICES_CUPTI ? g.ordinal_device[device_id] : -1;
        r->stream = -1;
        r->dst_device = -1;
    }
}

static void add_correlation(const CUpti_ActivityExternalCorrelation *x)
{
    if (x->externalKind != CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) return;
    if (g.n_corr == g.cap_corr) {
        int cap = g.cap_corr ? 2 * g.cap_corr : 4096;
        struct corr_map *grown = realloc(g.corr, (size_t)cap * sizeof *grown);
        if (!grown) {
            g.oom++;
            return;
        }
        g.corr = grown;
        g.cap_corr = cap;
    }
    /* cupti_push_step's id: (microbatch + 1) << 32 | (step + 1). */
    g.corr[g.n_corr++] = (struct corr_map){x->correlationId, (int)(uint32_t)x->externalId - 1,
                                           (int)(x->externalId >> 32) - 1};
}

static int cmp_corr(const void *a, const void *b)
{
    uint32_t x = ((const struct corr_map *)a)->correlation, y = ((const struct corr_map *)b)->correlation;
    return x < y ? -1 : x > y;
}

/* Give directly launched records the step their launch was issued for. */
static void resolve_steps(void)
{
    if (!g.n_corr) return;
    qsort(g.corr, (size_t)g.n_corr, sizeof *g.corr, cmp_corr);
    for (int i = 0; i < g.n_pending; i++) {
        struct record *r = &g.pending[i];
        if (r->has_step || !r->correlation) continue;
        struct corr_map key = {.correlation = r->correlation};
        const struct corr_map *c = bsearch(&key, g.corr, (size_t)g.n_corr, sizeof key, cmp_corr);
        if (!c) continue;
        r->has_step = 1;
        r->step = c->step;
        r->microbatch = c->microbatch;
    }
    g.n_corr = 0;
}

static void push(const struct record *r)
{
    if (g.n_pending == g.cap_pending) {
        int cap = g.cap_pending ? 2 * g.cap_pending : 4096;
        struct record *grown = realloc(g.pending, (size_t)cap * sizeof *grown);
        if (!grown) {
            g.oom++;
            return;
        }
        g.pending = grown;
        g.cap_pending = cap;
    }
    g.pending[g.n_pending++] = *r;
}

static void kernel_name(const char *mangled, char *out, size_t len)
{
    int status = -1;
    char *plain = mangled ? __cxa_demangle(mangled, NULL, NULL, &status) : NULL;
    snprintf(out, len, "%s", status == 0 && plain ? plain : (mangled ? mangled : "?"));
    free(plain);
}

static enum copy_kind copy_kind(uint8_t k)
{
    switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return COPY_HTOD;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return COPY_DTOH;
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return COPY_DTOD;
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return COPY_PTOP;
    default: return COPY_NONE;
    }
}

static void decode(const CUpti_Activity *a)
{
    struct record r;
    memset(&r, 0, sizeof r);
    r.src_device = r.dst_device = -1;
    switch (a->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
    case CUPTI_ACTIVITY_KIND_KERNEL: {
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)a;
        kernel_name(k->name, r.name, sizeof r.name);
        /* NCCL's kernels are ncclDevKernel_* / ncclKernel_*, the peer all-reduce's
         * peer_allreduce_kernel (kernels/allreduce.cu): communication, not compute. */
        r.kind = strstr(r.name, "nccl") || strstr(r.name, "Nccl") || strstr(r.name, "peer_allreduce") ? REC_COMM
                                                                                                  : REC_KERNEL;
        r.start_ns = k->start;
        r.end_ns = k->end;
        r.correlation = k->correlationId;
        place(&r, k->deviceId, k->streamId, k->graphNodeId);
        r.dst_device = -1;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)a;
        r.kind = REC_MEMCPY;
        r.copy = copy_kind(m->copyKind);
        r.start_ns = m->start;
        r.end_ns = m->end;
        r.bytes = m->bytes;
        r.correlation = m->correlationId;
        place(&r, m->deviceId, m->streamId, m->graphNodeId);
        /* Copies between logical devices on one GPU are device-to-device (and
         * captured peer copies plain copies); the stream or graph node they were
         * issued on says which pair they served. */
        if ((r.copy == COPY_DTOD || r.copy == COPY_PTOP) && r.dst_device >= 0) r.src_device = r.device;
        snprintf(r.name, sizeof r.name, "Memcpy %s",
                 r.copy == COPY_HTOD ? "HtoD" : r.copy == COPY_DTOH ? "DtoH" : r.copy == COPY_DTOD ? "DtoD" : "other");
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY2: {
        const CUpti_ActivityMemcpyPtoP4 *m = (const CUpti_ActivityMemcpyPtoP4 *)a;
        r.kind = REC_MEMCPY;
        r.copy = COPY_PTOP;
        r.start_ns = m->start;
        r.end_ns = m->end;
        r.bytes = m->bytes;
        r.correlation = m->correlationId;
        place(&r, m->deviceId, m->streamId, m->graphNodeId);
        r.src_device = m->srcDeviceId < PB_MAX_DEVICES_CUPTI ? g.ordinal_device[m->srcDeviceId] : -1;
        if (r.dst_device < 0)
            r.dst_device = m->dstDeviceId < PB_MAX_DEVICES_CUPTI ? g.ordinal_device[m->dstDeviceId] : -1;
        else if (r.device >= 0)
            r.src_device = r.device;
        snprintf(r.name, sizeof r.name, "Memcpy PtoP");
        break;
    }
    case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION:
        add_correlation((const CUpti_ActivityExternalCorrelation *)a);
        return;
    case CUPTI_ACTIVITY_KIND_GRAPH_TRACE: {
        /* One record per replayed graph (a whole pass), instead of one per kernel. */
        const CUpti_ActivityGraphTrace2 *gt = (const CUpti_ActivityGraphTrace2 *)a;
        if (gt->start == 0 && gt->end == 0) return;   /* CUPTI could not time it */
        r.kind = REC_KERNEL;
        r.start_ns = gt->start;
        r.end_ns = gt->end;
        r.correlation = gt->correlationId;
        place(&r, gt->deviceId, gt->streamId, 0);
        r.dst_device = -1;
        snprintf(r.name, sizeof r.name, "graph %u (a whole pass: --profile-detail step)", gt->graphId);
        g.n_graphs++;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)a;
        r.kind = REC_MEMSET;
        r.start_ns = m->start;
        r.end_ns = m->end;
        r.bytes = m->bytes;
        r.correlation = m->correlationId;
        place(&r, m->deviceId, m->streamId, m->graphNodeId);
        r.dst_device = -1;
        snprintf(r.name, sizeof r.name, "Memset");
        break;
    }
    default:
        return;
    }
    push(&r);
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t *buffer, size_t size,
                                      size_t valid)
{
    pthread_mutex_lock(&g.lock);
    CUpti_Activity *a = NULL;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) decode(a);
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS) g.dropped += dropped;
    int kept = size == BUFFER_BYTES && g.n_pool < BUFFER_POOL;
    /* ownzero: back to zero before CUPTI gets it again, here at a flush (between
     * iterations), not when CUPTI asks for it (inside one). */
    if (kept && g.mode.own_zero) memset(buffer, 0, valid < size ? valid : size);
    if (kept) g.pool[g.n_pool++] = buffer;
    pthread_mutex_unlock(&g.lock);
    if (!kept) free(buffer);
}

/* The first entry is what times the GPUs' work: every kernel (kernel detail), or
 * every replayed graph (step detail: CUPTI then writes no per-kernel timestamps,
 * which cost about 5 us a kernel on Hopper; the two cannot be enabled together). */
static CUpti_ActivityKind all_kinds[] = {
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
    CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION,   /* step of directly launched work */
    CUPTI_ACTIVITY_KIND_MEMCPY,
    CUPTI_ACTIVITY_KIND_MEMCPY2,
    CUPTI_ACTIVITY_KIND_MEMSET,
};
static size_t n_kinds = sizeof all_kinds / sizeof all_kinds[0];

/* PB_CUPTI_MODE=nocopies collects kernel (or graph) records alone: a diagnostic
 * for what the memcpy and memset kinds cost (cupti_mode.h); copy busy time and
 * transfers are then missing, so it is not the default. */
static void choose_kinds(void)
{
    all_kinds[0] = g.steps_only ? CUPTI_ACTIVITY_KIND_GRAPH_TRACE : CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL;
    n_kinds = g.mode.copies ? sizeof all_kinds / sizeof all_kinds[0] : 2;
}

void cupti_set_detail(int steps_only)
{
    if (!g.active) g.steps_only = steps_only;
}

void cupti_set_mode(const struct cupti_mode *m)
{
    if (!g.active) g.mode = *m;
}

int cupti_gate_wanted(void) { return g.active && g.collecting && g.mode.gate; }

/* Instantiating a graph clones its nodes; records carry the clone's id. */
static void CUPTIAPI on_resource(void *user, CUpti_CallbackDomain domain, CUpti_CallbackId id, const void *data)
{
    (void)user;
    if (domain != CUPTI_CB_DOMAIN_RESOURCE || id != CUPTI_CBID_RESOURCE_GRAPHNODE_CLONED) return;
    const CUpti_GraphData *gd = ((const CUpti_ResourceData *)data)->resourceDescriptor;
    uint64_t orig = 0, clone = 0;
    if (!gd || cuptiGetGraphNodeId(gd->originalNode, &orig) != CUPTI_SUCCESS ||
        cuptiGetGraphNodeId(gd->node, &clone) != CUPTI_SUCCESS)
        return;
    pthread_mutex_lock(&g.lock);
    const struct cupti_place *where = lookup_node(orig);
    if (where) {
        struct cupti_place copy = *where;   /* add_node may move the table */
        add_node(clone, &copy);
    }
    pthread_mutex_unlock(&g.lock);
}

/* Only the clone callback: no per-launch callbacks, which would cost time on
 * every kernel. Without it, graph work is placed by launching stream. */
static void subscribe_clones(void)
{
    if (cuptiSubscribe(&g.subscriber, on_resource, NULL) != CUPTI_SUCCESS) {
        g.subscriber = NULL;
        return;
    }
    if (cuptiEnableCallback(1, g.subscriber, CUPTI_CB_DOMAIN_RESOURCE, CUPTI_CBID_RESOURCE_GRAPHNODE_CLONED) !=
        CUPTI_SUCCESS) {
        cuptiUnsubscribe(g.subscriber);
        g.subscriber = NULL;
    }
}

int cupti_start(char *why, size_t why_len)
{
    if (g.active) return PB_OK;
    for (int i = 0; i < PB_MAX_DEVICES_CUPTI; i++) g.ordinal_device[i] = -1;
    choose_kinds();
    /* A few buffers ready before the first profiled iteration asks for one. */
    pthread_mutex_lock(&g.lock);
    while (g.n_pool < BUFFER_PREPARED) {
        uint8_t *b = new_buffer();
        if (!b) break;
        g.pool[g.n_pool++] = b;
    }
    pthread_mutex_unlock(&g.lock);
    CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    /* Where CUPTI refuses the attribute it zeroes buffers itself, as with cuptizero. */
    uint8_t zeroed = (uint8_t)(g.mode.own_zero != 0);
    size_t zeroed_size = sizeof zeroed;
    if (r == CUPTI_SUCCESS) cuptiActivitySetAttribute(CUPTI_ACTIVITY_ATTR_ZEROED_OUT_ACTIVITY_BUFFER, &zeroed_size, &zeroed);
    int enabled = 0;
    for (size_t i = 0; r == CUPTI_SUCCESS && i < n_kinds; i++, enabled++)
        r = cuptiActivityEnable(all_kinds[i]);
    if (r != CUPTI_SUCCESS) {
        pthread_mutex_lock(&g.lock);
        while (g.n_pool > 0) free(g.pool[--g.n_pool]);
        pthread_mutex_unlock(&g.lock);
        for (int i = 0; i < enabled; i++) cuptiActivityDisable(all_kinds[i]);
        const char *s = "unknown";
        cuptiGetResultString(r, &s);
        const char *hint = r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED
                               ? "another profiler (nsys, ncu) is attached; only one CUPTI client may be"
                           : r == CUPTI_ERROR_INSUFFICIENT_PRIVILEGES
                               ? "profiling is restricted to admin users (NVreg_RestrictProfilingToAdminUsers)"
                               : "CUPTI could not be enabled";
        snprintf(why, why_len, "CUPTI unavailable (%s: %s)", s, hint);
        return PB_ERR;
    }
    /* Queued/submitted timestamps are off by default; say so explicitly, since
     * each one is another GPU-side write per kernel. */
    cuptiActivityEnableLatencyTimestamps(0);
    g.active = 1;
    g.collecting = 1;
    subscribe_clones();
    return PB_OK;
}

int cupti_set_collecting(int on)
{
    if (!g.active || g.collecting == on) return PB_OK;
    for (size_t i = 0; i < n_kinds; i++) {
        if (on) CUPTI_CHECK(cuptiActivityEnable(all_kinds[i]));
        else CUPTI_CHECK(cuptiActivityDisable(all_kinds[i]));
    }
    g.collecting = on;
    return PB_OK;
}

int cupti_register_graph_node(void *node, const struct cupti_place *where)
{
    if (!g.active) return PB_OK;
    uint64_t id = 0;
    CUPTI_CHECK(cuptiGetGraphNodeId((CUgraphNode)node, &id));
    pthread_mutex_lock(&g.lock);
    int rc = add_node(id, where);
    pthread_mutex_unlock(&g.lock);
    return rc == PB_OK ? PB_OK : pb_fail("out of host memory mapping graph nodes");
}

void cupti_push_step(int step, int microbatch)
{
    if (!g.active || !g.collecting) return;
    uint64_t id = (uint64_t)(uint32_t)(microbatch + 1) << 32 | (uint32_t)(step + 1);
    cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, id);
}

void cupti_pop_step(void)
{
    if (!g.active || !g.collecting) return;
    uint64_t id = 0;
    cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &id);
}

int cupti_register_stream(void *cuda_stream, int device, int stream, int dst)
{
    if (!g.active) return PB_OK;
    uint32_t id = 0;
    CUPTI_CHECK(cuptiGetStreamIdEx(NULL, (CUstream)cuda_stream, 0, &id));
    pthread_mutex_lock(&g.lock);
    int ok = g.n_streams < MAX_STREAMS;
    if (ok) g.streams[g.n_streams++] = (struct stream_map){id, device, stream, dst};
    pthread_mutex_unlock(&g.lock);
    return ok ? PB_OK : pb_fail("more than %d streams to profile; use fewer devices or streams", MAX_STREAMS);
}

int cupti_map_ordinal(int ordinal, int device)
{
    if (ordinal < 0 || ordinal >= PB_MAX_DEVICES_CUPTI)
        return pb_fail("CUDA device %d is beyond the %d the collector maps", ordinal, PB_MAX_DEVICES_CUPTI);
    pthread_mutex_lock(&g.lock);
    if (g.ordinal_device[ordinal] < 0) g.ordinal_device[ordinal] = device;
    pthread_mutex_unlock(&g.lock);
    return PB_OK;
}

void cupti_clear_maps(void)
{
    pthread_mutex_lock(&g.lock);
    g.n_streams = 0;
    g.n_nodes = 0;
    for (int i = 0; i < PB_MAX_DEVICES_CUPTI; i++) g.ordinal_device[i] = -1;
    pthread_mutex_unlock(&g.lock);
}

/* Logical devices with a registered stream (the lock is held). */
static int registered_devices(void)
{
    int seen[PB_MAX_DEVICES_CUPTI] = {0}, n = 0;
    for (int i = 0; i < g.n_streams; i++) {
        int d = g.streams[i].device;
        if (d >= 0 && d < PB_MAX_DEVICES_CUPTI && !seen[d]) seen[d] = 1, n++;
    }
    return n;
}

int cupti_collect(struct trace *t, int iteration)
{
    if (!g.active) return PB_OK;
    /* Forced: also hand over buffers that are not full, so this iteration's
     * records are all in before the next one starts. */
    CUPTI_CHECK(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
    pthread_mutex_lock(&g.lock);
    resolve_steps();
    int rc = PB_OK;
    for (int i = 0; i < g.n_pending && iteration >= 0 && rc == PB_OK; i++) {
        g.pending[i].iteration = iteration;
        rc = trace_add(t, &g.pending[i]);
    }
    g.n_pending = 0;
    t->dropped += g.dropped + (uint64_t)g.oom;
    /* Step detail times whole graphs: a GPU's busy time is its graph's span only when
     * one logical device ran the point and every pass was a graph. */
    if (g.steps_only && iteration >= 0 && (g.n_graphs == 0 || registered_devices() > 1)) t->busy_known = 0;
    g.n_graphs = 0;
    g.dropped = 0;
    g.oom = 0;
    pthread_mutex_unlock(&g.lock);
    return rc;
}

uint64_t cupti_now_ns(void)
{
    uint64_t ts = 0;
    if (g.active && cuptiGetTimestamp(&ts) == CUPTI_SUCCESS) return ts;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

void cupti_stop(void)
{
    if (!g.active) return;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    for (size_t i = 0; g.collecting && i < n_kinds; i++) cuptiActivityDisable(all_kinds[i]);
    if (g.subscriber) cuptiUnsubscribe(g.subscriber);
    g.subscriber = NULL;
    pthread_mutex_lock(&g.lock);
    free(g.pending);
    free(g.corr);
    g.corr = NULL;
    g.n_corr = g.cap_corr = 0;
    free(g.nodes);
    g.nodes = NULL;
    g.n_nodes = g.cap_nodes = 0;
    g.pending = NULL;
    g.n_pending = g.cap_pending = 0;
    g.n_streams = 0;
    while (g.n_pool > 0) free(g.pool[--g.n_pool]);
    g.active = 0;
    g.collecting = 0;
    pthread_mutex_unlock(&g.lock);
}

int cupti_exec_profiling(void *state, int on)
{
    (void)state;
    return cupti_set_collecting(on);
}

int cupti_exec_collect(void *state, struct trace *t, int iteration)
{
    (void)state;
    if (t) return cupti_collect(t, iteration);
    struct trace scratch;
    trace_init(&scratch, 1);
    int rc = cupti_collect(&scratch, -1);
    trace_free(&scratch);
    return rc;
}
