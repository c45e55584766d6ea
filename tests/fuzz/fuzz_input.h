/* What every fuzz target shares: the input as a NUL-terminated copy, or as a file
 * (a memfd, so no disk is touched) for the readers that take a path. */
#ifndef PB_FUZZ_INPUT_H
#define PB_FUZZ_INPUT_H
#include <stddef.h>
#include <stdint.h>

/* data[0..size) plus a NUL; free() it. */
char *fuzz_text(const uint8_t *data, size_t size);
/* The input as a readable file: its path ("/proc/self/fd/N") into buf; close
 * the returned fd afterwards. -1 on failure. */
int fuzz_file(const uint8_t *data, size_t size, char *buf, size_t len);
#endif
