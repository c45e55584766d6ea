/* Values read off a device profile's tables (device_profile.h): every table is
 * interpolated linearly in log(rows) between its points, with the end points'
 * values beyond them, by one function. */
#include <math.h>
#include "device_profile.h"

/* Linear in log(x) through (rows[i], v[i]), rows rising; the end values beyond. */
static double log_interp(const double *rows, const double *v, int n, double x)
{
    if (x <= rows[0]) return v[0];
    for (int i = 1; i < n; i++) {
        if (x > rows[i]) continue;
        double f = log(x / rows[i - 1]) / log(rows[i] / rows[i - 1]);
        return v[i - 1] + f * (v[i] - v[i - 1]);
    }
    return v[n - 1];
}

double efficiency_at(const struct efficiency_point *t, int n, double rows, int memory)
{
    if (n <= 0) return 1;
    double r[PB_EFFICIENCY_POINTS], v[PB_EFFICIENCY_POINTS];
    if (n > PB_EFFICIENCY_POINTS) n = PB_EFFICIENCY_POINTS;
    for (int i = 0; i < n; i++) {
        r[i] = t[i].rows;
        v[i] = memory ? t[i].memory : t[i].compute;
    }
    return log_interp(r, v, n, rows);
}

double shared_slowdown_at(const struct shared_slowdown_table *t, double rows)
{
    if (t->n <= 0) return 1;
    double r[PB_SHARED_POINTS], v[PB_SHARED_POINTS];
    int n = t->n < PB_SHARED_POINTS ? t->n : PB_SHARED_POINTS;
    for (int i = 0; i < n; i++) {
        r[i] = t->point[i].rows;
        v[i] = t->point[i].slowdown;
    }
    return log_interp(r, v, n, rows);
}

double shared_layer_slowdown_at(const struct shared_compute_profile *c, double rows, int tune_rows)
{
    double r[PB_SHARED_POINTS + 1], v[PB_SHARED_POINTS + 1];
    int n = 0;
    if (tune_rows > rows)
        for (int i = 0; i < c->tuned_above.n; i++)
            if (c->tuned_above.point[i].tune_rows == tune_rows) {
                r[n] = c->tuned_above.point[i].rows;
                v[n++] = c->tuned_above.point[i].slowdown;
            }
    if (n == 0) return shared_slowdown_at(&c->layers, rows);
    r[n] = tune_rows;
    v[n++] = shared_slowdown_at(&c->layers, tune_rows);
    return log_interp(r, v, n, rows);
}

double gemm_efficiency_at(const struct kernel_profile *k, double rows, int tune_rows, int memory)
{
    double r[PB_EFFICIENCY_POINTS + 1], v[PB_EFFICIENCY_POINTS + 1];
    int n = 0;
    if (tune_rows > rows)
        for (int i = 0; i < k->n_gemm_tuned_above; i++)
            if (k->gemm_tuned_above[i].tune_rows == tune_rows) {
                r[n] = k->gemm_tuned_above[i].rows;
                v[n++] = memory ? k->gemm_tuned_above[i].memory : k->gemm_tuned_above[i].compute;
            }
    if (n == 0) return efficiency_at(k->gemm, k->n_gemm, rows, memory);
    r[n] = tune_rows;
    v[n++] = efficiency_at(k->gemm, k->n_gemm, tune_rows, memory);
    return log_interp(r, v, n, rows);
}
