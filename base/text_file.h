#ifndef PB_TEXT_FILE_H
#define PB_TEXT_FILE_H
/* A whole file as a NUL-terminated malloc'ed string; NULL on failure with errno
 * set (ENOENT for a missing file), no message: the caller knows what it was for. */
char *text_file_read(const char *path);
#endif
