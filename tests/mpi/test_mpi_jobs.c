/* --plan and --simulate under mpirun: rank 0 writes the one results folder, the
 * other ranks write nothing, and every rank ends with rank 0's status. */
#include <stdlib.h>
#include <sys/stat.h>
#include "../../base/check.h"
#include "../../harness/cli/cli.h"
#include "../../harness/exec/mpi/mpi_jobs.h"
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

/* Every test's start: the world, its folders, the parsed job and the model. */
struct job {
    struct mpi_world w;
    char base[256], out[1024];
    struct options o;
    struct model_spec m;
};

static int job_start(struct job *j, const char *mode)
{
    j->w = world();
    job_dirs(&j->w, j->base, sizeof j->base, j->out, sizeof j->out);
    if (parse(&j->o, j->out, mode) != CLI_OK) return PB_ERR;
    return model_spec_load("models/llama-tiny.json", &j->m);
}

/* Rank 0 wrote `file` (when non-NULL); every other rank wrote nothing. */
static void check_only_rank0_wrote(int *failures_, const struct job *j, const char *a, const char *b)
{
    if (j->w.rank == 0) {
        CHECK(exists(j->out, a));
        CHECK(exists(j->out, b));
    } else {
        CHECK(!exists(j->out, "."));
    }
}

TEST(test_plan_under_mpi_is_written_by_rank0_only)
{
    static struct job j;
    CHECK_EQ_INT(job_start(&j, "--plan"), PB_OK);
    CHECK_EQ_INT(mpi_plan_job(&j.w, &j.o, &j.m), PB_OK);
    check_only_rank0_wrote(failures_, &j, "plan.json", "plan.csv");
    if (j.w.rank == 0) CHECK_EQ_INT(j.o.gpus, j.w.size);   /* the ranks are the GPUs */
}

TEST(test_simulate_under_mpi_is_written_by_rank0_only)
{
    static struct job j;
    CHECK_EQ_INT(job_start(&j, "--simulate"), PB_OK);
    CHECK_EQ_INT(mpi_simulate_job(&j.w, &j.o, &j.m), PB_OK);
    check_only_rank0_wrote(failures_, &j, "summary.csv", "trace.json");
}

TEST(test_a_plan_that_fails_on_rank0_fails_on_every_rank)
{
    static struct job j;
    CHECK_EQ_INT(job_start(&j, "--plan"), PB_OK);
    /* A results folder that cannot be created: a file stands in its way. */
    char blocker[600];
    snprintf(blocker, sizeof blocker, "%s/file", j.base);
    if (j.w.rank == 0) {
        FILE *f = fopen(blocker, "w");
        if (f) fclose(f);
    }
    snprintf(j.out, sizeof j.out, "%s/sub", blocker);
    j.o.out_dir = j.out;
    CHECK_EQ_INT(mpi_plan_job(&j.w, &j.o, &j.m), PB_ERR);
    CHECK(strstr(pb_last_error(), "rank 0") != NULL);
}
