/* Every run writes a new folder: --out DIR, or results/<date>-<time>-<model>. */
#include "results_dir.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "../../base/atomic_file.h"
#include "../../base/check.h"
#include <unistd.h>

int results_dir_check(const char *out_dir)
{
    struct stat st;
    if (!out_dir[0]) return pb_fail("--out: empty folder name");
    if (stat(out_dir, &st) == 0 && !S_ISDIR(st.st_mode)) return pb_fail("--out %s: exists and is not a folder", out_dir);
    if (make_dirs(out_dir) != PB_OK) return pb_fail("--out %s: cannot create the results folder", out_dir);
    if (access(out_dir, W_OK | X_OK) != 0)
        return pb_fail("--out %s: the folder is not writable: %s", out_dir, strerror(errno));
    return PB_OK;
}

int results_dir_create(const char *out_dir, const char *model, const char *suffix, char *buf, size_t len)
{
    if (out_dir) {
        if ((size_t)snprintf(buf, len, "%s", out_dir) >= len) return pb_fail("--out: path too long");
        return make_dirs(buf);
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    PB_TRY(make_dirs("results"));
    /* Two runs in one second get -2, -3, ... rather than sharing a folder. */
    for (int k = 1; k < 100; k++) {
        char tail[16] = "";
        if (k > 1) snprintf(tail, sizeof tail, "-%d", k);
        if ((size_t)snprintf(buf, len, "results/%s-%s%s%s", stamp, model, suffix, tail) >= len)
            return pb_fail("results folder name too long");
        if (mkdir(buf, 0777) == 0) return PB_OK;
        if (errno != EEXIST) return pb_fail("cannot create %s: %s", buf, strerror(errno));
    }
    return pb_fail("cannot find a free results folder name under results/");
}
