/* Temporary folders for tests (test.h): each runner calls temp_dirs_done after a
 * test, so a passing test's folders go and a failing one's stay, named. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include "test.h"

/* The folders make_temp_dir made for the running test: removed when it passes,
 * kept and named when it fails, so a failure's outputs can be read. */
#define MAX_TEMP_DIRS 64
static char temp_dirs[MAX_TEMP_DIRS][64];
static int n_temp_dirs;

void make_temp_dir(char *buf, size_t buflen)
{
    snprintf(buf, buflen, "/tmp/placebench-test-XXXXXX");
    if (!mkdtemp(buf)) {
        buf[0] = 0;
        return;
    }
    if (n_temp_dirs < MAX_TEMP_DIRS && strlen(buf) < sizeof temp_dirs[0])
        snprintf(temp_dirs[n_temp_dirs++], sizeof temp_dirs[0], "%s", buf);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void temp_dirs_done(int failed)
{
    for (int i = 0; i < n_temp_dirs; i++) {
        if (failed) printf("     kept %s\n", temp_dirs[i]);
        else nftw(temp_dirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    n_temp_dirs = 0;
}
