/* Reports are written to a temporary name in the same folder and renamed, so an
 * interrupted run never leaves a half-written file under the final name. */
#ifndef PB_ATOMIC_FILE_H
#define PB_ATOMIC_FILE_H
#include <stdio.h>

struct atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4096 + 32];
    int slot;                 /* in interrupt.c's table of temporaries to remove */
};

/* The one temporary name for path: "path.tmp.PID" (same folder, so rename is
 * atomic; the process id keeps two runs writing one folder apart). */
int atomic_temp_name(char *buf, size_t len, const char *path);

int atomic_file_open(struct atomic_file *a, const char *path);
/* Flush, close and rename into place; on any write error remove the temporary. */
int atomic_file_commit(struct atomic_file *a);
void atomic_file_abort(struct atomic_file *a);
/* Whole text at once. */
int atomic_write_text(const char *path, const char *text);
/* "dir/name" into buf; fails if it would not fit. */
int path_join(char *buf, size_t len, const char *dir, const char *name);
/* mkdir -p */
int make_dirs(const char *path);
#endif
