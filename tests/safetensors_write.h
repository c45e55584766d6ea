/* Writing small .safetensors files for tests (CPU and GPU): the header JSON by
 * hand, tensors packed in order. */
#ifndef PB_SAFETENSORS_WRITE_H
#define PB_SAFETENSORS_WRITE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_out_tensor {
    const char *name;
    const char *dtype;   /* "BF16", "F16", "F32", or anything else */
    int ndim;
    int64_t shape[2];
    const void *data;
    size_t bytes;
};

static inline int st_write_file(const char *path, const struct st_out_tensor *t, int n)
{
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *h = (char *)malloc(cap);
    if (!h) return -1;
    len += snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        len += snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) len += snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        len += snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].bytes);
        off += t[i].bytes;
    }
    len += snprintf(h + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h);
        return -1;
    }
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fwrite(l8, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    for (int i = 0; i < n && ok; i++) ok = fwrite(t[i].data, 1, t[i].bytes, f) == t[i].bytes;
    ok &= fclose(f) == 0;
    free(h);
    return ok ? 0 : -1;
}
#endif
