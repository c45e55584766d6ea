/* The --search job on the cost model, then optionally on the GPUs. */
#include "search_run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../../base/atomic_file.h"
#include "../run/results_dir.h"
#include "../run/simulate_run.h"
#include "search_report.h"
#include "search_rank.h"

#define DEFAULT_PROFILE "h200"

int search_configurations(const struct search_problem *pb, const char *const *names, int n_names,
                          enum search_objective objective, struct search_row **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    int count = search_enumerate(pb->m, pb->gpus, pb->batch, names, n_names, NULL, 0);
    if (count < 0) return PB_ERR;
    if (count == 0) return pb_fail("--search: no configuration to price (--strategy names none)");
    struct search_config *configs = malloc((size_t)count * sizeof *configs);
    struct search_row *r = calloc((size_t)count, sizeof *r);
    if (!configs || !r) {
        free(configs);
        free(r);
        return pb_fail("--search: out of host memory for %d configurations", count);
    }
    search_enumerate(pb->m, pb->gpus, pb->batch, names, n_names, configs, count);
    /* The strategies print each refusal as they make it (pb_fail); say what those lines are. */
    fprintf(stderr, "bench: --search: pricing %d configurations; the refusals printed below are rows of "
                    "search.csv, not failures of the run\n", count);
    for (int i = 0; i < count; i++) search_price(pb, &configs[i], i, &r[i]);
    free(configs);
    search_rank(r, count, objective);
    *rows = r;
    *n = count;
    return PB_OK;
}

int search_measure_top(const struct options *o, const struct model_spec *m, struct search_row *rows, int n,
                       int k, enum search_objective objective, search_measure_fn measure, const char *dir,
                       int *measured, int *asked)
{
    int fits = 0;
    while (fits < n && rows[fits].fits) fits++;
    if (k > fits) k = fits;
    *asked = k;
    for (int i = 0; i < k; i++) {
        char name[64], sub[4200];
        snprintf(name, sizeof name, "measure-%02d", rows[i].rank);
        PB_TRY(path_join(sub, sizeof sub, dir, name));
        PB_TRY(make_dirs(sub));
        double ms = NAN;
        if (measure(o, m, &rows[i], sub, &ms) == PB_OK && ms > 0) {
            rows[i].measured_ms = ms;
            rows[i].measure_reason[0] = 0;
        } else {
            rows[i].measured_ms = NAN;
            snprintf(rows[i].measure_reason, sizeof rows[i].measure_reason, "%s",
                     ms > 0 || isnan(ms) ? pb_last_error() : "it measured no time");
        }
    }
    *measured = search_rank_measured(rows, k, objective);
    return PB_OK;
}

/* --objective goodput: the one stream every configuration serves, made from the
 * seed as bench --serve makes it; the placements are sized for --max-batch
 * sequences of the mean prompt, as serve places its strategies. */
static int serving_problem(const struct options *o, struct search_problem *pb, struct serve_request **stream)
{
    const struct serve_options *so = &o->serve;
    if (!(*stream = malloc((size_t)so->requests * sizeof **stream)))
        return pb_fail("out of host memory for %d requests", so->requests);
    serve_stream_make(so, so->rates[0], o->seed, *stream, so->requests);
    double sum = 0;
    for (int i = 0; i < so->requests; i++) sum += (*stream)[i].prompt_tokens;
    pb->serve = so;
    pb->requests = *stream;
    pb->batch = so->max_batch;
    pb->seq = (int)ceil(sum / so->requests);
    pb->decode_tokens = 0;
    return PB_OK;
}

static int problem_of(const struct options *o, const struct model_spec *m, const struct device_profile *prof,
                      struct search_problem *pb, struct serve_request **stream)
{
    memset(pb, 0, sizeof *pb);
    *stream = NULL;
    pb->prof = prof;
    pb->m = m;
    pb->gpus = o->gpus;
    pb->batch = o->batches[0];
    pb->seq = o->seqs[0];
    pb->decode_tokens = o->decode_tokens;
    pb->dtype = o->dtype;
    PB_TRY(simulated_machine(o, prof, &pb->mc));
    return o->search.objective == OBJECTIVE_GOODPUT ? serving_problem(o, pb, stream) : PB_OK;
}

static int report(const struct options *o, const struct model_spec *m, const struct search_problem *pb,
                  struct search_row *rows, int n, search_measure_fn measure)
{
    char dir[4096], path[4200];
    PB_TRY(results_dir_create(o->out_dir, m->name, "-search", dir, sizeof dir));
    search_print_top(stdout, pb, rows, n, o->search.objective);
    PB_TRY(search_write_csv(dir, rows, n));
    PB_TRY(path_join(path, sizeof path, dir, "profile.json"));
    PB_TRY(device_profile_write(pb->prof, path));
    printf("wrote %s/search.csv, profile.json (predicted)\n", dir);
    if (n == 0 || !rows[0].fits)
        return pb_fail("--search: none of the %d configurations fits (reasons in %s/search.csv)", n, dir);
    if (!o->search.measure_top) return PB_OK;
    if (!measure) return pb_fail("--measure-top: this build cannot measure");
    int measured = 0, asked = 0;
    PB_TRY(search_measure_top(o, m, rows, n, o->search.measure_top, o->search.objective, measure, dir, &measured,
                              &asked));
    search_print_measured(stdout, rows, asked);
    PB_TRY(search_write_measured_csv(dir, rows, asked));
    printf("wrote %s/search_measured.csv and a measure-NN folder per configuration\n", dir);
    if (measured < asked)
        return pb_fail("--measure-top: %d of %d configurations could not be measured (reasons above and in "
                       "search_measured.csv)", asked - measured, asked);
    return PB_OK;
}

int search_run(const struct options *o, const struct model_spec *m, search_measure_fn measure)
{
    static struct device_profile prof;   /* large; read-only once loaded */
    const char *name = o->gpu_profile ? o->gpu_profile : DEFAULT_PROFILE;
    if (!o->gpu_profile) fprintf(stderr, "bench: --search without --gpu-profile: using %s\n", DEFAULT_PROFILE);
    PB_TRY(device_profile_load(name, &prof));
    struct search_problem pb;
    struct serve_request *stream;
    struct search_row *rows = NULL;
    int n = 0;
    int rc = problem_of(o, m, &prof, &pb, &stream);
    if (rc == PB_OK) rc = search_configurations(&pb, o->strategies, o->n_strategies, o->search.objective, &rows, &n);
    if (rc == PB_OK) rc = report(o, m, &pb, rows, n, measure);
    free(rows);
    free(stream);
    return rc;
}
