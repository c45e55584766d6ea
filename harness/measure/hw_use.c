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

int step_work_of_point(const struct model_spec *m, const struct strategy *st, const struct placement *p,
                       const struct workload *w, int decode_tokens, struct step_work *out)
{
    memset(out, 0, sizeof *out);
    struct schedule s;
    PB_TRY(st->plan(m, p, w, &s));
    step_work_add(out, &s, 1);
    schedule_free(&s);
    for (int k = 0; k < decode_tokens; k++) {
        struct workload d = *w;
        d.mode = MODE_DECODE;
        d.seq = 1;
        d.context = w->seq + k + 1;
        PB_TRY(st->plan(m, p, &d, &s));
        step_work_add(out, &s, 1);
        schedule_free(&s);
    }
    return PB_OK;
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
