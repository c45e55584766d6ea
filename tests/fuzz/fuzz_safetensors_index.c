/* model.safetensors.index.json in a folder of its own; the shards it names are
 * absent or the one small valid shard written at start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../models/safetensors.h"
#include "fuzz_input.h"

static char folder[128];

static void make_folder(void)
{
    snprintf(folder, sizeof folder, "%s/placebench-fuzz-index-XXXXXX", P_tmpdir);
    if (!mkdtemp(folder)) abort();
    char path[192];
    snprintf(path, sizeof path, "%s/a.safetensors", folder);
    FILE *f = fopen(path, "wb");
    const char *h = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    unsigned char len8[8] = {(unsigned char)strlen(h)};
    fwrite(len8, 1, 8, f);
    fputs(h, f);
    fwrite("\0\0\0\0", 1, 4, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!folder[0]) make_folder();
    char path[192];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", folder);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct st_files files;
    if (st_open(folder, &files) == 0) st_close(&files);
    return 0;
}
