/* See hw_use.h. */
#include <math.h>
#include <string.h>
#include "../../base/check.h"
#include "hw_use.h"

static int is_compute(enum step_kind k)
{
    return k == STEP_EMBED || k == STEP_LAYERS || k == STEP_ATTENTION || k == STEP_MLP || k == STEP_HEAD;
}

void step_work_add(struct step_work *w, const struct schedule *s, double times)
{
    if (s->n_devices > w->n_devices) w->n_devices = s->n_devices < PB_MAX_DEVICES ? s->n_devices : PB_MAX_DEVICES;
    for (int i = 0; i < s->n_steps; i++) {
        const struct step *st = &s->steps[i];
        if (!is_compute(st->kind) || st->device < 0 || st->device >= PB_MAX_DEVICES) continue;
        w->flops[st->device] += st->flops * times;
        w->bytes[st->device] += st->mem_bytes * times;
    }
}

void step_work_of_program(const struct program *g, struct step_work *out)
{
    memset(out, 0, sizeof *out);
    step_work_add(out, &g->prompt, 1);
    int first = -1;   /* the template carries the first decode pass's context */
    for (int k = 0; k < g->n_passes; k++) {
        if (!g->passes[k].decode) continue;
        if (first < 0) first = g->passes[k].context;
        step_work_add(out, &g->decode, 1);
        double extra = g->passes[k].context - first;
        for (int i = 0; extra > 0 && i < g->decode.n_steps; i++) {
            const struct step *st = &g->decode.steps[i];
            if (!is_compute(st->kind) || st->device < 0 || st->device >= PB_MAX_DEVICES) continue;
            out->flops[st->device] += st->flops_per_position * extra;
            out->bytes[st->device] += st->bytes_per_position * extra;
        }
    }
}

void hw_use_fill(struct iteration_metrics *m, const struct step_work *w, double copy_gbps, double gemm_tflops)
{
    for (int d = 0; d < m->n_devices; d++) {
        struct gpu_metrics *g = &m->gpu[d];
        double seconds = g->window_ms / 1e3;
        int ok = g->known && seconds > 0 && d < w->n_devices;
        g->mbu = ok && copy_gbps > 0 ? w->bytes[d] / (seconds * copy_gbps * 1e9) : NAN;
        g->mfu = ok && gemm_tflops > 0 ? w->flops[d] / (seconds * gemm_tflops * 1e12) : NAN;
    }
}
