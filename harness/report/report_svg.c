/* SVG drawing for report.html. Coordinates are in CSS pixels; the SVG scales
 * with the page through its viewBox. */
#include "report_svg.h"
#include <math.h>
#include <string.h>
#include "plot_data.h"

#define SVG_W 1100
#define LEFT 150    /* room for lane names */
#define RIGHT 20
#define LANE_H 28
#define TOP 34      /* legend */
#define AXIS_H 34

void html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void legend(FILE *f, int x, int y, int with_idle)
{
    static const char *const names[] = {"compute", "communication (NCCL)", "copy", "memset", "idle"};
    for (int k = 0; k < (with_idle ? 5 : 4); k++) {
        if (with_idle && k == 3) continue;   /* bars have no memset part */
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"#%06X\" stroke=\"#999\"/>"
                   "<text x=\"%d\" y=\"%d\">%s</text>\n", x, y, plot_kind_rgb[k], x + 19, y + 12, names[k]);
        x += 40 + 8 * (int)strlen(names[k]);
    }
}

void svg_timeline(FILE *f, const struct timeline *tl)
{
    int h = TOP + tl->n_lanes * LANE_H + AXIS_H;
    double span = tl->span_ms > 0 ? tl->span_ms : 1;
    double scale = (SVG_W - LEFT - RIGHT) / span;
    fprintf(f, "<svg class=\"timeline\" viewBox=\"0 0 %d %d\" width=\"100%%\" role=\"img\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", SVG_W, h);
    legend(f, LEFT, 8, 0);
    for (int l = 0; l < tl->n_lanes; l++) {
        int y = TOP + l * LANE_H;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">GPU %d stream %d</text>\n",
                LEFT, y, SVG_W - LEFT - RIGHT, LANE_H, l % 2 ? "#fafafa" : "#f2f2f2", LEFT - 8, y + LANE_H / 2 + 4,
                tl->lane_device[l], tl->lane_stream[l]);
    }
    for (int i = 0; i < tl->n; i++) {
        const struct timeline_box *b = &tl->box[i];
        double x = LEFT + b->start_ms * scale, w = (b->end_ms - b->start_ms) * scale;
        fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#%06X\"><title>", x,
                TOP + b->lane * LANE_H + 4, w < 0.5 ? 0.5 : w, LANE_H - 8, plot_kind_rgb[b->kind]);
        html_escape(f, b->name);
        fprintf(f, " (%s): %.3f-%.3f ms</title></rect>\n", box_kind_name(b->kind), b->start_ms, b->end_ms);
    }
    /* A label per run of one microbatch on a lane, where it is wide enough to read. */
    for (int i = 0; i < tl->n; i++) {
        const struct timeline_box *b = &tl->box[i];
        if (b->microbatch < 0) continue;
        int j = i;
        while (j + 1 < tl->n && tl->box[j + 1].lane == b->lane && tl->box[j + 1].microbatch == b->microbatch) j++;
        double x0 = LEFT + b->start_ms * scale, x1 = LEFT + tl->box[j].end_ms * scale;
        if (x1 - x0 > 30)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#fff\">mb%d</text>\n", (x0 + x1) / 2,
                    TOP + b->lane * LANE_H + LANE_H / 2 + 4, b->microbatch);
        i = j;
    }
    int axis_y = TOP + tl->n_lanes * LANE_H;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", LEFT, axis_y, SVG_W - RIGHT, axis_y);
    double step = nice_step(span, 8);
    for (double t = 0; t <= span * 1.0001; t += step) {
        double x = LEFT + t * scale;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>"
                   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                x, axis_y, x, axis_y + 5, x, axis_y + 18, t);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">ms</text>\n</svg>\n", SVG_W - RIGHT, axis_y + 32);
}

int svg_utilisation(FILE *f, const struct point_result *r, int n)
{
    int rows = 0;
    for (int i = 0; i < n; i++)
        if (r[i].ok && r[i].busy_known) rows += r[i].n_devices;
    if (!rows) return 0;
    const int row_h = 20, left = 260, w = SVG_W - left - RIGHT;
    int h = TOP + rows * row_h + AXIS_H;
    fprintf(f, "<svg class=\"utilisation\" viewBox=\"0 0 %d %d\" width=\"100%%\" role=\"img\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", SVG_W, h);
    legend(f, left, 8, 1);
    int row = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || !r[i].busy_known) continue;
        for (int d = 0; d < r[i].n_devices; d++, row++) {
            const struct gpu_metrics *g = &r[i].metrics.gpu[d];
            int y = TOP + row * row_h;
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, y + 14);
            html_escape(f, r[i].strategy);
            fprintf(f, " b%d s%d", r[i].w.batch, r[i].w.seq);
            if (r[i].microbatches > 1) fprintf(f, " m%d", r[i].microbatches);
            fprintf(f, " GPU %d</text>\n", d);
            /* Parts in % of the window; kinds overlapping in time are clipped at 100%. */
            double part[4] = {g->compute_ms, g->comm_ms, g->copy_ms, g->idle_ms}, x = 0;
            int kind[4] = {0, 1, 2, 4};
            for (int k = 0; k < 4; k++) {
                double frac = g->window_ms > 0 ? part[k] / g->window_ms : 0;
                if (x + frac > 1) frac = 1 - x;
                if (frac <= 0) continue;
                fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#%06X\"><title>%.1f%% %s"
                           "</title></rect>\n", left + x * w, y + 2, frac * w, row_h - 4, plot_kind_rgb[kind[k]],
                        100 * part[k] / (g->window_ms > 0 ? g->window_ms : 1),
                        k == 3 ? "idle" : box_kind_name((enum box_kind)k));
                x += frac;
            }
            fprintf(f, "<text x=\"%d\" y=\"%d\">%.0f%%</text>\n", left + w - 34, y + 14, 100 * g->utilisation);
        }
    }
    int axis_y = TOP + rows * row_h;
    for (int p = 0; p <= 100; p += 20)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d%%</text>\n", left + p * w / 100, axis_y + 16, p);
    fprintf(f, "</svg>\n");
    return rows;
}
