/* Setting up and building on a fresh machine: README's first command and CI
 * install through one script and run README's test command; the Makefile finds
 * NCCL where users have it and says how to get it when it cannot; bench says
 * which commit it was built from. Runs make and the scripts as a user would. */
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "../base/text_file.h"
#include "test.h"

static char out[65536];

/* Run a shell command; its exit status, and stdout+stderr in buf. The Makefile is
 * asked outside the make that runs these tests (no jobserver to inherit). */
static int run_shell(const char *cmd, char *buf, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL sh -c '%s'", cmd);
    return run_capture(full, buf, len);
}

/* README's test command: the `make ...` line of its first code block, comment cut. */
static int readme_test_command(char *cmd, size_t len)
{
    char *readme = text_file_read("README.md");
    if (!readme) return -1;
    const char *at = strstr(readme, "```sh\nscripts/run.sh");
    at = at ? strstr(at, "\nmake ") : NULL;
    int rc = -1;
    if (at) {
        at++;
        size_t n = strcspn(at, "#\n");
        while (n && at[n - 1] == ' ') n--;
        snprintf(cmd, len, "%.*s", (int)n, at);
        rc = 0;
    }
    free(readme);
    return rc;
}

/* The last line of a script that is neither blank nor a comment. */
static void last_command(const char *text, char *line, size_t len)
{
    line[0] = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        const char *s = p;
        while (*s == ' ' && s < p + n) s++;
        if (s < p + n && *s != '#') snprintf(line, len, "%.*s", (int)(p + n - s), s);
        p += n + (p[n] == '\n');
    }
}

TEST(test_run_sh_and_ci_install_through_the_one_installer)
{
    char *run = text_file_read("scripts/run.sh"), *ci = text_file_read(".ci/run");
    CHECK(run && ci);
    if (!run || !ci) return;
    CHECK(strstr(run, "\nscripts/install_deps.sh") != NULL);
    CHECK(strstr(ci, "\nscripts/install_deps.sh") != NULL);
    /* no second package list to drift from the installer's */
    CHECK(strstr(run, "apt-get") == NULL && strstr(run, "dpkg") == NULL);
    CHECK(strstr(ci, "apt-get") == NULL && strstr(ci, "dpkg") == NULL);
    free(run);
    free(ci);
}

TEST(test_ci_ends_with_readmes_test_command)
{
    char cmd[256], last[256];
    CHECK_EQ_INT(readme_test_command(cmd, sizeof cmd), 0);
    CHECK(!strcmp(cmd, "make -j2 MPI=1 test"));
    char *ci = text_file_read(".ci/run");
    CHECK(ci != NULL);
    if (!ci) return;
    last_command(ci, last, sizeof last);
    CHECK(!strcmp(last, cmd));   /* so CI's last printed line is that command's "N passed, N failed" */
    free(ci);
}

TEST(test_installer_lists_what_readmes_test_command_needs)
{
    CHECK_EQ_INT(run_shell("scripts/install_deps.sh --list", out, sizeof out), 0);
    /* mpi.h (MPI=1), cJSON, gnuplot, the compiler: README's test command fails without each */
    const char *needed[] = {"\nlibopenmpi-dev\n", "\nopenmpi-bin\n", "\nlibcjson-dev\n", "\ngnuplot-nox\n",
                            "\ngcc\n", "\nmake\n", "\npkg-config\n", "\nclang\n"};   /* clang: CI's make fuzz-run */
    char list[65600];
    snprintf(list, sizeof list, "\n%s", out);
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) CHECK(strstr(list, needed[i]) != NULL);
    CHECK_EQ_INT(run_shell("scripts/install_deps.sh --frobnicate", out, sizeof out), 2);
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
}

/* dir/include/nccl.h and dir/<libdir>/<lib>: an NCCL install as the Makefile looks for it. */
static void fake_nccl(const char *dir, const char *libdir, const char *lib)
{
    char cmd[1024], path[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/include %s/%s", dir, dir, libdir);
    if (system(cmd) != 0) return;
    snprintf(path, sizeof path, "%s/include/nccl.h", dir);
    touch(path);
    snprintf(path, sizeof path, "%s/%s/%s", dir, libdir, lib);
    touch(path);
}

TEST(test_makefile_finds_nccl_in_nccl_home_and_the_pip_wheel)
{
    char dir[256], home[400], site[400], cmd[1200];
    make_temp_dir(dir, sizeof dir);
    snprintf(home, sizeof home, "%s/nccl-2.28", dir);
    fake_nccl(home, "lib", "libnccl.so");
    snprintf(cmd, sizeof cmd, "make -s nccl-where NCCL_HOME=%s", home);
    CHECK_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "NCCL_LIBFILE=") && strstr(out, "nccl-2.28/lib/libnccl.so"));

    /* the nvidia-nccl-cu13 wheel: site-packages/nvidia/nccl, libnccl.so.2 only */
    snprintf(site, sizeof site, "%s/site-packages/nvidia/nccl", dir);
    fake_nccl(site, "lib", "libnccl.so.2");
    struct stat st;
    if (stat("/usr/include/nccl.h", &st) == 0) {
        fprintf(stderr, "  (libnccl-dev is installed and comes before the wheel: wheel case skipped)\n");
        return;
    }
    snprintf(cmd, sizeof cmd, "PYTHONPATH=%s/site-packages make -s nccl-where CUDA=%s/no-cuda", dir, dir);
    CHECK_EQ_INT(run_shell(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "site-packages/nvidia/nccl/lib/libnccl.so.2") != NULL);
}

TEST(test_makefile_without_nccl_says_how_to_get_it)
{
    char dir[256], cmd[700];
    make_temp_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "make -n build/bench NCCL_HOME=%s/none", dir);
    CHECK(run_shell(cmd, out, sizeof out) != 0);
    CHECK(strstr(out, "NCCL not found") && strstr(out, "libnccl-dev") && strstr(out, "nvidia-nccl-cu13") &&
          strstr(out, "NCCL_HOME"));
}

TEST(test_version_names_the_commit_it_was_built_from)
{
    CHECK_EQ_INT(run_bench("--version", out, sizeof out), 0);
    CHECK(!strncmp(out, "placebench ", 11) && strstr(out, "git commit "));
    char head[64];
    if (run_shell("git rev-parse --short=12 HEAD", head, sizeof head) != 0) {
        fprintf(stderr, "  (not a git checkout: commit not compared)\n");
        return;
    }
    head[strcspn(head, "\n")] = 0;
    char want[96];
    snprintf(want, sizeof want, "git commit %s", head);
    CHECK(strstr(out, want) != NULL);
    if (!strstr(out, want)) fprintf(stderr, "  (%s: built before HEAD %s? make test rebuilds it)\n", out, head);
}

TEST(test_help_lists_bench_plot_and_plot_help_exits_0)
{
    CHECK_EQ_INT(run_bench("--help", out, sizeof out), 0);
    CHECK(strstr(out, "bench plot RESULTS_DIR") && strstr(out, "--version"));
    CHECK_EQ_INT(run_bench("plot --help", out, sizeof out), 0);
    CHECK(strstr(out, "usage: bench plot RESULTS_DIR") != NULL);
    CHECK_EQ_INT(run_bench("plot-data -h", out, sizeof out), 0);
    CHECK_EQ_INT(run_bench("plot", out, sizeof out), 2);
}

TEST(test_wrote_line_names_report_html)
{
    char dir[256], args[400];
    make_temp_dir(dir, sizeof dir);
    snprintf(args, sizeof args, "--model llama-tiny --strategy single --simulate --gpus 1 --batch 1 --seq 16 "
             "--explain --out %s", dir);
    CHECK_EQ_INT(run_bench(args, out, sizeof out), 0);
    const char *wrote = strstr(out, "wrote ");
    CHECK(wrote && strstr(wrote, "summary.csv") && strstr(wrote, "report.html") && strstr(wrote, "explain.txt"));
}
