/* scripts/peer_hf.py writes rows for summary.csv: its column list must be
 * summary_csv_columns, in order, and the script must at least compile (it runs
 * only where torch and GPUs are). */
#include <stdlib.h>
#include <string.h>
#include "../harness/run/run.h"
#include "test.h"

TEST(test_peer_script_columns_match_summary_csv)
{
    FILE *f = fopen("scripts/peer_hf.py", "r");
    CHECK(f != NULL);
    if (!f) return;
    static char text[64 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    const char *list = strstr(text, "COLUMNS = [");
    CHECK(list != NULL);
    if (!list) return;
    const char *end = strchr(list, ']');
    int k = 0;
    const char *p = list;
    for (; summary_csv_columns[k]; k++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", summary_csv_columns[k]);
        const char *at = strstr(p, quoted);
        CHECK(at && at < end);   /* present, after the previous column */
        if (!at || at > end) {
            fprintf(stderr, "  column %s missing or out of order in scripts/peer_hf.py\n", summary_csv_columns[k]);
            return;
        }
        p = at + strlen(quoted);
    }
    /* No extra names after the last one. */
    CHECK(!strchr(p, '"') || strchr(p, '"') > end);
}

TEST(test_peer_script_compiles)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("  (python3 not installed: scripts/peer_hf.py not compiled)\n");
        return;
    }
    CHECK_EQ_INT(system("python3 -c \"import ast,sys; ast.parse(open('scripts/peer_hf.py').read())\""), 0);
}
