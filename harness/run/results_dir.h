#ifndef PB_RESULTS_DIR_H
#define PB_RESULTS_DIR_H
#include <stddef.h>
/* Create the run's folder: out_dir if given (mkdir -p), else a new
 * results/<YYYYmmdd-HHMMSS>-<model><suffix> (suffix such as "-plan"). */
int results_dir_create(const char *out_dir, const char *model, const char *suffix, char *buf, size_t len);
/* --out DIR as given: a folder (created if missing) this process can write in. */
int results_dir_check(const char *out_dir);
#endif
