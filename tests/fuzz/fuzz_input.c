#include "fuzz_input.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = 0;
    return text;
}

int fuzz_file(const uint8_t *data, size_t size, char *buf, size_t len)
{
    int fd = memfd_create("fuzz-input", 0);
    if (fd < 0) return -1;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(buf, len, "/proc/self/fd/%d", fd);
    return fd;
}
