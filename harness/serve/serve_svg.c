/* serve.svg: p99 time to first token and p99 time per output token against the
 * achieved request rate, one curve per strategy through its offered rates. A
 * placement that cannot keep up bends upward at the rate it saturates. Latency is
 * on a log scale (it grows by orders of magnitude past saturation). */
#include <math.h>
#include <string.h>
#include "../report/report_svg.h"
#include "serve_report.h"

#define PANEL_W 420
#define PANEL_H 280
#define LEFT 70
#define TOP 40
#define GAP 90

static const unsigned curve_rgb[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2,
                                     0x7f7f7f, 0xbcbd22, 0x17becf};

struct axes {
    double x_max, y_lo, y_hi;   /* y: decades, log10 */
};

static double p99_of(const struct serve_point *p, int panel)
{
    return panel == 0 ? p->met.ttft_p99_ms : p->met.tpot_p99_ms;
}

static int usable(const struct serve_point *p, int panel)
{
    double y = p99_of(p, panel);
    return p->ok && p->met.requests_per_s > 0 && y > 0 && isfinite(y);
}

static struct axes axes_for(const struct serve_point *p, int n, int panel)
{
    struct axes a = {.x_max = 0, .y_lo = INFINITY, .y_hi = -INFINITY};
    for (int i = 0; i < n; i++) {
        if (!usable(&p[i], panel)) continue;
        a.x_max = fmax(a.x_max, p[i].met.requests_per_s);
        a.y_lo = fmin(a.y_lo, floor(log10(p99_of(&p[i], panel))));
        a.y_hi = fmax(a.y_hi, ceil(log10(p99_of(&p[i], panel))));
    }
    if (!(a.x_max > 0)) a.x_max = 1;
    a.x_max *= 1.05;
    if (!isfinite(a.y_lo)) a.y_lo = 0, a.y_hi = 1;
    if (a.y_hi <= a.y_lo) a.y_hi = a.y_lo + 1;
    return a;
}

static double px(const struct axes *a, int x0, double x)
{
    return x0 + x / a->x_max * PANEL_W;
}

static double py(const struct axes *a, double y)
{
    return TOP + PANEL_H - (log10(y) - a->y_lo) / (a->y_hi - a->y_lo) * PANEL_H;
}

static void frame(FILE *f, const struct axes *a, int x0, const char *title)
{
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", x0, TOP,
            PANEL_W, PANEL_H);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n", x0, TOP - 12, title);
    for (double e = a->y_lo; e <= a->y_hi; e++) {
        double y = py(a, pow(10, e));
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                x0, y, x0 + PANEL_W, y, x0 - 6, y + 4, pow(10, e));
    }
    /* x ticks: 1, 2 or 5 times a power of ten, about five of them */
    double raw = a->x_max / 5, mag = pow(10, floor(log10(raw))), step = raw / mag < 2 ? mag : raw / mag < 5 ? 2 * mag : 5 * mag;
    for (double x = 0; x <= a->x_max; x += step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px(a, x0, x), TOP + PANEL_H + 16, x);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">achieved requests/s</text>\n", x0 + PANEL_W / 2,
            TOP + PANEL_H + 36);
}

static void curve(FILE *f, const struct serve_point *p, int n, const char *strategy, unsigned rgb,
                  const struct axes *a, int x0, int panel)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"#%06X\" stroke-width=\"2\" points=\"", rgb);
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].strategy, strategy) && usable(&p[i], panel))
            fprintf(f, "%.1f,%.1f ", px(a, x0, p[i].met.requests_per_s), py(a, p99_of(&p[i], panel)));
    fputs("\"/>\n", f);
    for (int i = 0; i < n; i++) {
        if (strcmp(p[i].strategy, strategy) || !usable(&p[i], panel)) continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#%06X\"><title>", px(a, x0, p[i].met.requests_per_s),
                py(a, p99_of(&p[i], panel)), rgb);
        html_escape(f, strategy);
        if (isinf(p[i].rate)) fputs(" offered inf", f);
        else fprintf(f, " offered %g/s", p[i].rate);
        fprintf(f, ": %.3g req/s, p99 %.4g ms</title></circle>\n", p[i].met.requests_per_s, p99_of(&p[i], panel));
    }
}

void serve_svg(FILE *f, const struct serve_point *p, int n)
{
    int width = LEFT + 2 * PANEL_W + GAP + 30, height = TOP + PANEL_H + 90;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", width, height);
    const char *kind = n > 0 ? serve_point_kind(&p[0]) : "predicted";
    char ttft[64], tpot[64];
    snprintf(ttft, sizeof ttft, "TTFT p99 (ms, %s)", kind);
    snprintf(tpot, sizeof tpot, "TPOT p99 (ms, %s)", kind);
    const char *titles[2] = {ttft, tpot};
    int legend_x = LEFT, n_curves = 0;
    for (int panel = 0; panel < 2; panel++) {
        int x0 = LEFT + panel * (PANEL_W + GAP);
        struct axes a = axes_for(p, n, panel);
        frame(f, &a, x0, titles[panel]);
        int k = 0;
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= !strcmp(p[j].strategy, p[i].strategy);
            if (seen) continue;
            unsigned rgb = curve_rgb[k++ % (sizeof curve_rgb / sizeof curve_rgb[0])];
            curve(f, p, n, p[i].strategy, rgb, &a, x0, panel);
            if (panel) continue;
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"#%06X\"/><text x=\"%d\" y=\"%d\">",
                    legend_x, height - 22, rgb, legend_x + 19, height - 16);
            html_escape(f, p[i].strategy);
            fputs("</text>\n", f);
            legend_x += 40 + 8 * (int)strlen(p[i].strategy);
            n_curves++;
        }
    }
    if (!n_curves) fprintf(f, "<text x=\"%d\" y=\"%d\">no point was served</text>\n", LEFT, height - 16);
    fputs("</svg>\n", f);
}
