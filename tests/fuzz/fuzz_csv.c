/* CSV reader (summary.csv, plan.csv) and the list fields the plots read. */
#include <stdlib.h>
#include "../../base/csv_read.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    struct csv_table t;
    if (csv_read_text(text, &t) == 0) {
        for (int r = 0; r < t.n_rows; r++) {
            (void)csv_get_num(&t, r, "batch");
            (void)csv_list_num(csv_get(&t, r, "bubble_per_stage"), 1);
        }
        csv_table_free(&t);
    }
    free(text);
    return 0;
}
