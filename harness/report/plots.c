/* Runs scripts/plot.sh for bench --plot. The pictures are gnuplot's; this file
 * only prepares their data, finds the script and reports the outcome. */
#include "plots.h"
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../base/check.h"
#include "plot_data.h"

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* gnuplot on PATH? (access() per PATH entry: no shell involved.) */
static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, name);
        if (n && access(dir, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

int plots_find_script(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        /* build/bench -> <repo>/scripts/plot.sh */
        char *bin_dir = dirname(exe);
        snprintf(buf, len, "%s/../scripts/plot.sh", bin_dir);
        if (is_file(buf)) return PB_OK;
    }
    snprintf(buf, len, "scripts/plot.sh");
    if (is_file(buf)) return PB_OK;
    return pb_fail("scripts/plot.sh not found beside the executable or in the working directory; "
                   "run bench from the repository");
}

int plots_write(const char *dir)
{
    int n_plots;
    PB_TRY(plot_data_write(dir, &n_plots));
    if (!have_program("gnuplot")) {
        fprintf(stderr, "bench: --plot: gnuplot is not installed, so no pictures were drawn (the data for "
                        "them is in %s/plot-data).\nbench: install it with `sudo apt-get install gnuplot-nox` "
                        "and run `scripts/plot.sh %s`.\n", dir, dir);
        return PB_OK;
    }
    char script[PATH_MAX + 64];
    PB_TRY(plots_find_script(script, sizeof script));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return pb_fail("cannot start %s: %s", script, strerror(errno));
    if (pid == 0) {
        /* The data is fresh; tell the script not to convert again. */
        setenv("PLACEBENCH_PLOT_DATA_READY", "1", 1);
        execlp("bash", "bash", script, dir, (char *)NULL);
        fprintf(stderr, "bench: error: cannot run bash %s: %s\n", script, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return pb_fail("waiting for %s: %s", script, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pb_fail("%s %s failed (status %d); the data is in %s/plot-data", script, dir,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1, dir);
    return PB_OK;
}

int plots_main(int argc, char **argv)
{
    int help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(help ? stdout : stderr, "usage: bench %s RESULTS_DIR\n  %s\n", argv[0],
                strcmp(argv[0], "plot-data") ? "draws the timeline, utilisation and sweep pictures (PNG, SVG) "
                                               "into RESULTS_DIR (gnuplot)"
                                             : "writes the gnuplot data for scripts/plot.sh into RESULTS_DIR/plot-data");
        return help ? 0 : 2;
    }
    if (strcmp(argv[0], "plot-data")) return plots_write(argv[1]) == PB_OK ? 0 : 1;
    int n;
    if (plot_data_write(argv[1], &n) != PB_OK) return 1;
    printf("wrote %d plot data set(s) into %s/plot-data\n", n, argv[1]);
    return 0;
}
