/* Reading Hugging Face .safetensors folders on the host (no CUDA): a single
 * model.safetensors or shards listed by model.safetensors.index.json. A file is
 * an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
 * data_offsets), then the raw tensor bytes. */
#ifndef PB_SAFETENSORS_H
#define PB_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum st_dtype { ST_BF16, ST_F16, ST_F32, ST_OTHER };

#define ST_MAX_DIMS 8

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    char dtype_name[16];       /* as written in the header, for messages */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;       /* byte range inside the file's data section */
    int file;                  /* index into st_files.paths */
};

struct st_files {
    int n_files;
    char **paths;
    uint64_t *data_start;      /* offset of each file's data section */
    int n_tensors;
    struct st_tensor *tensors;
};

/* Parse the headers of a folder; on failure print "<file>: <problem>". */
int st_open(const char *folder, struct st_files *out);
/* Parse one file's header and append its tensors (used by st_open; tests call it). */
int st_add_file(struct st_files *f, const char *path);
void st_close(struct st_files *f);

const struct st_tensor *st_find(const struct st_files *f, const char *name);
uint64_t st_numel(const struct st_tensor *t);
int st_dtype_size(enum st_dtype dt);   /* 0 for ST_OTHER */

/* Read `bytes` bytes at `offset` inside a tensor's data into dst. */
int st_read(const struct st_files *f, const struct st_tensor *t, uint64_t offset, uint64_t bytes, void *dst);
/* n elements of dtype at src -> bf16 bits (round to nearest even, as torch does). */
void st_to_bf16(enum st_dtype dt, const void *src, uint16_t *dst, size_t n);
#ifdef __cplusplus
}
#endif
#endif
