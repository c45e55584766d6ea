/* bench --serve: the request stream, the length and SLO flags, the batching
 * policy, the metric definitions on a stream checked by hand, the cost cache's
 * buckets, the KV cache capacity, and a whole --serve --simulate run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../base/check.h"
#include "../base/csv_read.h"
#include "../base/text_file.h"
#include "../harness/exec/model/device_profile.h"
#include "../harness/exec/model/simulate.h"
#include "../harness/measure/metrics.h"
#include "../harness/serve/serve_cli.h"
#include "../harness/serve/serve_cost.h"
#include "../harness/serve/serve_metrics.h"
#include "../harness/serve/serve_stream.h"
#include "test.h"

static struct serve_options fixed_lengths(int prompt, int output)
{
    struct serve_options s = {.prompt = {.kind = LENGTH_FIXED, .fixed = prompt},
                              .output = {.kind = LENGTH_FIXED, .fixed = output}};
    return s;
}

TEST(test_serve_arrivals_are_seeded_poisson_with_the_offered_mean_rate)
{
    enum { N = 20000 };
    static struct serve_request a[N], b[N], c[N];
    struct serve_options s = fixed_lengths(8, 4);
    serve_stream_make(&s, 50, 1234, a, N);
    serve_stream_make(&s, 50, 1234, b, N);
    serve_stream_make(&s, 50, 99, c, N);
    CHECK_NEAR(a[0].arrival_ms, 0, 0);
    int same = 1, differs = 0, sorted = 1;
    for (int i = 0; i < N; i++) {
        same &= a[i].arrival_ms == b[i].arrival_ms;
        differs |= a[i].arrival_ms != c[i].arrival_ms;
        sorted &= i == 0 || a[i].arrival_ms >= a[i - 1].arrival_ms;
    }
    CHECK(same);
    CHECK(differs);
    CHECK(sorted);
    /* mean gap 1/rate = 20 ms; its standard error over N gaps is 20/sqrt(N) = 0.14 ms */
    CHECK_NEAR(a[N - 1].arrival_ms / (N - 1), 20.0, 0.6);
    /* exponential gaps: the share of gaps above the mean is e^-1 */
    int above = 0;
    for (int i = 1; i < N; i++) above += a[i].arrival_ms - a[i - 1].arrival_ms > 20.0;
    CHECK_NEAR(above / (double)(N - 1), exp(-1), 0.015);
}

TEST(test_serve_sweep_changes_only_the_pace_and_inf_sends_all_at_once)
{
    struct serve_request slow[64], fast[64], all[64];
    struct serve_options s = {.prompt = {.kind = LENGTH_UNIFORM, .lo = 10, .hi = 20},
                              .output = {.kind = LENGTH_UNIFORM, .lo = 1, .hi = 5}};
    serve_stream_make(&s, 1, 7, slow, 64);
    serve_stream_make(&s, 4, 7, fast, 64);
    serve_stream_make(&s, INFINITY, 7, all, 64);
    int lengths_same = 1, in_range = 1;
    for (int i = 0; i < 64; i++) {
        lengths_same &= slow[i].prompt_tokens == fast[i].prompt_tokens && slow[i].prompt_tokens == all[i].prompt_tokens;
        lengths_same &= slow[i].output_tokens == fast[i].output_tokens;
        in_range &= slow[i].prompt_tokens >= 10 && slow[i].prompt_tokens <= 20;
        in_range &= slow[i].output_tokens >= 1 && slow[i].output_tokens <= 5;
        CHECK_NEAR(fast[i].arrival_ms, slow[i].arrival_ms / 4, 1e-9);
        CHECK_NEAR(all[i].arrival_ms, 0, 0);
    }
    CHECK(lengths_same);
    CHECK(in_range);
}

TEST(test_serve_length_specs_parse_and_bad_ones_are_named)
{
    struct length_spec l;
    CHECK_EQ_INT(serve_parse_length("--prompt-len", "128", &l), PB_OK);
    CHECK(l.kind == LENGTH_FIXED && l.fixed == 128);
    CHECK_EQ_INT(serve_parse_length("--prompt-len", "uniform:16-64", &l), PB_OK);
    CHECK(l.kind == LENGTH_UNIFORM && l.lo == 16 && l.hi == 64);
    CHECK_EQ_INT(serve_parse_length("--prompt-len", "file:lengths.csv", &l), PB_OK);
    CHECK(l.kind == LENGTH_FILE && !strcmp(l.path, "lengths.csv"));
    const char *bad[] = {"abc", "0", "-4", "12x", "uniform:5", "uniform:9-3", "uniform:-3", "uniform:4-",
                         "uniform:a-b", "file:", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(serve_parse_length("--output-len", bad[i], &l), PB_ERR);
        CHECK(strstr(pb_last_error(), "--output-len") != NULL);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

TEST(test_serve_length_file_reads_its_column_and_names_a_bad_row)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/lengths.csv", dir);
    write_file(path, "prompt_tokens,output_tokens\n100,7\n200,9\n");
    struct length_spec l = {.kind = LENGTH_FILE, .path = path};
    CHECK_EQ_INT(serve_read_length_file("--output-len", "output_tokens", &l), PB_OK);
    CHECK(l.n_values == 2 && l.values[0] == 7 && l.values[1] == 9);
    length_spec_free(&l);
    write_file(path, "tokens\n100\n\n");   /* one column, any name; a blank last line is no row */
    CHECK_EQ_INT(serve_read_length_file("--prompt-len", "prompt_tokens", &l), PB_OK);
    CHECK(l.n_values == 1 && l.values[0] == 100);
    length_spec_free(&l);
    write_file(path, "prompt_tokens,output_tokens\n100,7\n200,lots\n");
    CHECK_EQ_INT(serve_read_length_file("--output-len", "output_tokens", &l), PB_ERR);
    CHECK(strstr(pb_last_error(), "line 3") && strstr(pb_last_error(), "lots"));
    write_file(path, "a,b\n1,2\n");
    CHECK_EQ_INT(serve_read_length_file("--prompt-len", "prompt_tokens", &l), PB_ERR);
    CHECK(strstr(pb_last_error(), "no column") != NULL);
}

TEST(test_serve_slo_units_and_rates_parse)
{
    double ttft, tpot;
    CHECK_EQ_INT(serve_parse_slo("ttft=200ms,tpot=0.05s", &ttft, &tpot), PB_OK);
    CHECK_NEAR(ttft, 200, 1e-9);
    CHECK_NEAR(tpot, 50, 1e-9);
    CHECK_EQ_INT(serve_parse_slo("ttft=1500", &ttft, &tpot), PB_OK);
    CHECK_NEAR(ttft, 1500, 1e-9);
    CHECK(isinf(tpot));   /* no limit on what was not named */
    CHECK_EQ_INT(serve_parse_slo("tpot=2500us", &ttft, &tpot), PB_OK);
    CHECK_NEAR(tpot, 2.5, 1e-9);
    CHECK_EQ_INT(serve_parse_slo("ttft=1h", &ttft, &tpot), PB_ERR);
    CHECK(strstr(pb_last_error(), "unknown unit") != NULL);
    CHECK_EQ_INT(serve_parse_slo("latency=3", &ttft, &tpot), PB_ERR);
    CHECK_EQ_INT(serve_parse_slo("ttft=-3", &ttft, &tpot), PB_ERR);
    double r[SERVE_MAX_RATES];
    CHECK_EQ_INT(serve_parse_rates("1,2.5,inf", r, SERVE_MAX_RATES), 3);
    CHECK(r[0] == 1 && r[1] == 2.5 && isinf(r[2]));
    CHECK_EQ_INT(serve_parse_rates("0", r, SERVE_MAX_RATES), PB_ERR);
    CHECK_EQ_INT(serve_parse_rates("2,fast", r, SERVE_MAX_RATES), PB_ERR);
    CHECK_EQ_INT(serve_parse_rates("2,", r, SERVE_MAX_RATES), PB_ERR);
}

/* A fake executor: fixed costs per kind, every shape recorded; optionally two
 * devices, the step on device 0 for its first half and on device 1 for the second. */
struct fake {
    double prefill_ms, decode_ms;
    int two_stages;
    int n;
    struct serve_step_shape shapes[64];
};

static int fake_cost(void *ctx, const struct serve_step_shape *shape, struct serve_step_cost *out)
{
    struct fake *f = ctx;
    if (f->n < 64) f->shapes[f->n] = *shape;
    f->n++;
    memset(out, 0, sizeof *out);
    double ms = shape->mode == MODE_PREFILL ? f->prefill_ms : f->decode_ms;
    out->latency_ms = ms;
    out->n_devices = f->two_stages ? 2 : 1;
    for (int d = 0; d < out->n_devices; d++) {
        double part = ms / out->n_devices;
        out->first_ms[d] = d * part;
        out->last_ms[d] = (d + 1) * part;
        out->compute_ms[d] = out->busy_ms[d] = part;
    }
    return PB_OK;
}

static int serve_fake(struct fake *f, const struct serve_policy *pol, const struct serve_request *req, int n,
                      struct serve_request_result *res, struct serve_totals *tot)
{
    struct serve_executor ex = {.ctx = f, .step_cost = fake_cost};
    return serve_engine_run(&ex, pol, req, n, res, tot);
}

/* Prefill 10 ms, decode 2 ms. A (t=0, 4+3 tokens) prefills [0,10]; B (t=5, 6+2)
 * prefills [10,20] while A waits; one decode of both [20,22] ends B; A's last
 * decode [22,24]; the engine idles until C (t=30, 3+1) prefills [30,40]. */
TEST(test_serve_metrics_on_a_stream_checked_by_hand)
{
    struct serve_request req[3] = {{0, 0, 4, 3}, {1, 5, 6, 2}, {2, 30, 3, 1}};
    struct serve_request_result res[3];
    struct serve_totals tot;
    struct fake f = {.prefill_ms = 10, .decode_ms = 2};
    struct serve_policy pol = {.max_batch = 8, .groups = 1, .kv_capacity_tokens = 1000};
    CHECK_EQ_INT(serve_fake(&f, &pol, req, 3, res, &tot), PB_OK);
    CHECK_NEAR(res[0].first_token_ms, 10, 1e-9);
    CHECK_NEAR(res[0].token_ms[1], 22, 1e-9);
    CHECK_NEAR(res[0].finish_ms, 24, 1e-9);
    CHECK_NEAR(res[1].first_token_ms, 20, 1e-9);
    CHECK_NEAR(res[1].finish_ms, 22, 1e-9);
    CHECK_NEAR(res[2].first_token_ms, 40, 1e-9);
    CHECK_NEAR(res[2].finish_ms, 40, 1e-9);
    /* TTFT = first token - arrival; TPOT = (finish - first) / (tokens - 1); E2E = finish - arrival */
    CHECK_NEAR(serve_ttft_ms(&res[0]), 10, 1e-9);
    CHECK_NEAR(serve_ttft_ms(&res[1]), 15, 1e-9);
    CHECK_NEAR(serve_ttft_ms(&res[2]), 10, 1e-9);
    CHECK_NEAR(serve_tpot_ms(&res[0]), 7, 1e-9);
    CHECK_NEAR(serve_tpot_ms(&res[1]), 2, 1e-9);
    CHECK(isnan(serve_tpot_ms(&res[2])));   /* one token: no time per output token */
    CHECK_NEAR(serve_e2e_ms(&res[0]), 24, 1e-9);
    struct serve_slo slo = {.ttft_ms = 12, .tpot_ms = 5};
    struct serve_point_metrics m;
    CHECK_EQ_INT(serve_metrics_compute(res, 3, &slo, 1, &m), PB_OK);
    /* TTFT {10,15,10}: sorted 10,10,15; p90 at rank 1.8 = 10 + 0.8 x 5 */
    CHECK_NEAR(m.ttft_p50_ms, 10, 1e-9);
    CHECK_NEAR(m.ttft_p90_ms, 14, 1e-9);
    CHECK_NEAR(m.ttft_p99_ms, 14.9, 1e-9);
    /* TPOT {7,2}: p50 4.5, p99 at rank 0.99 = 2 + 0.99 x 5 */
    CHECK_NEAR(m.tpot_p50_ms, 4.5, 1e-9);
    CHECK_NEAR(m.tpot_p99_ms, 6.95, 1e-9);
    /* ITL: A's gaps 12 and 2, B's 2: sorted 2,2,12 */
    CHECK_NEAR(m.itl_p50_ms, 2, 1e-9);
    CHECK_NEAR(m.itl_p99_ms, 11.8, 1e-9);
    CHECK_NEAR(m.e2e_p50_ms, 17, 1e-9);
    CHECK_NEAR(m.e2e_p99_ms, 23.86, 1e-9);
    /* span 0..40 ms: 3 requests, 6 tokens; within the SLO only C (A's TPOT, B's TTFT miss) */
    CHECK_NEAR(m.span_ms, 40, 1e-9);
    CHECK_NEAR(m.requests_per_s, 75, 1e-9);
    CHECK_NEAR(m.output_tokens_per_s, 150, 1e-9);
    CHECK_EQ_INT(m.met_slo, 1);
    CHECK_NEAR(m.goodput_requests_per_s, 25, 1e-9);
    CHECK_EQ_INT(serve_metrics_compute(res, 3, &slo, 0, &m), PB_OK);
    CHECK(isnan(m.goodput_requests_per_s));   /* without --slo: unknown, not 0 */
    /* The steps the engine asked for: prefill A, prefill B, decode both, decode A, prefill C */
    CHECK_EQ_INT(f.n, 5);
    CHECK(f.shapes[0].mode == MODE_PREFILL && f.shapes[0].batch == 1 && f.shapes[0].seq == 4);
    CHECK(f.shapes[1].mode == MODE_PREFILL && f.shapes[1].seq == 6);
    /* both attend to prompt + 1 token: (4+1 + 6+1) / 2 */
    CHECK(f.shapes[2].mode == MODE_DECODE && f.shapes[2].batch == 2 && f.shapes[2].context == 6);
    CHECK(f.shapes[3].mode == MODE_DECODE && f.shapes[3].batch == 1 && f.shapes[3].context == 6);
    CHECK(f.shapes[4].mode == MODE_PREFILL && f.shapes[4].seq == 3);
    CHECK_EQ_INT(tot.prefill_steps, 3);
    CHECK_EQ_INT(tot.decode_steps, 2);
    CHECK_NEAR(tot.busy_ms[0], 34, 1e-9);   /* 3 x 10 + 2 x 2; idle 24..30 */
    serve_results_free(res, 3);
}

TEST(test_serve_percentile_rule_interpolates_between_closest_ranks)
{
    double v[] = {4, 1, 3, 2};
    CHECK_NEAR(metrics_percentile(v, 4, 50), 2.5, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 4, 99), 3.97, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 4, 0), 1, 1e-12);
    CHECK_NEAR(metrics_percentile(v, 1, 99), 4, 1e-12);
}

TEST(test_serve_joins_at_a_step_boundary_and_batches_the_arrived)
{
    /* Four requests at t=0 prefill together; a fifth arriving mid-decode joins
     * only after its own prefill, at the next boundary. */
    struct serve_request req[5] = {{0, 0, 8, 4}, {1, 0, 16, 4}, {2, 0, 8, 4}, {3, 0, 8, 4}, {4, 11, 8, 2}};
    struct serve_request_result res[5];
    struct serve_totals tot;
    struct fake f = {.prefill_ms = 10, .decode_ms = 2};
    struct serve_policy pol = {.max_batch = 8, .groups = 1, .kv_capacity_tokens = 1000};
    CHECK_EQ_INT(serve_fake(&f, &pol, req, 5, res, &tot), PB_OK);
    CHECK(f.shapes[0].mode == MODE_PREFILL && f.shapes[0].batch == 4 && f.shapes[0].seq == 16);
    CHECK(f.shapes[1].mode == MODE_DECODE && f.shapes[1].batch == 4);   /* [10,12]: request 4 not yet */
    CHECK(f.shapes[2].mode == MODE_PREFILL && f.shapes[2].batch == 1);  /* [12,22] */
    CHECK(f.shapes[3].mode == MODE_DECODE && f.shapes[3].batch == 5);   /* [22,24] */
    CHECK_NEAR(res[4].first_token_ms, 22, 1e-9);
    CHECK_NEAR(res[4].finish_ms, 24, 1e-9);
    CHECK_NEAR(res[0].finish_ms, 26, 1e-9);   /* tokens at 10, 12, 24, 26 */
    CHECK_EQ_INT(tot.max_in_flight, 5);
    serve_results_free(res, 5);
}

TEST(test_serve_max_batch_and_kv_capacity_bound_the_batch)
{
    struct serve_request req[3] = {{0, 0, 4, 4}, {1, 0, 4, 4}, {2, 0, 4, 4}};
    struct serve_request_result res[3];
    struct serve_totals tot;
    struct fake f = {.prefill_ms = 10, .decode_ms = 2};
    struct serve_policy one = {.max_batch = 1, .groups = 1, .kv_capacity_tokens = 1000};
    CHECK_EQ_INT(serve_fake(&f, &one, req, 3, res, &tot), PB_OK);
    CHECK_EQ_INT(tot.max_in_flight, 1);
    CHECK_NEAR(res[0].finish_ms, 16, 1e-9);           /* 10 + 3 x 2 */
    CHECK_NEAR(res[1].first_token_ms, 26, 1e-9);      /* admitted only once 0 has left */
    serve_results_free(res, 3);
    /* 20 positions hold two requests of 4 + 4, not three */
    struct fake g = {.prefill_ms = 10, .decode_ms = 2};
    struct serve_policy kv = {.max_batch = 8, .groups = 1, .kv_capacity_tokens = 20};
    CHECK_EQ_INT(serve_fake(&g, &kv, req, 3, res, &tot), PB_OK);
    CHECK_EQ_INT(tot.max_in_flight, 2);
    CHECK(tot.kv_waits > 0);
    CHECK_EQ_INT(g.shapes[0].batch, 2);
    serve_results_free(res, 3);
}

TEST(test_serve_refuses_a_request_that_cannot_fit_alone)
{
    struct serve_request req[2] = {{0, 0, 4, 4}, {1, 0, 40, 4}};
    struct serve_request_result res[2];
    struct serve_totals tot;
    struct fake f = {.prefill_ms = 10, .decode_ms = 2};
    struct serve_policy pol = {.max_batch = 8, .groups = 1, .kv_capacity_tokens = 20, .max_context = 1024};
    CHECK_EQ_INT(serve_fake(&f, &pol, req, 2, res, &tot), PB_OK);
    CHECK(res[0].status == SERVE_DONE);
    CHECK(res[1].status == SERVE_REFUSED);
    CHECK(strstr(res[1].reason, "44 KV cache positions") != NULL);
    struct serve_point_metrics m;
    struct serve_slo slo = {INFINITY, INFINITY};
    CHECK_EQ_INT(serve_metrics_compute(res, 2, &slo, 1, &m), PB_OK);
    CHECK_EQ_INT(m.completed, 1);
    CHECK_EQ_INT(m.refused, 1);
    CHECK_EQ_INT(m.met_slo, 1);   /* a refused request never meets the SLO */
    serve_results_free(res, 2);
}

TEST(test_serve_pipeline_groups_overlap_on_their_stages)
{
    /* Two stages, a step 5 ms on each; two requests at t=0, one group each: the
     * second group starts on stage 0 when the first moves to stage 1. */
    struct serve_request req[2] = {{0, 0, 4, 1}, {1, 0, 4, 1}};
    struct serve_request_result res[2];
    struct serve_totals tot;
    struct fake f = {.prefill_ms = 10, .decode_ms = 2, .two_stages = 1};
    struct serve_policy pol = {.max_batch = 2, .groups = 2, .kv_capacity_tokens = 1000};
    CHECK_EQ_INT(serve_fake(&f, &pol, req, 2, res, &tot), PB_OK);
    CHECK_NEAR(res[0].finish_ms, 10, 1e-9);
    CHECK_NEAR(res[1].finish_ms, 15, 1e-9);   /* 20 if one batch at a time */
    serve_results_free(res, 2);
    struct serve_policy serial = {.max_batch = 1, .groups = 1, .kv_capacity_tokens = 1000};
    CHECK_EQ_INT(serve_fake(&f, &serial, req, 2, res, &tot), PB_OK);
    CHECK_NEAR(res[1].finish_ms, 20, 1e-9);
    serve_results_free(res, 2);
    /* Both stages on one GPU (--devices 0,0): the groups take turns on it */
    static const int one_gpu[2] = {0, 0};
    struct serve_executor shared = {.ctx = &f, .ordinal = one_gpu, .step_cost = fake_cost};
    CHECK_EQ_INT(serve_engine_run(&shared, &pol, req, 2, res, &tot), PB_OK);
    CHECK_NEAR(res[1].finish_ms, 20, 1e-9);
    serve_results_free(res, 2);
}

TEST(test_serve_buckets_round_up_by_at_most_a_sixteenth)
{
    CHECK_EQ_INT(serve_bucket(1), 1);
    CHECK_EQ_INT(serve_bucket(32), 32);
    CHECK_EQ_INT(serve_bucket(33), 34);
    CHECK_EQ_INT(serve_bucket(100), 100);
    CHECK_EQ_INT(serve_bucket(101), 104);
    CHECK_EQ_INT(serve_bucket(1000), 1024);
    int ok = 1;
    for (int t = 1; t < 200000; t++) ok &= serve_bucket(t) >= t && serve_bucket(t) <= t + t / 16 + 1;
    CHECK(ok);
}

static int load_7b(struct model_spec *m)
{
    return model_spec_load("models/llama-2-7b.json", m);
}

TEST(test_serve_kv_bytes_per_token_follow_the_placement)
{
    struct model_spec m;
    CHECK_EQ_INT(load_7b(&m), PB_OK);
    struct machine mc = {.gpus = 2, .gpu_memory = {80ull << 30, 80ull << 30}, .cpu_memory = 0};
    struct workload w = {.batch = 8, .seq = 512, .context = 512, .dtype = DTYPE_BF16};
    static struct placement single, naive, tp;
    CHECK_EQ_INT(strategy_find("single")->place(&m, &w, &mc, &single), PB_OK);
    CHECK_EQ_INT(strategy_find("naive")->place(&m, &w, &mc, &naive), PB_OK);
    CHECK_EQ_INT(strategy_find("tp")->place(&m, &w, &mc, &tp), PB_OK);
    /* 2 x 32 layers x 32 kv heads x 128 x 2 bytes */
    CHECK_EQ_INT(memory_kv_bytes_per_position(&m, &single, DTYPE_BF16, 0), 524288);
    CHECK_EQ_INT(memory_kv_bytes_per_position(&m, &naive, DTYPE_BF16, 0), 262144);   /* 16 layers each */
    CHECK_EQ_INT(memory_kv_bytes_per_position(&m, &naive, DTYPE_BF16, 1), 262144);
    CHECK_EQ_INT(memory_kv_bytes_per_position(&m, &tp, DTYPE_BF16, 1), 262144);      /* 16 kv heads a rank */
    int64_t cap_single, cap_tp;
    CHECK_EQ_INT(serve_kv_capacity(&m, &single, &mc, DTYPE_BF16, &cap_single), PB_OK);
    CHECK_EQ_INT(serve_kv_capacity(&m, &tp, &mc, DTYPE_BF16, &cap_tp), PB_OK);
    uint64_t params[PB_MAX_DEVICES], cpu;
    placement_device_params(&single, params, &cpu);
    CHECK_EQ_INT(cap_single, (int64_t)(((80ull << 30) - params[0]) / 524288));
    CHECK(cap_tp > 2 * cap_single);   /* half the weights and half the cache per GPU */
    mc.gpu_memory[0] = params[0];
    CHECK_EQ_INT(serve_kv_capacity(&m, &single, &mc, DTYPE_BF16, &cap_single), PB_ERR);
}

/* Llama-2-7B on two simulated H200s, placed for batch 8 x seq 512. */
static int h200_pair_for_7b(struct model_spec *m, struct device_profile *prof, struct machine *mc, struct workload *w)
{
    PB_TRY(load_7b(m));
    PB_TRY(device_profile_load("h200", prof));
    *mc = (struct machine){.gpus = 2, .gpu_memory = {prof->memory_bytes, prof->memory_bytes}};
    *w = (struct workload){.batch = 8, .seq = 512, .context = 512, .dtype = DTYPE_BF16};
    return PB_OK;
}

/* The bucketing error stated in docs/METRICS.md: a bucketed step against the exact
 * shape, over decode contexts and prefill lengths, single and tp on an H200. */
TEST(test_serve_bucketed_step_cost_is_within_the_stated_error)
{
    struct model_spec m;
    static struct device_profile prof;
    struct machine mc;
    struct workload w;
    CHECK_EQ_INT(h200_pair_for_7b(&m, &prof, &mc, &w), PB_OK);
    const char *names[] = {"single", "tp"};
    double worst_decode = 0, worst_prefill = 0;
    int never_faster = 1;
    for (int s = 0; s < 2; s++) {
        static struct placement p;
        const struct strategy *st = strategy_find(names[s]);
        CHECK_EQ_INT(st->place(&m, &w, &mc, &p), PB_OK);
        struct serve_cost_model c;
        serve_cost_model_init(&c, &prof, &m, st, &p, DTYPE_BF16, NULL);
        struct serve_step_cost exact, bucketed;
        for (int batch = 1; batch <= 32; batch *= 4)
            for (int ctx = 17; ctx <= 4096; ctx += 37) {
                struct serve_step_shape d = {.mode = MODE_DECODE, .batch = batch, .seq = 1, .context = ctx};
                CHECK_EQ_INT(serve_cost_model_step_exact(&c, &d, &exact), PB_OK);
                CHECK_EQ_INT(serve_cost_model_step(&c, &d, &bucketed), PB_OK);
                worst_decode = fmax(worst_decode, fabs(bucketed.latency_ms / exact.latency_ms - 1));
                never_faster &= bucketed.latency_ms >= exact.latency_ms - 1e-9;
            }
        for (int seq = 17; seq <= 2048; seq += 61) {
            struct serve_step_shape f = {.mode = MODE_PREFILL, .batch = 1, .seq = seq, .context = seq};
            CHECK_EQ_INT(serve_cost_model_step_exact(&c, &f, &exact), PB_OK);
            CHECK_EQ_INT(serve_cost_model_step(&c, &f, &bucketed), PB_OK);
            worst_prefill = fmax(worst_prefill, fabs(bucketed.latency_ms / exact.latency_ms - 1));
            never_faster &= bucketed.latency_ms >= exact.latency_ms - 1e-9;
        }
        CHECK(c.evaluations < c.lookups * 2);   /* the cache answers repeats */
        serve_cost_model_free(&c);
    }
    fprintf(stderr, "  bucketing error: decode %.2f%%, prefill %.2f%%\n", 100 * worst_decode, 100 * worst_prefill);
    CHECK(worst_decode <= 0.03);
    CHECK(worst_prefill <= 0.05);
    CHECK(never_faster);
}

/* Serving prices a step through the cost-model executor (executor.h): the same
 * latency and per-GPU busy time as replaying the strategy's schedule of that shape
 * directly, with --devices 0,0 sharing one simulated GPU. */
TEST(test_serve_step_cost_through_the_executor_is_the_schedule_replay)
{
    struct model_spec m;
    static struct device_profile prof;
    struct machine mc;
    struct workload w;
    CHECK_EQ_INT(h200_pair_for_7b(&m, &prof, &mc, &w), PB_OK);
    const char *names[] = {"naive", "tp"};
    int one_gpu[2] = {0, 0};
    for (int s = 0; s < 2; s++)
        for (int shared_gpu = 0; shared_gpu < 2; shared_gpu++) {
            static struct placement p;
            const struct strategy *st = strategy_find(names[s]);
            CHECK_EQ_INT(st->place(&m, &w, &mc, &p), PB_OK);
            struct serve_cost_model c;
            serve_cost_model_init(&c, &prof, &m, st, &p, DTYPE_BF16, shared_gpu ? one_gpu : NULL);
            struct serve_step_shape shapes[2] = {{.mode = MODE_DECODE, .batch = 4, .seq = 1, .context = 700},
                                                 {.mode = MODE_PREFILL, .batch = 2, .seq = 300, .context = 300}};
            for (int k = 0; k < 2; k++) {
                struct serve_step_cost cost;
                CHECK_EQ_INT(serve_cost_model_step_exact(&c, &shapes[k], &cost), PB_OK);
                struct workload sw = {.batch = shapes[k].batch, .seq = shapes[k].seq, .context = shapes[k].context,
                                      .microbatches = 1, .mode = shapes[k].mode, .dtype = DTYPE_BF16};
                struct schedule sch;
                struct trace t;
                double ms = 0;
                CHECK_EQ_INT(schedule_plan(st, &m, &p, &sw, &sch), PB_OK);
                CHECK_EQ_INT(simulate_schedule_on(&prof, &m, &sch, shared_gpu ? one_gpu : NULL, 1, &t, &ms), PB_OK);
                struct iteration_metrics im;
                CHECK_EQ_INT(metrics_iteration(&t, -1, &im), PB_OK);
                CHECK(ms > 0 && cost.latency_ms == ms);
                CHECK_EQ_INT(cost.n_devices, 2);
                for (int d = 0; d < 2; d++) {
                    CHECK(cost.compute_ms[d] == im.gpu[d].compute_ms);
                    CHECK(cost.busy_ms[d] == im.gpu[d].window_ms - im.gpu[d].idle_ms);
                }
                trace_free(&t);
                schedule_free(&sch);
            }
            CHECK_EQ_INT(c.evaluations, 2);
            serve_cost_model_free(&c);
        }
}

static int file_in(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f) fclose(f);
    return f != NULL;
}

TEST(test_serve_simulate_writes_serve_requests_picture_and_explain)
{
    char dir[256], args[1024], out[65536], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args,
             "--model models/llama-tiny.json --serve --simulate --gpus 2 --requests 12 --rate 50,inf "
             "--strategy single,naive,auto,optimal,pipeline,tp "
             "--prompt-len uniform:8-64 --output-len uniform:1-16 --max-batch 4 --slo ttft=50ms,tpot=5ms "
             "--explain --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    CHECK(strstr(out, "serves best") != NULL);
    CHECK(file_in(dir, "serve.json", path, sizeof path));
    CHECK(file_in(dir, "explain.txt", path, sizeof path));
    struct csv_table t;
    CHECK(file_in(dir, "serve.csv", path, sizeof path));
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK_EQ_INT(t.n_rows, 6 * 2);   /* every strategy at both rates */
    const char *wanted[] = {"ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p50_ms",
                            "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "request_rate", "requests_per_s",
                            "output_tokens_per_s", "goodput_requests_per_s", "busy_ms_per_gpu", "idle_ms_per_gpu"};
    for (size_t c = 0; c < sizeof wanted / sizeof wanted[0]; c++) CHECK(csv_column(&t, wanted[c]) >= 0);
    for (int r = 0; r < t.n_rows; r++) {
        CHECK(!strcmp(csv_get(&t, r, "status"), "ok"));
        CHECK_NEAR(csv_get_num(&t, r, "completed"), 12, 0);
        CHECK(csv_get_num(&t, r, "ttft_p99_ms") >= csv_get_num(&t, r, "ttft_p50_ms"));
        CHECK(csv_get_num(&t, r, "goodput_requests_per_s") <= csv_get_num(&t, r, "requests_per_s") + 1e-9);
    }
    CHECK(!strcmp(csv_get(&t, 1, "request_rate"), "inf"));
    CHECK(!strcmp(csv_get(&t, 10, "strategy"), "tp"));
    csv_table_free(&t);
    /* requests.csv: one row per request per point, the same stream for every strategy */
    CHECK(file_in(dir, "requests.csv", path, sizeof path));
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK_EQ_INT(t.n_rows, 6 * 2 * 12);
    int same = 1;
    for (int r = 24; r < t.n_rows; r++) {
        int first = r % 24;   /* the single row of the same rate and id */
        same &= !strcmp(csv_get(&t, r, "id"), csv_get(&t, first, "id"));
        same &= !strcmp(csv_get(&t, r, "arrival_ms"), csv_get(&t, first, "arrival_ms"));
        same &= !strcmp(csv_get(&t, r, "prompt_tokens"), csv_get(&t, first, "prompt_tokens"));
        same &= !strcmp(csv_get(&t, r, "output_tokens"), csv_get(&t, first, "output_tokens"));
    }
    CHECK(same);
    CHECK(csv_get_num(&t, 0, "first_token_ms") > csv_get_num(&t, 0, "arrival_ms"));
    csv_table_free(&t);
    CHECK(file_in(dir, "serve.svg", path, sizeof path));
    char *svg = text_file_read(path);
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "TPOT p99") && strstr(svg, "</svg>"));
    free(svg);
}

TEST(test_serve_records_a_refusal_for_a_request_longer_than_the_model)
{
    char dir[256], args[1024], out[65536], path[512];
    make_temp_dir(dir, sizeof dir);
    /* llama-tiny holds 1024 positions: 1000 + 100 cannot be served */
    snprintf(args, sizeof args, "--model models/llama-tiny.json --serve --simulate --strategy single --requests 4 "
             "--rate inf --prompt-len 1000 --output-len 100 --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    struct csv_table t;
    CHECK(file_in(dir, "requests.csv", path, sizeof path));
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK_EQ_INT(t.n_rows, 4);
    CHECK(!strcmp(csv_get(&t, 0, "status"), "refused"));
    CHECK(strstr(csv_get(&t, 0, "reason"), "max_position_embeddings") != NULL);
    csv_table_free(&t);
}

TEST(test_serve_bad_input_exits_2_naming_the_flag)
{
    char dir[256], path[512], args[1024], out[8192];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.csv", dir);
    write_file(path, "output_tokens\n12\nmany\n");
    const char *model = "--model models/llama-tiny.json";
    struct { const char *flags, *says; } cases[] = {
        {"--serve --simulate --prompt-len uniform:9-3", "--prompt-len"},
        {"--serve --simulate --output-len ten", "--output-len"},
        {"--serve --simulate --slo ttft=3h", "unknown unit"},
        {"--serve --simulate --slo speed=3", "unknown limit"},
        {"--serve --simulate --rate 0", "--rate"},
        {"--rate 5 --simulate", "--serve"},
        {"--serve --simulate --decode 4", "--output-len"},
        {"--serve --plan", "--plan"},
        {"--serve --predict", "--serve --simulate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "%s %s --out %s", model, cases[i].flags, dir);
        CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
        CHECK(strstr(out, cases[i].says) != NULL);
    }
    snprintf(args, sizeof args, "%s --serve --simulate --output-len file:%s --out %s", model, path, dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "line 3") && strstr(out, "many"));
    write_file(path, "output_tokens\n12\n7\n");
    snprintf(args, sizeof args, "%s --serve --simulate --requests 5 --output-len file:%s --out %s", model, path, dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 2);
    CHECK(strstr(out, "has 2 rows but --requests asks for 5") != NULL);
}

/* On two GPUs the pipeline's two groups overlap their stages, so at saturation it
 * carries more requests/s than the hand split, which runs one batch at a time. */
TEST(test_serve_pipeline_groups_outserve_the_hand_split_at_saturation)
{
    char dir[256], args[1024], out[65536], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model models/llama-2-7b.json --serve --simulate --gpus 2 --strategy naive,pipeline "
             "--requests 64 --rate inf --prompt-len 256 --output-len 64 --max-batch 32 --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    struct csv_table t;
    CHECK(file_in(dir, "serve.csv", path, sizeof path));
    CHECK_EQ_INT(csv_read_file(path, &t), PB_OK);
    CHECK_EQ_INT(t.n_rows, 2);
    CHECK_NEAR(csv_get_num(&t, 0, "groups"), 1, 0);
    CHECK_NEAR(csv_get_num(&t, 1, "groups"), 2, 0);
    CHECK(csv_get_num(&t, 1, "requests_per_s") > 1.1 * csv_get_num(&t, 0, "requests_per_s"));
    /* the same work in less time: both GPUs busier */
    CHECK(csv_list_num(csv_get(&t, 1, "utilisation_per_gpu"), 0) > csv_list_num(csv_get(&t, 0, "utilisation_per_gpu"), 0));
    csv_table_free(&t);
}
