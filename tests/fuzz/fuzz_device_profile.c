/* Device profile reader: parse and validate arbitrary text as profiles/x.json. */
#include <stdlib.h>
#include "../../harness/exec/model/device_profile.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct device_profile p;
    char *text = fuzz_text(data, size);
    if (device_profile_parse(text, "profiles/x.json", &p) == 0)
        (void)efficiency_at(p.kernels.gemm, p.kernels.n_gemm, 64, 0);
    free(text);
    return 0;
}
