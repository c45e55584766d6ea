/* Measurements -> device profile. Per-GPU numbers take the slowest GPU, as a
 * schedule waits for its slowest member; links take the slowest pair. */
#include "calibration.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

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
    if (c->launch_us > 0) {
        out->launch_us = c->launch_us;
        snprintf(out->launch_source, sizeof out->launch_source, "bench --calibrate %s: median time per "
                 "4-byte cudaMemsetAsync, 2000 back to back on one stream, GPU 0", c->date);
    }

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
    /* Loading requires a source for everything; say plainly what nobody measured. */
    for (int k = 0; k < LINK_KINDS; k++)
        if (!out->link[k].source[0])
            snprintf(out->link[k].source, sizeof out->link[k].source, "not measured here");
    if (!out->launch_source[0]) snprintf(out->launch_source, sizeof out->launch_source, "not measured");
    return device_profile_validate(out, "calibrated profile");
}
