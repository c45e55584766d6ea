/* search.csv, search_measured.csv and the tables printed beside them. */
#include "search_report.h"
#include <math.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include "../../base/csv.h"
#include "search_cli.h"
#include "search_rank.h"

#define TOP 10
#define GIB 1073741824.0

const char *const search_csv_columns[] = {
    "rank", "strategy", "tp_degree", "gpus", "stages", "microbatches", "virtual_stages", "status", "reason",
    "latency_ms", "tokens_per_s", "replicas", "machine_tokens_per_s", "goodput_requests_per_s",
    "memory_max_gpu_bytes",
    "memory_per_gpu_bytes", "memory_counted", "compute_ms_max_gpu", "moved_ms_max_gpu", "idle_ms_mean_gpu",
    "bubble_max", "gpipe_bound", NULL};

const char *const search_measured_csv_columns[] = {
    "predicted_rank", "measured_rank", "strategy", "tp_degree", "gpus", "stages", "microbatches",
    "virtual_stages", "predicted_ms", "measured_ms", "error_pct", "status", "reason", NULL};

static void header(FILE *f, const char *const *cols)
{
    for (int i = 0; cols[i]; i++) csv_field(f, cols[i], i == 0);
    csv_end(f);
}

static void int_field(FILE *f, long long v, int first)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    csv_field(f, b, first);
}

/* strategy, tp_degree, gpus, stages, microbatches, virtual_stages */
static void config_fields(FILE *f, const struct search_config *c)
{
    csv_field(f, c->strategy, 0);
    int_field(f, c->tp, 0);
    int_field(f, c->gpus, 0);
    int_field(f, c->stages, 0);
    int_field(f, c->microbatches, 0);
    int_field(f, c->virtual_stages, 0);
}

static void write_row(FILE *f, const struct search_row *r)
{
    int_field(f, r->rank, 1);
    config_fields(f, &r->c);
    csv_field(f, r->fits ? "fits" : "refused", 0);
    csv_field(f, r->fits ? "" : r->reason, 0);
    double ok = r->fits ? 1 : NAN;   /* a refused row has no time: empty, never zero */
    csv_number(f, ok * r->latency_ms, 0);
    csv_number(f, ok * r->tokens_per_s, 0);
    if (r->fits) int_field(f, r->replicas, 0);
    else csv_field(f, "", 0);
    csv_number(f, ok * r->machine_tokens_per_s, 0);
    csv_number(f, ok * r->goodput_rps, 0);
    char list[PB_MAX_DEVICES * 24] = "";
    size_t used = 0;
    for (int d = 0; d < r->n_memory && used < sizeof list; d++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%llu", d ? ";" : "",
                                 (unsigned long long)r->memory[d]);
    if (r->n_memory) int_field(f, (long long)r->memory_max, 0);
    else csv_field(f, "", 0);
    csv_field(f, list, 0);
    csv_field(f, search_memory_counted, 0);
    csv_number(f, ok * r->compute_ms_max, 0);
    csv_number(f, ok * r->moved_ms_max, 0);
    csv_number(f, ok * r->idle_ms_mean, 0);
    csv_number(f, ok * r->bubble_max, 0);
    csv_number(f, ok * r->gpipe_bound, 0);
    csv_end(f);
}

static int write_file(const char *dir, const char *name, const char *const *cols, const struct search_row *rows,
                      int n, void (*row)(FILE *, const struct search_row *))
{
    char path[4200];
    struct atomic_file a;
    PB_TRY(path_join(path, sizeof path, dir, name));
    PB_TRY(atomic_file_open(&a, path));
    header(a.f, cols);
    for (int i = 0; i < n; i++) row(a.f, &rows[i]);
    return atomic_file_commit(&a);
}

int search_write_csv(const char *dir, const struct search_row *rows, int n)
{
    return write_file(dir, "search.csv", search_csv_columns, rows, n, write_row);
}

static void write_measured_row(FILE *f, const struct search_row *r)
{
    int_field(f, r->rank, 1);
    if (r->measured_rank) int_field(f, r->measured_rank, 0);
    else csv_field(f, "", 0);
    config_fields(f, &r->c);
    csv_number(f, r->latency_ms, 0);
    csv_number(f, r->measured_ms, 0);
    csv_number(f, 100 * (r->latency_ms - r->measured_ms) / r->measured_ms, 0);
    csv_field(f, r->measured_rank ? "measured" : "failed", 0);
    csv_field(f, r->measure_reason, 0);
    csv_end(f);
}

int search_write_measured_csv(const char *dir, const struct search_row *rows, int k)
{
    return write_file(dir, "search_measured.csv", search_measured_csv_columns, rows, k, write_measured_row);
}

void search_print_top(FILE *f, const struct search_problem *pb, const struct search_row *rows, int n,
                      enum search_objective objective)
{
    int fits = 0;
    for (int i = 0; i < n; i++) fits += rows[i].fits;
    fprintf(f, "PREDICTED by the cost model (not measured): %s on %d x %s (profile %s), ", pb->m->name, pb->gpus,
            pb->prof->gpu, pb->prof->name);
    if (pb->serve)
        fprintf(f, "%d requests at %.4g/s, max batch %d, SLO ttft %.4g ms tpot %.4g ms; ranked by goodput\n",
                pb->serve->requests, pb->serve->rates[0], pb->serve->max_batch, pb->serve->slo_ttft_ms,
                pb->serve->slo_tpot_ms);
    else
        fprintf(f, "batch %d x seq %d%s; ranked by %s\n", pb->batch, pb->seq,
                pb->decode_tokens ? ", then greedy decode" : "", search_objective_name(objective));
    if (pb->decode_tokens) fprintf(f, "decode: %d tokens after the prefill\n", pb->decode_tokens);
    if (pb->serve)
        fprintf(f, "%4s  %-32s %4s %12s %12s %12s %9s\n", "rank", "configuration", "gpus", "goodput req/s",
                "e2e_p99_ms", "out tok/s", "mem GiB");
    else
        fprintf(f, "%4s  %-32s %4s %12s %12s %8s %14s %9s\n", "rank", "configuration", "gpus", "latency_ms",
                "tokens/s", "replicas", "all-GPU tok/s", "mem GiB");
    for (int i = 0; i < n && i < TOP && rows[i].fits; i++) {
        char label[96];
        search_config_label(&rows[i].c, label, sizeof label);
        if (pb->serve)
            fprintf(f, "%4d  %-32s %4d %13.3f %12.1f %12.0f %9.2f\n", rows[i].rank, label, rows[i].c.gpus,
                    rows[i].goodput_rps, rows[i].latency_ms, rows[i].tokens_per_s, rows[i].memory_max / GIB);
        else
            fprintf(f, "%4d  %-32s %4d %12.3f %12.0f %8d %14.0f %9.2f\n", rows[i].rank, label, rows[i].c.gpus,
                    rows[i].latency_ms, rows[i].tokens_per_s, rows[i].replicas, rows[i].machine_tokens_per_s,
                    rows[i].memory_max / GIB);
    }
    fprintf(f, "%d of %d configurations fit; %d refused (reasons in search.csv)\n", fits, n, n - fits);
    char why[1024];
    search_explain_winner(rows, n, objective, why, sizeof why);
    fprintf(f, "%s\n", why);
}

void search_print_measured(FILE *f, const struct search_row *rows, int k)
{
    fprintf(f, "\nMeasured against predicted (the best %d by prediction):\n", k);
    fprintf(f, "%9s %8s  %-32s %12s %12s %8s\n", "predicted", "measured", "configuration", "predicted_ms",
            "measured_ms", "error");
    for (int i = 0; i < k; i++) {
        char label[96];
        search_config_label(&rows[i].c, label, sizeof label);
        if (!rows[i].measured_rank) {
            fprintf(f, "%9d %8s  %-32s %12.3f  not measured: %s\n", rows[i].rank, "-", label, rows[i].latency_ms,
                    rows[i].measure_reason);
            continue;
        }
        fprintf(f, "%9d %8d  %-32s %12.3f %12.3f %7.1f%%\n", rows[i].rank, rows[i].measured_rank, label,
                rows[i].latency_ms, rows[i].measured_ms,
                100 * (rows[i].latency_ms - rows[i].measured_ms) / rows[i].measured_ms);
    }
    double rho = search_rank_correlation(rows, k);
    if (isnan(rho)) fprintf(f, "rank correlation: fewer than two measured\n");
    else fprintf(f, "rank correlation (Spearman) between predicted and measured order: %.2f\n", rho);
}
