#ifndef PB_TEXT_FILE_H
#define PB_TEXT_FILE_H
#include <errno.h>
/* errno of text_file_read for a FIFO, device or socket (EISDIR for a folder). */
#define TEXT_FILE_NOT_REGULAR ENOEXEC
#define TEXT_FILE_MAX ((size_t)1 << 30)
/* A whole regular file as a NUL-terminated malloc'ed string; NULL on failure with
 * errno set (ENOENT for a missing file, EISDIR for a folder, TEXT_FILE_NOT_REGULAR
 * for a FIFO or device), no message: the caller knows what it was for. */
char *text_file_read(const char *path);
/* What a text_file_read errno means, for "<path>: cannot read: <this>". */
const char *text_file_strerror(int err);
#endif
