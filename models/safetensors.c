/* Hugging Face .safetensors header parsing and reads; see safetensors.h. */
#include "safetensors.h"
#include "../base/text_file.h"
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "../base/check.h"
#include <unistd.h>
#include "../base/json_load.h"
#include "../base/parse_number.h"

/* Shapes and offsets are JSON numbers, exact as doubles only up to 2^53. */
#define ST_MAX_INTEGER 9007199254740992.0

#define ST_MAX_HEADER (256u << 20)  /* far above any real header; guards a corrupt length */

int st_dtype_size(enum st_dtype dt)
{
    switch (dt) {
    case ST_BF16:
    case ST_F16: return 2;
    case ST_F32: return 4;
    default: return 0;
    }
}

static enum st_dtype parse_dtype(const char *s)
{
    if (!strcmp(s, "BF16")) return ST_BF16;
    if (!strcmp(s, "F16")) return ST_F16;
    if (!strcmp(s, "F32")) return ST_F32;
    return ST_OTHER;
}

uint64_t st_numel(const struct st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

static int parse_entry(const char *path, const cJSON *e, struct st_tensor *t, uint64_t data_bytes)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return pb_fail("%s: tensor %s: header entry needs dtype, shape and data_offsets", path, e->string);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    t->dtype = parse_dtype(dt->valuestring);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > ST_MAX_DIMS) return pb_fail("%s: tensor %s: %d dimensions", path, e->string, t->ndim);
    char what[512];
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        snprintf(what, sizeof what, "%s: tensor %s: shape[%d]", path, e->string, i);
        if (!cJSON_IsNumber(d)) return pb_fail("%s: must be a number", what);
        PB_TRY(number_to_integer(what, d->valuedouble, 0, ST_MAX_INTEGER, &t->shape[i]));
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel) || numel > (uint64_t)ST_MAX_INTEGER)
            return pb_fail("%s: tensor %s: the shape holds more than 2^53 elements", path, e->string);
    }
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *en = cJSON_GetArrayItem(offs, 1);
    int64_t begin, end;
    snprintf(what, sizeof what, "%s: tensor %s: data_offsets", path, e->string);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(en)) return pb_fail("%s: must be two numbers", what);
    PB_TRY(number_to_integer(what, b->valuedouble, 0, ST_MAX_INTEGER, &begin));
    PB_TRY(number_to_integer(what, en->valuedouble, 0, ST_MAX_INTEGER, &end));
    if (end < begin) return pb_fail("%s: end %lld before begin %lld", what, (long long)end, (long long)begin);
    t->begin = (uint64_t)begin;
    t->end = (uint64_t)end;
    if (t->end > data_bytes)
        return pb_fail("%s: tensor %s: data_offsets end %llu past the file's %llu data bytes", path, e->string,
                       (unsigned long long)t->end, (unsigned long long)data_bytes);
    int es = st_dtype_size(t->dtype);
    if (es && t->end - t->begin != st_numel(t) * es)
        return pb_fail("%s: tensor %s: %llu bytes for %llu elements of %s", path, e->string,
                       (unsigned long long)(t->end - t->begin), (unsigned long long)st_numel(t), t->dtype_name);
    t->name = strdup(e->string);
    return t->name ? PB_OK : pb_fail("out of host memory");
}

int st_add_file(struct st_files *f, const char *path)
{
    /* O_NONBLOCK: a FIFO named as a shard must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int err = fd < 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : TEXT_FILE_NOT_REGULAR;
        if (fd >= 0) close(fd);
        return pb_fail("%s: cannot open: %s", path, text_file_strerror(err));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return pb_fail("%s: cannot open: %s", path, strerror(errno));
    }
    unsigned char len8[8];
    if (fread(len8, 1, 8, fp) != 8) {
        fclose(fp);
        return pb_fail("%s: too short for a safetensors header", path);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > ST_MAX_HEADER || 8 + hlen > (uint64_t)sb.st_size) {
        fclose(fp);
        return pb_fail("%s: header length %llu does not fit the file (%lld bytes)", path, (unsigned long long)hlen,
                       (long long)sb.st_size);
    }
    char *json = malloc(hlen + 1);
    if (!json || fread(json, 1, hlen, fp) != hlen) {
        free(json);
        fclose(fp);
        return pb_fail("%s: cannot read the header", path);
    }
    fclose(fp);
    json[hlen] = 0;
    cJSON *root;
    int parsed = json_parse_text(path, json, hlen, &root);
    free(json);
    if (parsed != PB_OK) return PB_ERR;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pb_fail("%s: the header is not a JSON object", path);
    }
    int file = f->n_files;
    char **paths = realloc(f->paths, (file + 1) * sizeof *paths);
    uint64_t *starts = paths ? realloc(f->data_start, (file + 1) * sizeof *starts) : NULL;
    if (paths) f->paths = paths;
    if (starts) f->data_start = starts;
    if (!paths || !starts || !(f->paths[file] = strdup(path))) {
        cJSON_Delete(root);
        return pb_fail("out of host memory");
    }
    f->data_start[file] = 8 + hlen;
    f->n_files++;
    uint64_t data_bytes = (uint64_t)sb.st_size - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    struct st_tensor *ts = realloc(f->tensors, (f->n_tensors + n) * sizeof *ts);
    if (!ts) {
        cJSON_Delete(root);
        return pb_fail("out of host memory");
    }
    f->tensors = ts;
    int rc = PB_OK;
    for (const cJSON *e = root->child; e && rc == PB_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        struct st_tensor *t = &f->tensors[f->n_tensors];
        memset(t, 0, sizeof *t);
        rc = parse_entry(path, e, t, data_bytes);
        if (rc == PB_OK) {
            t->file = file;
            f->n_tensors++;
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int open_index(const char *folder, const char *index_path, struct st_files *f)
{
    cJSON *root;
    PB_TRY(json_load_file(index_path, &root));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return pb_fail("%s: no weight_map object", index_path);
    }
    int rc = PB_OK;
    /* Each shard once, in the order the map first names it. */
    for (const cJSON *e = map->child; e && rc == PB_OK; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = pb_fail("%s: weight_map.%s is not a file name", index_path, e->string);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", folder, e->valuestring);
        int seen = 0;
        for (int i = 0; i < f->n_files && !seen; i++) seen = !strcmp(f->paths[i], path);
        if (!seen) rc = st_add_file(f, path);
    }
    cJSON_Delete(root);
    return rc;
}

int st_open(const char *folder, struct st_files *out)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", folder);
    int rc;
    if (stat(path, &sb) == 0) {
        rc = open_index(folder, path, out);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", folder);
        if (stat(path, &sb) != 0)
            return pb_fail("%s: neither model.safetensors nor model.safetensors.index.json is there", folder);
        rc = st_add_file(out, path);
    }
    if (rc != PB_OK) st_close(out);
    return rc;
}

void st_close(struct st_files *f)
{
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_files; i++) free(f->paths[i]);
    free(f->tensors);
    free(f->paths);
    free(f->data_start);
    memset(f, 0, sizeof *f);
}

const struct st_tensor *st_find(const struct st_files *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int st_read(const struct st_files *f, const struct st_tensor *t, uint64_t offset, uint64_t bytes, void *dst)
{
    if (offset + bytes > t->end - t->begin)
        return pb_fail("%s: read of %llu bytes at %llu past tensor %s", f->paths[t->file],
                       (unsigned long long)bytes, (unsigned long long)offset, t->name);
    FILE *fp = fopen(f->paths[t->file], "rb");
    if (!fp) return pb_fail("%s: cannot open: %s", f->paths[t->file], strerror(errno));
    int ok = fseeko(fp, (off_t)(f->data_start[t->file] + t->begin + offset), SEEK_SET) == 0 &&
             fread(dst, 1, bytes, fp) == bytes;
    fclose(fp);
    return ok ? PB_OK : pb_fail("%s: cannot read tensor %s", f->paths[t->file], t->name);
}

static uint16_t f32_to_bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);  /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (!man) {
            u = sign;
        } else {  /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            u = sign | exp << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | man << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void st_to_bf16(enum st_dtype dt, const void *src, uint16_t *dst, size_t n)
{
    if (dt == ST_BF16) {
        memcpy(dst, src, n * 2);
    } else if (dt == ST_F16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(f16_to_f32(s[i]));
    } else if (dt == ST_F32) {
        const float *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(s[i]);
    }
}
