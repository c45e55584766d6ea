#include "text_file.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opened without blocking (a FIFO would otherwise wait for a writer for ever),
 * refused unless a regular file, then read to the end: no seek, so a file whose
 * size changes or that cannot seek is still read whole or not at all. */
char *text_file_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : TEXT_FILE_NOT_REGULAR;
        close(fd);
        errno = e;
        return NULL;
    }
    if ((size_t)st.st_size >= TEXT_FILE_MAX) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            char *grown = cap > TEXT_FILE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                errno = cap > TEXT_FILE_MAX / 2 ? EFBIG : ENOMEM;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e;
        } else if (got == 0) {
            buf[len] = 0;
            break;
        } else {
            len += (size_t)got;
        }
    }
    close(fd);
    return buf;
}

const char *text_file_strerror(int err)
{
    if (err == EISDIR) return "is a folder, not a file";
    if (err == TEXT_FILE_NOT_REGULAR) return "is not a regular file (a FIFO, device or socket cannot be read as one)";
    if (err == EFBIG) return "is too large (over 1 GiB)";
    return strerror(err);
}
