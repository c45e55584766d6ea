/* config.json reader: model_spec_parse_text on arbitrary bytes. */
#include <stdlib.h>
#include "../../models/model_spec.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    struct model_spec m;
    if (model_spec_parse_text("config.json", text, size, &m) == 0) {
        struct module mods[1024 + 4];
        model_modules(&m, DTYPE_FP32, mods);
        model_check_positions(&m, 512, 64);
    }
    free(text);
    return 0;
}
