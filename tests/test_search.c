/* bench --search on the CPU: the enumeration counted by hand, refusals with their
 * reasons, the ranking by the objective, the winner against naive and auto, the
 * --measure-top selection and rank comparison with the cost model standing in for
 * the GPUs, search.csv, and bad command lines. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include "../base/check.h"
#include "../base/csv_read.h"
#include "../base/text_file.h"
#include "../harness/run/simulate_run.h"
#include "../harness/search/search_measured.h"
#include "../harness/search/search_rank.h"
#include "../harness/search/search_report.h"
#include "../harness/search/search_run.h"
#include "test.h"

#define MIB (1ull << 20)

static const char *const all_names[] = {"single", "naive", "auto", "optimal", "pipeline", "tp", "hybrid"};
#define N_ALL 7

static struct device_profile h200, h100;

static void load_profiles(void)
{
    static int loaded;
    if (loaded) return;
    loaded = device_profile_load("h200", &h200) == PB_OK && device_profile_load("h100", &h100) == PB_OK;
}

/* The model on `gpus` GPUs with `budget` bytes each (0: the profile's memory). */
static struct search_problem problem(const struct model_spec *m, int gpus, int batch, int seq, int decode,
                                     uint64_t budget)
{
    load_profiles();
    struct search_problem pb = {.prof = &h200, .m = m, .gpus = gpus, .batch = batch, .seq = seq,
                                .decode_tokens = decode, .dtype = DTYPE_BF16};
    pb.mc.gpus = gpus;
    for (int d = 0; d < gpus; d++) pb.mc.gpu_memory[d] = budget ? budget : h200.memory_bytes;
    pb.mc.cpu_memory = 512ull << 30;
    pb.mc.budgets_from_user = budget != 0;
    return pb;
}

static int count_strategy(const struct search_config *c, int n, const char *name)
{
    int k = 0;
    for (int i = 0; i < n; i++) k += !strcmp(c[i].strategy, name);
    return k;
}

static const struct search_row *find_row(const struct search_row *r, int n, const char *strategy, int tp, int mb,
                                         int v)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].c.strategy, strategy) && r[i].c.tp == tp && r[i].c.microbatches == mb &&
            r[i].c.virtual_stages == v)
            return &r[i];
    return NULL;
}

/* llama-tiny (6 layers, 4 heads) on 4 GPUs, batch 8 (m in 1, 2, 4, 8):
 * single 1 + naive 1 + auto 1 + optimal 1
 * + pipeline: V = 1 only (6 layers make no 4 x V equal chunks), 4 values of m    =  4
 * + tp: D = 2, 3, 4 (tp 1 is single)                                             =  3
 * + hybrid: D = 2 (2 stages, V 1 or 3: 6 = 2 x 3 x 1): 8; D = 4 (1 stage): 4      = 12
 *   (D = 1 is pipeline)
 * = 23. */
TEST(test_search_enumerates_every_combination_once_for_llama_tiny_on_4_gpus)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);
    CHECK_EQ_INT(search_enumerate(&m, 4, 8, all_names, N_ALL, NULL, 0), 23);
    struct search_config c[64];
    int n = search_enumerate(&m, 4, 8, all_names, N_ALL, c, 64);
    CHECK_EQ_INT(n, 23);
    CHECK_EQ_INT(count_strategy(c, n, "single"), 1);
    CHECK_EQ_INT(count_strategy(c, n, "naive"), 1);
    CHECK_EQ_INT(count_strategy(c, n, "auto"), 1);
    CHECK_EQ_INT(count_strategy(c, n, "optimal"), 1);
    CHECK_EQ_INT(count_strategy(c, n, "pipeline"), 4);
    CHECK_EQ_INT(count_strategy(c, n, "tp"), 3);
    CHECK_EQ_INT(count_strategy(c, n, "hybrid"), 12);
    int duplicates = 0, hybrid_v3 = 0;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            duplicates += !strcmp(c[i].strategy, c[j].strategy) && c[i].tp == c[j].tp && c[i].gpus == c[j].gpus &&
                          c[i].microbatches == c[j].microbatches && c[i].virtual_stages == c[j].virtual_stages;
        hybrid_v3 += !strcmp(c[i].strategy, "hybrid") && c[i].tp == 2 && c[i].stages == 2 && c[i].virtual_stages == 3;
        CHECK(8 % c[i].microbatches == 0);
        CHECK(c[i].virtual_stages == 1 || m.layers % (c[i].stages * c[i].virtual_stages) == 0);
        CHECK(c[i].tp >= 1 && c[i].tp * c[i].stages <= 4);
    }
    CHECK_EQ_INT(duplicates, 0);
    CHECK_EQ_INT(hybrid_v3, 4);   /* one per microbatch count */
    /* --strategy narrows it; the array too short is reported, not overrun */
    const char *two[] = {"tp", "single"};
    CHECK_EQ_INT(search_enumerate(&m, 4, 8, two, 2, c, 3), 4);
    CHECK_EQ_INT(search_enumerate(&m, 0, 8, all_names, N_ALL, c, 64), PB_ERR);
}

TEST(test_search_lists_refused_configurations_with_their_reasons)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);
    /* The memory model's peaks at batch 8 x 16 (32 MiB of cuBLASLt workspace each, then
     * weights, KV, activations): one GPU 42 MiB, the hand split's last GPU 37.6 MiB (3
     * layers and lm_head), tp on 4 35.3 MiB each: 37 MiB per GPU refuses the first two. */
    struct search_problem pb = problem(&m, 4, 8, 16, 0, 37 * MIB);
    struct search_row *r;
    int n;
    CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, OBJECTIVE_LATENCY, &r, &n), PB_OK);
    CHECK_EQ_INT(n, 23);
    const struct search_row *single = find_row(r, n, "single", 1, 1, 1), *tp3 = find_row(r, n, "tp", 3, 1, 1);
    const struct search_row *tp4 = find_row(r, n, "tp", 4, 1, 1), *naive = find_row(r, n, "naive", 1, 1, 1);
    CHECK(single && !single->fits && strstr(single->reason, "budget"));
    CHECK(naive && !naive->fits && strstr(naive->reason, "budget"));
    CHECK(tp3 && !tp3->fits && strstr(tp3->reason, "tp: 3 GPUs do not divide"));
    CHECK(tp4 && tp4->fits && tp4->memory_max <= 37 * MIB && tp4->n_memory == 4);
    int fits = 0;
    for (int i = 0; i < n; i++) {
        fits += r[i].fits;
        if (!r[i].fits) CHECK(r[i].reason[0] && r[i].rank == 0 && isnan(r[i].latency_ms));
        else CHECK(r[i].memory_max <= 37 * MIB && r[i].latency_ms > 0 && !r[i].reason[0]);
    }
    CHECK(fits > 0 && fits < n);
    free(r);
}

TEST(test_search_ranks_by_predicted_latency_or_by_tokens_per_second)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);
    struct search_problem pb = problem(&m, 4, 8, 64, 4, 0);
    struct search_row *r;
    int n;
    CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, OBJECTIVE_LATENCY, &r, &n), PB_OK);
    int sorted = 1, refused_last = 1, ranks = 1;
    for (int i = 0; i < n; i++) {
        if (i && r[i].fits && r[i - 1].fits) sorted &= r[i - 1].latency_ms <= r[i].latency_ms;
        if (i && r[i].fits) refused_last &= r[i - 1].fits;
        ranks &= r[i].rank == (r[i].fits ? i + 1 : 0);
    }
    CHECK(sorted);
    CHECK(refused_last);
    CHECK(ranks);
    free(r);
    CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, OBJECTIVE_THROUGHPUT, &r, &n), PB_OK);
    sorted = 1;
    for (int i = 1; i < n; i++)
        if (r[i].fits && r[i - 1].fits) sorted &= r[i - 1].machine_tokens_per_s >= r[i].machine_tokens_per_s;
    CHECK(sorted);
    /* one GPU's configuration runs four copies side by side on four */
    const struct search_row *single = find_row(r, n, "single", 1, 1, 1);
    CHECK(single && single->replicas == 4);
    CHECK_NEAR(single->machine_tokens_per_s, 4 * single->tokens_per_s, 1e-9 * single->tokens_per_s);
    free(r);
}

/* What --simulate predicts for the same point: the search prices through the same call. */
static double simulated_ms(const struct search_problem *pb, const char *name)
{
    const struct strategy *st = strategy_find(name);
    struct workload w = {.batch = pb->batch, .seq = pb->seq, .context = pb->seq, .dtype = DTYPE_BF16};
    struct machine mc = pb->mc;
    struct placement p;
    struct point_result r;
    struct trace t;
    if (st->place(pb->m, &w, &mc, &p) != PB_OK) return NAN;
    if (simulate_point(pb->prof, pb->m, st, &p, &w, pb->decode_tokens, &r, &t) != PB_OK) return NAN;
    double ms = r.p50_ms;
    point_result_free(&r);
    trace_free(&t);
    return ms;
}

TEST(test_search_winner_never_loses_to_naive_or_auto_on_the_cost_model)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    const int shapes[][4] = {{2, 8, 128, 0}, {2, 1, 128, 8}, {4, 4, 64, 4}};
    for (int k = 0; k < 3; k++) {
        struct search_problem pb = problem(&m, shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], 0);
        for (int obj = 0; obj < 2; obj++) {
            struct search_row *r;
            int n;
            CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, (enum search_objective)obj, &r, &n), PB_OK);
            const struct search_row *naive = find_row(r, n, "naive", 1, 1, 1), *aut = find_row(r, n, "auto", 1, 1, 1);
            CHECK(r[0].fits && naive && naive->fits && aut && aut->fits);
            double best = search_objective_key(&r[0], (enum search_objective)obj);
            CHECK(best <= search_objective_key(naive, (enum search_objective)obj));
            CHECK(best <= search_objective_key(aut, (enum search_objective)obj));
            CHECK_NEAR(naive->latency_ms, simulated_ms(&pb, "naive"), 1e-9 * naive->latency_ms);
            char why[1024];
            search_explain_winner(r, n, (enum search_objective)obj, why, sizeof why);
            CHECK(strstr(why, " than ") && strstr(why, "%"));
            free(r);
        }
    }
}

/* optimal is placed on the cost model's latency in the search as in the sweep, so its
 * row never loses to naive's or auto's (Llama-2-7B on 8 GPUs: auto's split is faster than
 * the balanced one there). */
TEST(test_search_prices_optimal_on_predicted_latency)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-2-7b.json", &m), PB_OK);
    const int gpus[] = {2, 4, 8};
    for (int k = 0; k < 3; k++) {
        struct search_problem pb = problem(&m, gpus[k], 8, 512, 0, 0);
        struct search_row *r;
        int n;
        CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, OBJECTIVE_LATENCY, &r, &n), PB_OK);
        const struct search_row *opt = find_row(r, n, "optimal", 1, 1, 1), *naive = find_row(r, n, "naive", 1, 1, 1),
                                *aut = find_row(r, n, "auto", 1, 1, 1);
        CHECK(opt && opt->fits && naive && naive->fits && aut && aut->fits);
        if (opt && naive && aut) {
            CHECK(opt->latency_ms <= naive->latency_ms);
            CHECK(opt->latency_ms <= aut->latency_ms);
        }
        free(r);
    }
}

/* The GPUs' stand-in: the H100 profile prices what the search priced on the H200's. */
static int measure_on_h100(const struct options *o, const struct model_spec *m, const struct search_row *row,
                           const char *dir, double *ms)
{
    (void)o;
    (void)dir;
    struct search_problem pb = problem(m, row->c.gpus, 8, 64, 0, 0);
    pb.prof = &h100;
    struct search_row again;
    if (search_price(&pb, &row->c, 0, &again) != PB_OK) return PB_ERR;
    *ms = again.latency_ms;
    return PB_OK;
}

static int measure_same(const struct options *o, const struct model_spec *m, const struct search_row *row,
                        const char *dir, double *ms)
{
    (void)o, (void)m, (void)dir;
    *ms = row->latency_ms;
    return PB_OK;
}

static int measure_fails_for_tp(const struct options *o, const struct model_spec *m, const struct search_row *row,
                                const char *dir, double *ms)
{
    if (!strcmp(row->c.strategy, "tp")) return pb_fail("out of memory on GPU 1 (stand-in)");
    return measure_same(o, m, row, dir, ms);
}

TEST(test_search_measure_top_ranks_measured_against_predicted)
{
    struct model_spec m;
    CHECK_EQ_INT(model_spec_load("models/llama-tiny.json", &m), PB_OK);
    struct search_problem pb = problem(&m, 4, 8, 64, 0, 0);
    struct search_row *r;
    int n, measured, asked;
    char dir[256];
    make_temp_dir(dir, sizeof dir);
    CHECK_EQ_INT(search_configurations(&pb, all_names, N_ALL, OBJECTIVE_LATENCY, &r, &n), PB_OK);
    CHECK_EQ_INT(search_measure_top(NULL, &m, r, n, 5, OBJECTIVE_LATENCY, measure_same, dir, &measured, &asked),
                 PB_OK);
    CHECK_EQ_INT(asked, 5);
    CHECK_EQ_INT(measured, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(r[i].measured_rank, i + 1);
    CHECK_NEAR(search_rank_correlation(r, 5), 1.0, 1e-12);
    CHECK(isnan(r[5].measured_ms) && r[5].measured_rank == 0);

    CHECK_EQ_INT(search_measure_top(NULL, &m, r, n, 6, OBJECTIVE_LATENCY, measure_on_h100, dir, &measured, &asked),
                 PB_OK);
    CHECK_EQ_INT(measured, 6);
    int permutation = 0, ordered = 1;
    for (int i = 0; i < 6; i++) {
        permutation |= 1 << (r[i].measured_rank - 1);
        for (int j = 0; j < 6; j++)
            if (r[i].measured_rank < r[j].measured_rank) ordered &= r[i].measured_ms <= r[j].measured_ms;
    }
    CHECK_EQ_INT(permutation, 63);
    CHECK(ordered);
    double rho = search_rank_correlation(r, 6);
    CHECK(rho >= -1 && rho <= 1);

    CHECK_EQ_INT(search_measure_top(NULL, &m, r, n, n, OBJECTIVE_LATENCY, measure_fails_for_tp, dir, &measured,
                                    &asked), PB_OK);
    int fits = 0, tp_failed = 0;
    for (int i = 0; i < n; i++) fits += r[i].fits;
    CHECK_EQ_INT(asked, fits);   /* never more than fit */
    for (int i = 0; i < asked; i++)
        if (!strcmp(r[i].c.strategy, "tp")) {
            tp_failed++;
            CHECK(r[i].measured_rank == 0 && strstr(r[i].measure_reason, "stand-in"));
        }
    CHECK(tp_failed > 0);
    CHECK_EQ_INT(measured, asked - tp_failed);
    char path[512];
    snprintf(path, sizeof path, "%s/measure-01", dir);
    CHECK(access(path, F_OK) == 0);
    free(r);
}

TEST(test_search_rank_correlation_is_minus_one_for_the_reverse_order)
{
    struct search_row r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) r[i].measured_rank = 3 - i;
    CHECK_NEAR(search_rank_correlation(r, 3), -1.0, 1e-12);
    r[2].measured_rank = 0;   /* fewer than two measured: no correlation */
    r[1].measured_rank = 0;
    CHECK(isnan(search_rank_correlation(r, 3)));
}

/* bench --model llama-tiny --search ARGS --out DIR (a fresh folder, into dir). */
static int search_into(const char *args, char *dir, size_t dir_len, char *out, size_t out_len)
{
    char cmd[2048];
    make_temp_dir(dir, dir_len);
    snprintf(cmd, sizeof cmd, "--model llama-tiny --search %s --out %s", args, dir);
    return run_bench(cmd, out, out_len);
}

TEST(test_search_csv_has_fixed_columns_documented_in_metrics_and_readme)
{
    char out[65536], dir[256], path[600];
    CHECK_EQ_INT(search_into("--gpus 4 --batch 8 --seq 64 --gpu-profile h200", dir, sizeof dir, out, sizeof out), 0);
    CHECK(strstr(out, "ranked by latency") && strstr(out, " less time than ") && strstr(out, "23 configurations"));
    snprintf(path, sizeof path, "%s/search.csv", dir);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    int ncols = 0;
    while (search_csv_columns[ncols]) ncols++;
    CHECK_EQ_INT(t.n_cols, ncols);
    for (int i = 0; i < ncols && i < t.n_cols; i++) CHECK(!strcmp(t.header[i], search_csv_columns[i]));
    CHECK_EQ_INT(t.n_rows, 23);
    CHECK(!strcmp(csv_get(&t, 0, "rank"), "1") && !strcmp(csv_get(&t, 0, "status"), "fits"));
    csv_table_free(&t);
    char *metrics = text_file_read("docs/METRICS.md"), *readme = text_file_read("README.md");
    CHECK(metrics && readme);
    for (int i = 0; metrics && readme && search_csv_columns[i]; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s`", search_csv_columns[i]);
        if (!strstr(metrics, quoted)) fprintf(stderr, "  METRICS.md lacks %s\n", quoted);
        CHECK(strstr(metrics, quoted) != NULL);
        CHECK(strstr(readme, search_csv_columns[i]) != NULL);
    }
    for (int i = 0; metrics && search_measured_csv_columns[i]; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s`", search_measured_csv_columns[i]);
        CHECK(strstr(metrics, quoted) != NULL);
    }
    free(metrics);
    free(readme);
}

TEST(test_search_measure_top_without_gpus_writes_search_csv_and_fails)
{
    char out[65536], dir[256], path[600];
    CHECK_EQ_INT(search_into("--gpus 2 --batch 4 --seq 32 --measure-top 2", dir, sizeof dir, out, sizeof out), 1);
    CHECK(strstr(out, "no GPU found") && strstr(out, "2 of 2 configurations could not be measured"));
    snprintf(path, sizeof path, "%s/search.csv", dir);
    CHECK(access(path, R_OK) == 0);
    snprintf(path, sizeof path, "%s/search_measured.csv", dir);
    CHECK(access(path, R_OK) == 0);
}

TEST(test_search_where_nothing_fits_writes_every_refusal_and_exits_1)
{
    char out[65536], dir[256], path[600];
    CHECK_EQ_INT(search_into("--gpus 2 --batch 2 --seq 16 --max-memory 0=1MiB,1=1MiB", dir, sizeof dir, out,
                             sizeof out), 1);
    CHECK(strstr(out, "No configuration fits") && strstr(out, "none of the"));
    snprintf(path, sizeof path, "%s/search.csv", dir);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK(t.n_rows > 0);
    for (int i = 0; i < t.n_rows; i++) CHECK(!strcmp(csv_get(&t, i, "status"), "refused") && csv_get(&t, i, "reason")[0]);
    csv_table_free(&t);
}

TEST(test_search_bad_command_lines_exit_2_naming_the_flag)
{
    char out[8192];
    const char *m = "--model llama-tiny";
    struct {
        const char *args, *says;
    } bad[] = {
        {"--search --objective foo", "--objective: unknown objective \"foo\"; valid: latency, throughput, goodput"},
        {"--search --objective goodput", "--objective goodput needs a request stream"},
        {"--search --objective goodput --serve --simulate --slo ttft=1s", "give one --rate (0 given"},
        {"--search --objective goodput --serve --simulate --rate 1,2 --slo ttft=1s", "give one --rate (2 given"},
        {"--search --objective goodput --serve --simulate --rate 4", "give --slo"},
        {"--search --objective goodput --serve --rate 4 --slo ttft=1s --measure-top 2", "cannot be measured yet"},
        {"--search --plan", "--search and --plan"},
        {"--search --serve --simulate", "add --objective goodput"},
        {"--objective latency", "belong to --search"},
        {"--measure-top 3", "belong to --search"},
        {"--search --measure-top 0", "--measure-top: \"0\""},
        {"--search --batch 1,8", "one --batch and one --seq"},
        {"--search --microbatches 2", "drop --microbatches"},
        {"--search --tp 2", "drop --tp"},
        {"--search --virtual-stages 2", "drop --virtual-stages"},
        {"--search --devices 0,0", "--devices is not searched"},
        {"--search --predict", "--predict"},
        {"--search --simulate --measure-top 2", "choose one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "%s %s", m, bad[i].args);
        int rc = run_bench(args, out, sizeof out);
        if (rc != 2 || !strstr(out, bad[i].says)) fprintf(stderr, "  bench %s -> %d: %s", args, rc, out);
        CHECK_EQ_INT(rc, 2);
        CHECK(strstr(out, bad[i].says) != NULL);
    }
}

static struct search_row made_row(const char *strategy, int tp, int gpus, int mb, double ms, double compute,
                                  double moved, double idle)
{
    struct search_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.c.strategy, sizeof r.c.strategy, "%s", strategy);
    r.c.tp = tp;
    r.c.gpus = gpus;
    r.c.stages = 1;
    r.c.microbatches = mb;
    r.c.virtual_stages = 1;
    r.fits = 1;
    r.latency_ms = ms;
    r.tokens_per_s = 1000 / ms;
    r.replicas = 1;
    r.machine_tokens_per_s = r.tokens_per_s;
    r.compute_ms_max = compute;
    r.moved_ms_max = moved;
    r.idle_ms_mean = idle;
    r.bubble_max = r.gpipe_bound = NAN;
    return r;
}

TEST(test_search_winner_sentence_names_the_rival_the_margin_and_the_term_that_differs)
{
    char why[1024];
    /* compute differs most: tp 2 halves every GPU's weights */
    struct search_row a[3] = {made_row("tp", 2, 2, 1, 80, 70, 9, 1), made_row("tp", 2, 2, 1, 80, 70, 9, 1),
                              made_row("naive", 1, 2, 1, 100, 100, 1, 20)};
    snprintf(a[1].c.strategy, sizeof a[1].c.strategy, "hybrid");
    search_rank(a, 3, OBJECTIVE_LATENCY);
    search_explain_winner(a, 3, OBJECTIVE_LATENCY, why, sizeof why);
    CHECK(strstr(why, "tp 2 (tied with hybrid tp 2 x 1 stage m=1"));
    CHECK(strstr(why, "takes 20.0% less time than naive, the best other strategy (80 ms against 100 ms)"));
    CHECK(strstr(why, "its busiest GPU computes for 70 ms against 100 (each GPU reads and multiplies 1/2"));
    /* waiting differs most: the hand split's GPUs take turns */
    a[2].idle_ms_mean = 50;
    search_explain_winner(a, 3, OBJECTIVE_LATENCY, why, sizeof why);
    CHECK(strstr(why, "its GPUs wait 1 ms on average against 50; the other's 2 GPUs take turns"));
    /* all-reduces and copies differ most */
    struct search_row b[2] = {made_row("pipeline", 1, 2, 4, 50, 40, 1, 5), made_row("tp", 2, 2, 1, 60, 40, 20, 5)};
    search_rank(b, 2, OBJECTIVE_LATENCY);
    search_explain_winner(b, 2, OBJECTIVE_LATENCY, why, sizeof why);
    CHECK(strstr(why, "it spends 1 ms on all-reduces and copies on its busiest GPU against 20"));
    /* throughput: a one-GPU configuration twice over */
    struct search_row c[2] = {made_row("single", 1, 1, 1, 90, 90, 0, 0), made_row("pipeline", 1, 2, 2, 50, 45, 1, 3)};
    c[0].replicas = 2;
    c[0].machine_tokens_per_s = 2 * c[0].tokens_per_s;
    search_rank(c, 2, OBJECTIVE_THROUGHPUT);
    search_explain_winner(c, 2, OBJECTIVE_THROUGHPUT, why, sizeof why);
    CHECK(!strcmp(c[0].c.strategy, "single"));
    CHECK(strstr(why, "delivers 11.1% more tokens/s than pipeline m=2") && strstr(why, "runs 2 copies side by side"));
    /* nothing else fits */
    c[1].fits = 0;
    search_rank(c, 2, OBJECTIVE_THROUGHPUT);
    search_explain_winner(c, 2, OBJECTIVE_THROUGHPUT, why, sizeof why);
    CHECK(strstr(why, "single wins: nothing else that fits does as well"));
}

TEST(test_search_hands_the_measured_run_one_configuration)
{
    static struct options o, narrowed;
    memset(&o, 0, sizeof o);
    o.strategies[0] = "single";
    o.strategies[1] = "hybrid";
    o.n_strategies = 2;
    o.gpus = 8;
    o.n_microbatches = 1;
    o.batches[0] = 8;
    o.n_batches = 1;
    o.search.enabled = 1;
    o.search.measure_top = 3;
    struct search_row hybrid = made_row("hybrid", 2, 8, 4, 10, 1, 1, 1), tp = made_row("tp", 4, 4, 1, 10, 1, 1, 1);
    hybrid.c.virtual_stages = 2;
    search_measured_options(&o, &hybrid, "DIR", &narrowed);
    CHECK_EQ_INT(narrowed.n_strategies, 1);
    CHECK(!strcmp(narrowed.strategies[0], "hybrid"));
    CHECK_EQ_INT(narrowed.gpus, 8);
    CHECK_EQ_INT(narrowed.machine.tp, 2);
    CHECK_EQ_INT(narrowed.n_microbatches, 1);
    CHECK_EQ_INT(narrowed.microbatches[0], 4);
    CHECK_EQ_INT(narrowed.machine.virtual_stages, 2);
    CHECK(!narrowed.search.enabled && !narrowed.search.measure_top && !strcmp(narrowed.out_dir, "DIR"));
    /* tp takes its degree as its GPU count, and no --tp or --microbatches */
    search_measured_options(&o, &tp, "DIR", &narrowed);
    CHECK_EQ_INT(narrowed.gpus, 4);
    CHECK_EQ_INT(narrowed.machine.tp, 0);
    CHECK_EQ_INT(narrowed.microbatches[0], 0);
}

TEST(test_search_reads_back_the_measured_p50_or_why_it_failed)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("strategy,status,reason,latency_p50_ms\r\ntp,ok,,54.25\r\npipeline,failed,\"out of memory, GPU 1\",\r\n", f);
    fclose(f);
    double ms = NAN;
    CHECK_EQ_INT(search_read_measured_p50(dir, "tp", &ms), PB_OK);
    CHECK_NEAR(ms, 54.25, 0);
    CHECK_EQ_INT(search_read_measured_p50(dir, "pipeline", &ms), PB_ERR);
    CHECK(strstr(pb_last_error(), "pipeline failed: out of memory, GPU 1"));
    CHECK_EQ_INT(search_read_measured_p50(dir, "naive", &ms), PB_ERR);
    CHECK(strstr(pb_last_error(), "no row of naive"));
    CHECK_EQ_INT(search_read_measured_p50("/nonexistent-placebench", "tp", &ms), PB_ERR);
}

static double number_in(const char *path, const char *strategy, const char *column)
{
    struct csv_table t;
    if (csv_read_file(path, &t) != PB_OK) return NAN;
    double v = NAN;
    for (int i = 0; i < t.n_rows && isnan(v); i++)
        if (!strcmp(csv_get(&t, i, "strategy"), strategy) && strcmp(csv_get(&t, i, "status"), "refused"))
            v = csv_get_num(&t, i, column);
    csv_table_free(&t);
    return v;
}

TEST(test_search_goodput_ranks_a_served_stream_as_bench_serve_serves_it)
{
    char out[65536], dir[256], serve_dir[256], path[600], args[1024];
    const char *stream = "--serve --simulate --requests 48 --rate 400 --prompt-len 64 --output-len 16 --max-batch 8 "
                         "--slo ttft=2ms,tpot=0.25ms --gpus 2";
    snprintf(args, sizeof args, "%s --objective goodput", stream);
    CHECK_EQ_INT(search_into(args, dir, sizeof dir, out, sizeof out), 0);
    CHECK(strstr(out, "ranked by goodput") && strstr(out, "more requests/s within the SLO than"));
    snprintf(path, sizeof path, "%s/search.csv", dir);
    struct csv_table t;
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    int sorted = 1;
    for (int i = 1; i < t.n_rows; i++)
        if (!strcmp(csv_get(&t, i, "status"), "fits"))
            sorted &= csv_get_num(&t, i - 1, "goodput_requests_per_s") >= csv_get_num(&t, i, "goodput_requests_per_s");
    CHECK(sorted && t.n_rows > 0);
    csv_table_free(&t);
    /* bench --serve on the same stream: tp's goodput is the search's tp row's */
    make_temp_dir(serve_dir, sizeof serve_dir);
    snprintf(args, sizeof args, "--model llama-tiny %s --strategy tp --out %s", stream, serve_dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    char serve_csv[600];
    snprintf(serve_csv, sizeof serve_csv, "%s/serve.csv", serve_dir);
    double served = number_in(serve_csv, "tp", "goodput_requests_per_s");
    double searched = number_in(path, "tp", "goodput_requests_per_s");
    CHECK(served > 0);
    CHECK_NEAR(searched, served, 1e-5 * served);
}
