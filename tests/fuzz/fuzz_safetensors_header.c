/* One .safetensors file: the 8-byte length, the JSON header, the data section. */
#include <unistd.h>
#include "../../models/safetensors.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    struct st_files f = {0};
    if (st_add_file(&f, path) == 0)
        for (int i = 0; i < f.n_tensors; i++) (void)st_numel(&f.tensors[i]);
    st_close(&f);
    close(fd);
    return 0;
}
