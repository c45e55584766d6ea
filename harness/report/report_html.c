/* The HTML page. Plain HTML and CSS; all pictures are inline SVG from report_svg.c. */
#include "report_html.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "explain.h"
#include "report_serve.h"
#include "report_svg.h"

static const char *const css =
    "body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}"
    "h3{font-size:14px;margin:16px 0 4px}"
    "table{border-collapse:collapse;font-size:12px;margin:8px 0}"
    ".wide{overflow-x:auto;max-width:100%}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}"
    "th{background:#f0f0f0}td.l,th.l{text-align:left}tr.failed td{background:#fdeaea}"
    "pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;font-size:13px}"
    ".note{color:#a33;font-weight:bold}.muted{color:#777}";

const char *report_css(void) { return css; }

/* A number cell: empty-looking dash when unknown, never a misleading zero. */
static void num_cell(FILE *f, double v, const char *fmt)
{
    fputs("<td>", f);
    if (isnan(v) || isinf(v)) fputs("&ndash;", f);
    else fprintf(f, fmt, v);
    fputs("</td>", f);
}

static void text_cell(FILE *f, const char *s, int left)
{
    fputs(left ? "<td class=\"l\">" : "<td>", f);
    html_escape(f, s);
    fputs("</td>", f);
}

/* A predicted run is one deterministic iteration: one latency, not three equal percentiles. */
static void summary_table(FILE *f, const struct point_result *r, int n, const char *pred)
{
    static const char *const head[] = {
        "strategy", "mode", "batch", "seq", "decode", "m", "devices", "status", "placement",
        "p50 ms", "p90 ms", "p99 ms", "tokens/s", "speed-up", "utilisation per GPU", "transfer MiB",
        "transfer ms", "all-reduce ms", "collective MiB", "bus GB/s", "bubble / GPipe bound", "logits"};
    int one_latency = pred[0] != 0;
    fputs("<div class=\"wide\"><table id=\"summary\"><thead><tr>", f);
    for (size_t c = 0; c < sizeof head / sizeof head[0]; c++) {
        if (one_latency && (c == 10 || c == 11)) continue;
        fprintf(f, "<th%s>%s%s</th>", c == 0 || c == 8 || c == 7 ? " class=\"l\"" : "",
                pred[0] && (c >= 9 && c <= 13) ? "predicted " : "", one_latency && c == 9 ? "latency ms" : head[c]);
    }
    fputs("</tr></thead><tbody>\n", f);
    for (int i = 0; i < n; i++) {
        const struct point_result *p = &r[i];
        char buf[PB_ERROR_LEN + 64];
        fprintf(f, "<tr%s>", p->ok ? "" : " class=\"failed\"");
        text_cell(f, p->strategy, 1);
        text_cell(f, p->decode_tokens > 0 || p->w.mode == MODE_DECODE ? "generate" : "prefill", 0);
        fprintf(f, "<td>%d</td><td>%d</td><td>%d</td><td>%d</td>", p->w.batch, p->w.seq, p->decode_tokens,
                p->microbatches);
        size_t k = 0;
        buf[0] = 0;
        for (int d = 0; d < p->n_devices && k < sizeof buf; d++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%d", d ? "," : "", p->ordinal[d]);
        text_cell(f, buf, 0);
        if (p->ok) text_cell(f, "ok", 1);
        else {
            snprintf(buf, sizeof buf, "%s: %s", point_status(p), p->reason);
            text_cell(f, buf, 1);
        }
        text_cell(f, p->placement_summary, 1);
        int ok = p->ok;
        num_cell(f, ok ? p->p50_ms : NAN, "%.2f");
        if (!one_latency) {
            num_cell(f, ok ? p->p90_ms : NAN, "%.2f");
            num_cell(f, ok ? p->p99_ms : NAN, "%.2f");
        }
        num_cell(f, ok ? p->tokens_per_s : NAN, "%.0f");
        num_cell(f, ok ? p->speedup : NAN, "%.2fx");
        k = 0;
        buf[0] = 0;
        for (int d = 0; ok && p->busy_known && d < p->n_devices && k < sizeof buf; d++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%.0f%%", d ? " / " : "", 100 * p->metrics.gpu[d].utilisation);
        text_cell(f, ok && !p->busy_known ? "unknown" : buf, 0);
        int known = ok && p->busy_known;
        num_cell(f, known ? p->transfer_bytes / (1024.0 * 1024) : NAN, "%.2f");
        num_cell(f, known ? p->transfer_ms : NAN, "%.3f");
        num_cell(f, known && p->metrics.allreduce_ms > 0 ? p->metrics.allreduce_ms : NAN, "%.3f");
        num_cell(f, ok && p->collective_bytes > 0 ? p->collective_bytes / (1024.0 * 1024) : NAN, "%.2f");
        num_cell(f, ok ? p->collective_busbw_gbps : NAN, "%.1f");
        buf[0] = 0;
        if (ok && !isnan(p->gpipe_bound)) {
            double sum = 0;
            for (int s = 0; s < p->stages; s++) sum += p->bubble[s];
            if (known) snprintf(buf, sizeof buf, "%.0f%% / %.0f%%", 100 * sum / p->stages, 100 * p->gpipe_bound);
            else snprintf(buf, sizeof buf, "unknown / %.0f%%", 100 * p->gpipe_bound);
        }
        text_cell(f, buf, 0);
        if (p->tokens_parted) snprintf(buf, sizeof buf, "greedy tokens part from single's (not judged)");
        else if (!p->logits_checked) snprintf(buf, sizeof buf, "not checked");
        else if (p->logits_match && p->tolerance == 0) snprintf(buf, sizeof buf, "bit-identical");
        else if (p->tolerance == 0) snprintf(buf, sizeof buf, "%s (max diff %.3g)", p->logits_match ? "match" : "DIFFER", p->max_abs_diff);
        else snprintf(buf, sizeof buf, "%s (rel error %.2g, bar %g)", p->logits_match ? "within tolerance" : "DIFFER",
                      p->rel_error, p->tolerance);
        text_cell(f, buf, 0);
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table></div>\n", f);
}

/* Per GPU of every point: why it was idle and how far from its roofline. */
static int idle_table(FILE *f, const struct point_result *r, int n, const char *pred)
{
    static const char *const head[] = {"strategy", "batch", "seq", "decode", "m", "GPU", "idle ms",
                                       "waiting on another GPU ms", "host (launch gaps) ms", "other ms",
                                       "MBU", "MFU"};
    int rows = 0;
    for (int i = 0; i < n; i++) {
        const struct point_result *p = &r[i];
        if (!p->ok || !p->busy_known) continue;
        if (!rows++) {
            fputs("<table id=\"idle\"><thead><tr>", f);
            for (size_t c = 0; c < sizeof head / sizeof head[0]; c++)
                fprintf(f, "<th%s>%s%s</th>", c == 0 ? " class=\"l\"" : "", c >= 6 ? pred : "", head[c]);
            fputs("</tr></thead><tbody>\n", f);
        }
        for (int d = 0; d < p->metrics.n_devices; d++) {
            const struct gpu_metrics *g = &p->metrics.gpu[d];
            fputs("<tr>", f);
            text_cell(f, p->strategy, 1);
            fprintf(f, "<td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td>", p->w.batch, p->w.seq,
                    p->decode_tokens, p->microbatches, d);
            num_cell(f, g->idle_ms, "%.3f");
            num_cell(f, g->idle_peer_wait_ms, "%.3f");
            num_cell(f, g->idle_host_ms, "%.3f");
            num_cell(f, g->idle_other_ms, "%.3f");
            num_cell(f, 100 * g->mbu, "%.0f%%");
            num_cell(f, 100 * g->mfu, "%.0f%%");
            fputs("</tr>\n", f);
        }
    }
    if (rows) fputs("</tbody></table>\n", f);
    return rows;
}

static void environment(FILE *f, const struct run_env *e)
{
    fputs("<table id=\"environment\"><tbody>\n", f);
    for (int d = 0; d < e->n_gpus; d++) {
        fprintf(f, "<tr><th class=\"l\">GPU %d</th><td class=\"l\">", d);
        html_escape(f, e->gpu_name[d]);
        fprintf(f, ", %.0f GiB", e->gpu_memory[d] / (1024.0 * 1024 * 1024));
        int peers = 0;
        for (int j = 0; j < e->n_gpus; j++) peers += j != d && e->peer[d][j];
        fprintf(f, ", peer access to %d of %d other GPU(s)</td></tr>\n", peers, e->n_gpus - 1);
    }
    fprintf(f, "<tr><th class=\"l\">CUDA driver / runtime</th><td class=\"l\">%d.%d / %d.%d</td></tr>\n",
            e->driver_version / 1000, e->driver_version % 1000 / 10, e->runtime_version / 1000,
            e->runtime_version % 1000 / 10);
    if (e->nccl_version)
        fprintf(f, "<tr><th class=\"l\">NCCL</th><td class=\"l\">%d.%d.%d</td></tr>\n", e->nccl_version / 10000,
                e->nccl_version / 100 % 100, e->nccl_version % 100);
    fprintf(f, "<tr><th class=\"l\">CUPTI</th><td class=\"l\">%s", e->cupti_enabled ? "on" : "off: ");
    if (!e->cupti_enabled) html_escape(f, e->cupti_note[0] ? e->cupti_note : "per-GPU busy time unknown");
    fprintf(f, "</td></tr>\n<tr><th class=\"l\">iterations</th><td class=\"l\">%d timed after %d warm-up</td></tr>\n",
            e->iters, e->warmup);
    fputs("<tr><th class=\"l\">started</th><td class=\"l\">", f);
    html_escape(f, e->started);
    fputs("</td></tr>\n</tbody></table>\n", f);
}

static void timelines(FILE *f, const struct point_result *r, int n, const struct trace *const *traces)
{
    int drawn = 0;
    for (int i = 0; traces && i < n; i++) {
        if (!traces[i] || !r[i].ok) continue;
        struct timeline tl;
        if (timeline_build(traces[i], -1, &tl) != PB_OK) continue;
        if (tl.n == 0) {
            timeline_free(&tl);
            continue;
        }
        fputs("<h3>", f);
        html_escape(f, r[i].strategy);
        fprintf(f, ": batch %d x seq %d", r[i].w.batch, r[i].w.seq);
        if (r[i].decode_tokens) fprintf(f, ", %d generated tokens", r[i].decode_tokens);
        if (r[i].microbatches > 1) fprintf(f, ", %d microbatches", r[i].microbatches);
        fprintf(f, " &mdash; iteration %d of %d, %.2f ms%s</h3>\n", tl.iteration, tl.n_iterations, tl.span_ms,
                tl.predicted ? " (predicted)" : "");
        char sample[512];
        if (trace_sample_describe(traces[i], sample, sizeof sample)) {
            fputs("<p class=\"muted sample\">", f);
            html_escape(f, sample);
            fputs(" (the gaps are the passes not drawn; every number above counts them).</p>\n", f);
        }
        svg_timeline(f, &tl);
        timeline_free(&tl);
        drawn++;
    }
    if (!drawn) fputs("<p class=\"muted\">No activity records, so no timelines (CUPTI off, or no traces).</p>\n", f);
}

int report_write(const struct options *o, const struct run_env *env, const struct point_result *r, int n,
                 const struct trace *const *traces, const char *dir)
{
    static const struct run_env empty_env;
    if (!env) env = &empty_env;
    const char *pred = o && o->simulate ? "predicted " : "";
    char path[4096];
    PB_TRY(path_join(path, sizeof path, dir, "report.html"));
    size_t len = 64 * 1024;
    char *answer = malloc(len);
    if (!answer) return pb_fail("out of host memory for report.html");
    explain_text(o, env, r, n, answer, len);
    struct atomic_file a;
    if (atomic_file_open(&a, path) != PB_OK) {
        free(answer);
        return PB_ERR;
    }
    FILE *f = a.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>placebench: ", f);
    html_escape(f, env->model[0] ? env->model : "report");
    fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>placebench: ", css);
    html_escape(f, env->model[0] ? env->model : "results");
    fputs("</h1>\n", f);
    if (pred[0]) fputs("<p class=\"note\">Predicted by the cost model (--simulate): no GPU ran this.</p>\n", f);
    fputs("<h2>Command</h2>\n<pre id=\"command\">", f);
    html_escape(f, env->command[0] ? env->command : o ? o->command : "");
    fputs("</pre>\n<h2>The answer</h2>\n<pre id=\"answer\">", f);
    html_escape(f, answer);
    free(answer);
    fputs("</pre>\n<h2>Results</h2>\n", f);
    summary_table(f, r, n, pred);
    fputs("<p class=\"muted\">Utilisation: union of kernel intervals over one window shared by all GPUs "
          "(docs/METRICS.md). Files: summary.csv, summary.json, trace.json (open it in Perfetto).</p>\n", f);
    fputs("<h2>Per-GPU timelines</h2>\n", f);
    timelines(f, r, n, traces);
    fputs("<h2>Utilisation per GPU</h2>\n", f);
    if (!svg_utilisation(f, r, n)) fputs("<p class=\"muted\">Busy time unknown for every point.</p>\n", f);
    fputs("<h2>Idle time by cause, and distance from the roofline</h2>\n", f);
    if (idle_table(f, r, n, pred))
        fputs("<p class=\"muted\">A gap is charged to the step whose work ends it: waiting on another GPU until "
              "its latest dependency there ended, host after every dependency had ended, other where no step "
              "claims the work or nothing follows. MBU / MFU: bytes / FLOPs of the GPU's steps over the window "
              "against the device profile's measured copy and GEMM rates (docs/METRICS.md).</p>\n", f);
    else fputs("<p class=\"muted\">Busy time unknown for every point.</p>\n", f);
    if (report_has_serving(dir) && report_serving_section(f, dir) != PB_OK) {
        atomic_file_abort(&a);
        return PB_ERR;
    }
    fputs("<h2>Environment</h2>\n", f);
    environment(f, env);
    fputs("</body></html>\n", f);
    return atomic_file_commit(&a);
}
