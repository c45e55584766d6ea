/* --plan and --simulate under mpirun: rank 0 writes the one results folder, the
 * other ranks write nothing, and every rank ends with rank 0's status. */
#include <stdlib.h>
#include <sys/stat.h>
#include "../../harness/check.h"
#include "../../harness/cli.h"
#include "../../harness/mpi/mpi_jobs.h"
#include "../test.h"

static struct mpi_world world(void)
{
    struct mpi_world w;
    mpi_world_init(NULL, NULL, &w);
    return w;
}

/* One temporary folder for the job, named by rank 0; each rank is given its own
 * --out beneath it, so that anything a rank other than 0 wrote would show. */
static void job_dirs(const struct mpi_world *w, char *base, size_t len, char *out, size_t out_len)
{
    if (w->rank == 0) make_temp_dir(base, len);
    mpi_world_bcast(w, base, len, 0, "testing");
    snprintf(out, out_len, "%s/rank%d", base, w->rank);
}

static int exists(const char *dir, const char *file)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return stat(path, &st) == 0;
}

static int parse(struct options *o, const char *out, const char *job)
{
    char *argv[] = {"bench-mpi", "--model", "models/llama-tiny.json", "--strategy", "naive,pipeline,tp",
                    "--batch", "2", "--seq", "16", (char *)job, "--out", (char *)out, NULL, NULL, NULL};
    int argc = 12;
    if (!strcmp(job, "--simulate")) {
        argv[argc++] = "--gpu-profile";
        argv[argc++] = "h100";
    }
    return cli_parse(argc, argv, o);
}

static int load(struct model_spec *m) { return model_spec_load("models/llama-tiny.json", m); }

TEST(test_plan_under_mpi_is_written_by_rank0_only)
{
    struct mpi_world w = world();
    char base[256], out[1024];
    job_dirs(&w, base, sizeof base, out, sizeof out);
    static struct options o;
    static struct model_spec m;
    CHECK_EQ_INT(parse(&o, out, "--plan"), CLI_OK);
    CHECK_EQ_INT(load(&m), PB_OK);
    CHECK_EQ_INT(mpi_plan_job(&w, &o, &m), PB_OK);
    if (w.rank == 0) {
        CHECK(exists(out, "plan.json"));
        CHECK(exists(out, "plan.csv"));
        CHECK_EQ_INT(o.gpus, w.size);   /* the ranks are the GPUs */
    } else {
        CHECK(!exists(out, "."));
    }
}

TEST(test_simulate_under_mpi_is_written_by_rank0_only)
{
    struct mpi_world w = world();
    char base[256], out[1024];
    job_dirs(&w, base, sizeof base, out, sizeof out);
    static struct options o;
    static struct model_spec m;
    CHECK_EQ_INT(parse(&o, out, "--simulate"), CLI_OK);
    CHECK_EQ_INT(load(&m), PB_OK);
    CHECK_EQ_INT(mpi_simulate_job(&w, &o, &m), PB_OK);
    if (w.rank == 0) {
        CHECK(exists(out, "summary.csv"));
        CHECK(exists(out, "trace.json"));
    } else {
        CHECK(!exists(out, "."));
    }
}

TEST(test_a_plan_that_fails_on_rank0_fails_on_every_rank)
{
    struct mpi_world w = world();
    char base[256], out[1024];
    job_dirs(&w, base, sizeof base, out, sizeof out);
    static struct options o;
    static struct model_spec m;
    CHECK_EQ_INT(parse(&o, out, "--plan"), CLI_OK);
    CHECK_EQ_INT(load(&m), PB_OK);
    /* A results folder that cannot be created: a file stands in its way. */
    char blocker[600];
    snprintf(blocker, sizeof blocker, "%s/file", base);
    if (w.rank == 0) {
        FILE *f = fopen(blocker, "w");
        if (f) fclose(f);
    }
    snprintf(out, sizeof out, "%s/sub", blocker);
    o.out_dir = out;
    CHECK_EQ_INT(mpi_plan_job(&w, &o, &m), PB_ERR);
    CHECK(strstr(pb_last_error(), "rank 0") != NULL);
}
