/* Ranking, predicted against measured rank, and the winner's sentence. */
#include "search_rank.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys closer than this (relative) are the same time: step sums in another order. */
#define TIE 1e-6

static int ties_with(double key, double best)
{
    return fabs(key - best) <= TIE * fabs(best);
}

static int compare_rows(const void *pa, const void *pb, void *objective)
{
    const struct search_row *a = pa, *b = pb;
    enum search_objective sort_objective = *(const enum search_objective *)objective;
    if (a->fits != b->fits) return a->fits ? -1 : 1;
    if (a->fits) {
        double ka = search_objective_key(a, sort_objective), kb = search_objective_key(b, sort_objective);
        if (ka != kb) return ka < kb ? -1 : 1;
    }
    return (a->index > b->index) - (a->index < b->index);
}

void search_rank(struct search_row *rows, int n, enum search_objective objective)
{
    qsort_r(rows, (size_t)n, sizeof *rows, compare_rows, &objective);   /* glibc's: a context argument */
    for (int i = 0; i < n; i++) rows[i].rank = rows[i].fits ? i + 1 : 0;
}

/* The measured objective: the same key with the measured time in place of the predicted. */
static double measured_key(const struct search_row *r, enum search_objective objective)
{
    if (objective != OBJECTIVE_THROUGHPUT) return r->measured_ms;   /* goodput is never measured (cli) */
    double tokens = r->tokens_per_s * r->latency_ms / 1e3;   /* the workload's tokens, as predicted */
    return -(r->replicas * tokens / (r->measured_ms / 1e3));
}

int search_rank_measured(struct search_row *rows, int k, enum search_objective objective)
{
    int measured = 0;
    for (int i = 0; i < k; i++) {
        rows[i].measured_rank = 0;
        if (isnan(rows[i].measured_ms)) continue;
        measured++;
        int better = 0;
        double key = measured_key(&rows[i], objective);
        for (int j = 0; j < k; j++) {
            if (j == i || isnan(rows[j].measured_ms)) continue;
            double other = measured_key(&rows[j], objective);
            better += other < key || (other == key && j < i);
        }
        rows[i].measured_rank = better + 1;
    }
    return measured;
}

double search_rank_correlation(const struct search_row *rows, int k)
{
    int n = 0;
    double d2 = 0;
    for (int i = 0; i < k; i++) {
        if (!rows[i].measured_rank) continue;
        n++;
        double d = n - rows[i].measured_rank;   /* predicted rank among the measured: their order here */
        d2 += d * d;
    }
    if (n < 2) return NAN;
    return 1.0 - 6.0 * d2 / ((double)n * ((double)n * n - 1));
}

/* The best-ranked row that fits, is worse than the winner and is not the winner's
 * strategy; else the first worse row. Rows that tie with the winner are not rivals. */
static const struct search_row *rival_of(const struct search_row *rows, int n, enum search_objective objective)
{
    double best = search_objective_key(&rows[0], objective);
    const struct search_row *worse = NULL;
    for (int i = 1; i < n && rows[i].fits; i++) {
        if (ties_with(search_objective_key(&rows[i], objective), best)) continue;
        if (strcmp(rows[i].c.strategy, rows[0].c.strategy)) return &rows[i];
        if (!worse) worse = &rows[i];
    }
    return worse;
}

static int one_pass_on_several(const struct search_row *r)
{
    return r->c.gpus > 1 && r->c.tp == 1 && r->c.microbatches == 1 && strcmp(r->c.strategy, "tp");
}

/* The term of the time that differs most between the winner w and r. */
static void mechanism(const struct search_row *w, const struct search_row *r, char *buf, size_t len)
{
    double compute = r->compute_ms_max - w->compute_ms_max, moved = r->moved_ms_max - w->moved_ms_max;
    double idle = r->idle_ms_mean - w->idle_ms_mean;
    if (compute >= moved && compute >= idle && compute > 0) {
        char how[128] = "";
        if (w->c.tp > r->c.tp)
            snprintf(how, sizeof how, " (each GPU reads and multiplies 1/%d of every weight it holds)", w->c.tp);
        else if (w->c.gpus > r->c.gpus)
            snprintf(how, sizeof how, " (the layers are spread over %d GPUs against %d)", w->c.gpus, r->c.gpus);
        else if (w->c.microbatches < r->c.microbatches)
            snprintf(how, sizeof how, " (each stage reads its weights once per microbatch: %d time%s against %d)",
                     w->c.microbatches, w->c.microbatches == 1 ? "" : "s", r->c.microbatches);
        snprintf(buf, len, "its busiest GPU computes for %.3g ms against %.3g%s", w->compute_ms_max,
                 r->compute_ms_max, how);
    } else if (moved >= idle && moved > 0) {
        snprintf(buf, len, "it spends %.3g ms on all-reduces and copies on its busiest GPU against %.3g",
                 w->moved_ms_max, r->moved_ms_max);
    } else if (idle > 0) {
        char why[128] = "";
        if (!isnan(r->bubble_max))
            snprintf(why, sizeof why, "; the other's pipeline bubble is %.0f%%, GPipe's bound %.0f%%",
                     100 * r->bubble_max, 100 * r->gpipe_bound);
        else if (one_pass_on_several(r))
            snprintf(why, sizeof why, "; the other's %d GPUs take turns, one working while the rest wait",
                     r->c.gpus);
        snprintf(buf, len, "its GPUs wait %.3g ms on average against %.3g%s", w->idle_ms_mean, r->idle_ms_mean, why);
    } else {
        snprintf(buf, len, "the cost model's step times add up lower on its critical path");
    }
}

/* "takes 12.0% less time than X (54.3 ms against 61.7 ms)", or tokens/s for throughput. */
static void margin(const struct search_row *w, const struct search_row *r, const char *label,
                   enum search_objective objective, char *buf, size_t len)
{
    if (objective == OBJECTIVE_GOODPUT)
        snprintf(buf, len, "serves %.1f%% more requests/s within the SLO than %s (%.4g against %.4g; E2E p99 "
                 "%.4g ms against %.4g)", 100 * (w->goodput_rps / r->goodput_rps - 1), label, w->goodput_rps,
                 r->goodput_rps, w->latency_ms, r->latency_ms);
    else if (objective == OBJECTIVE_THROUGHPUT)
        snprintf(buf, len, "delivers %.1f%% more tokens/s than %s (%.4g against %.4g on all GPUs)",
                 100 * (w->machine_tokens_per_s / r->machine_tokens_per_s - 1), label, w->machine_tokens_per_s,
                 r->machine_tokens_per_s);
    else
        snprintf(buf, len, "takes %.1f%% less time than %s (%.4g ms against %.4g ms)",
                 100 * (1 - w->latency_ms / r->latency_ms), label, w->latency_ms, r->latency_ms);
}

/* ", tied with tp 1 and 2 more," for rows whose key equals the winner's. */
static void ties(const struct search_row *rows, int n, enum search_objective objective, char *buf, size_t len)
{
    double best = search_objective_key(&rows[0], objective);
    int tied = 0;
    while (1 + tied < n && rows[1 + tied].fits && ties_with(search_objective_key(&rows[1 + tied], objective), best))
        tied++;
    buf[0] = 0;
    if (!tied) return;
    char first[96];
    search_config_label(&rows[1].c, first, sizeof first);
    if (tied == 1) snprintf(buf, len, " (tied with %s, ranked after it in enumeration order)", first);
    else snprintf(buf, len, " (tied with %s and %d more, ranked after it in enumeration order)", first, tied - 1);
}

void search_explain_winner(const struct search_row *rows, int n, enum search_objective objective, char *buf,
                           size_t len)
{
    if (n < 1 || !rows[0].fits) {
        snprintf(buf, len, "No configuration fits: every one was refused (reasons in search.csv).");
        return;
    }
    char win[96], other[128], by[320], how[320], tie[256];
    search_config_label(&rows[0].c, win, sizeof win);
    ties(rows, n, objective, tie, sizeof tie);
    const struct search_row *r = rival_of(rows, n, objective);
    if (!r) {
        snprintf(buf, len, "%s%s wins: nothing else that fits does as well.", win, tie);
        return;
    }
    char label[96];
    search_config_label(&r->c, label, sizeof label);
    snprintf(other, sizeof other, "%s, the best %s", label,
             strcmp(r->c.strategy, rows[0].c.strategy) ? "other strategy" : "other configuration");
    margin(&rows[0], r, other, objective, by, sizeof by);
    if (objective == OBJECTIVE_THROUGHPUT && rows[0].replicas > r->replicas)
        snprintf(how, sizeof how, "it runs %d copies side by side on %d GPU%s each, the other %d", rows[0].replicas,
                 rows[0].c.gpus, rows[0].c.gpus == 1 ? "" : "s", r->replicas);
    else
        mechanism(&rows[0], r, how, sizeof how);
    int used = snprintf(buf, len, "%s%s %s: %s.", win, tie, by, how);
    for (int i = 1; i < n && used > 0 && (size_t)used < len; i++) {
        if (!rows[i].fits || strcmp(rows[i].c.strategy, "naive") || &rows[i] == r) continue;
        if (ties_with(search_objective_key(&rows[i], objective), search_objective_key(&rows[0], objective))) break;
        margin(&rows[0], &rows[i], "naive (the hand split)", objective, by, sizeof by);
        snprintf(buf + used, len - (size_t)used, " It %s.", by);
        break;
    }
}
