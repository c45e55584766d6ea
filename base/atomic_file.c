#include "atomic_file.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "interrupt.h"

int atomic_temp_name(char *buf, size_t len, const char *path)
{
    if ((size_t)snprintf(buf, len, "%s.tmp.%ld", path, (long)getpid()) >= len)
        return pb_fail("path too long: %s", path);
    return PB_OK;
}

int atomic_file_open(struct atomic_file *a, const char *path)
{
    a->f = NULL;
    a->slot = -1;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s", path) >= sizeof a->path)
        return pb_fail("path too long: %s", path);
    PB_TRY(atomic_temp_name(a->tmp, sizeof a->tmp, path));
    a->slot = interrupt_remember_temp(a->tmp);
    a->f = fopen(a->tmp, "w");
    if (!a->f) {
        interrupt_forget_temp(a->slot);
        return pb_fail("cannot write %s: %s; check that the results folder exists and is writable", a->tmp,
                       strerror(errno));
    }
    return PB_OK;
}

int atomic_file_commit(struct atomic_file *a)
{
    int bad = ferror(a->f);
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        interrupt_forget_temp(a->slot);
        return pb_fail("writing %s failed (disk full?)", a->path);
    }
    if (rename(a->tmp, a->path)) {
        int e = errno;
        unlink(a->tmp);
        interrupt_forget_temp(a->slot);
        return pb_fail("cannot rename %s to %s: %s", a->tmp, a->path, strerror(e));
    }
    interrupt_forget_temp(a->slot);
    return PB_OK;
}

void atomic_file_abort(struct atomic_file *a)
{
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
    interrupt_forget_temp(a->slot);
}

int atomic_write_text(const char *path, const char *text)
{
    struct atomic_file a;
    PB_TRY(atomic_file_open(&a, path));
    fputs(text, a.f);
    return atomic_file_commit(&a);
}

int path_join(char *buf, size_t len, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) return pb_fail("path too long: %s/%s", dir, name);
    return PB_OK;
}

int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return pb_fail("path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return pb_fail("cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return pb_fail("cannot create %s: %s", buf, strerror(errno));
    return PB_OK;
}
