/* The safetensors reader on the CPU: single files, sharded folders, dtype
 * conversion to bf16, and clear errors on broken files. */
#include <stdlib.h>
#include "../models/safetensors.h"
#include "safetensors_write.h"
#include "test.h"

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(test_safetensors_reads_single_file)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    uint16_t a[6] = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0xbf80};  /* bf16 1..5, -1 */
    float b[3] = {0.5f, -2.0f, 3.0f};
    struct st_out_tensor t[2] = {{"w.a", "BF16", 2, {2, 3}, a, sizeof a}, {"norm", "F32", 1, {3, 0}, b, sizeof b}};
    CHECK(st_write_file(path, t, 2) == 0);
    struct st_files f;
    CHECK(st_open(dir, &f) == 0);
    CHECK_EQ_INT(f.n_tensors, 2);
    const struct st_tensor *ta = st_find(&f, "w.a"), *tb = st_find(&f, "norm");
    CHECK(ta && tb && !st_find(&f, "nope"));
    if (!ta || !tb) return;
    CHECK_EQ_INT(ta->dtype, ST_BF16);
    CHECK_EQ_INT(ta->ndim, 2);
    CHECK_EQ_INT(ta->shape[1], 3);
    CHECK_EQ_INT(st_numel(tb), 3);
    uint16_t row[3];
    CHECK(st_read(&f, ta, 6, 6, row) == 0);  /* second row */
    CHECK(row[0] == 0x4080 && row[2] == 0xbf80);
    float fb[3];
    uint16_t cb[3];
    CHECK(st_read(&f, tb, 0, sizeof fb, fb) == 0);
    st_to_bf16(tb->dtype, fb, cb, 3);
    CHECK(cb[0] == 0x3f00 && cb[1] == 0xc000 && cb[2] == 0x4040);
    CHECK(st_read(&f, tb, 8, 8, fb) != 0);  /* past the tensor */
    st_close(&f);
}

TEST(test_safetensors_reads_sharded_index)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    float x[4] = {1, 2, 3, 4};
    uint16_t h[2] = {0x3c00, 0xc000};  /* fp16 1.0, -2.0 */
    struct st_out_tensor t1 = {"a", "F32", 2, {2, 2}, x, sizeof x}, t2 = {"b", "F16", 1, {2, 0}, h, sizeof h};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(st_write_file(path, &t1, 1) == 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(st_write_file(path, &t2, 1) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(write_text(path, "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                           "\"b\":\"model-00002-of-00002.safetensors\"}}") == 0);
    struct st_files f;
    CHECK(st_open(dir, &f) == 0);
    CHECK_EQ_INT(f.n_files, 2);
    const struct st_tensor *tb = st_find(&f, "b");
    CHECK(tb && tb->file == 1 && tb->dtype == ST_F16);
    if (tb) {
        uint16_t raw[2], bf[2];
        CHECK(st_read(&f, tb, 0, 4, raw) == 0);
        st_to_bf16(tb->dtype, raw, bf, 2);
        CHECK(bf[0] == 0x3f80 && bf[1] == 0xc000);
    }
    st_close(&f);
}

TEST(test_safetensors_rounds_fp32_to_nearest_even)
{
    /* 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0);
     * 1 + 3*2^-9 rounds up. */
    float v[2] = {1.00390625f, 1.005859375f};
    uint16_t o[2];
    st_to_bf16(ST_F32, v, o, 2);
    CHECK_EQ_INT(o[0], 0x3f80);
    CHECK_EQ_INT(o[1], 0x3f81);
}

TEST(test_safetensors_rejects_broken_files)
{
    char dir[256], path[512];
    make_temp_dir(dir, sizeof dir);
    struct st_files f;
    CHECK(st_open(dir, &f) != 0);  /* empty folder */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unsigned char longer[8 + 2] = {0x40, 0, 0, 0, 0, 0, 0, 0, '{', '}'};  /* header longer than the file */
    FILE *fp = fopen(path, "wb");
    fwrite(longer, 1, sizeof longer, fp);
    fclose(fp);
    CHECK(st_open(dir, &f) != 0);
    unsigned char bad[8 + 9] = {9, 0, 0, 0, 0, 0, 0, 0, 'n', 'o', 't', ' ', 'j', 's', 'o', 'n', '!'};
    fp = fopen(path, "wb");
    fwrite(bad, 1, sizeof bad, fp);
    fclose(fp);
    CHECK(st_open(dir, &f) != 0);
    /* offsets that disagree with shape x dtype */
    float x[4] = {0};
    struct st_out_tensor t = {"a", "F32", 2, {3, 2}, x, sizeof x};
    CHECK(st_write_file(path, &t, 1) == 0);
    CHECK(st_open(dir, &f) != 0);
}
