/* scripts/prediction_table.py: the predicted-against-measured rows docs/PERF.md keeps,
 * read from the summary.csv files a GPU check leaves. */
#include <stdlib.h>
#include "../base/text_file.h"
#include "synthetic_run.h"
#include "test.h"

TEST(test_prediction_table_lists_measured_points_with_their_prediction)
{
    struct synthetic_run s;
    CHECK_EQ_INT(synthetic_run_make(&s), 0);
    char dir[256], run[300], cmd[800];
    make_temp_dir(dir, sizeof dir);
    snprintf(run, sizeof run, "%s/prefill_1x128", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", run);
    CHECK(system(cmd) == 0);
    s.r[0].predicted_ms = 12.5;
    s.r[0].prediction_error_pct = -7.25;
    CHECK_EQ_INT(synthetic_run_write(&s, run), 0);
    synthetic_run_free(&s);
    snprintf(cmd, sizeof cmd, "python3 scripts/prediction_table.py %s > %s/table.md", dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/table.md", dir);
    char *table = text_file_read(cmd);
    CHECK(table && strstr(table, "| prefill_1x128 | single | prefill |"));
    CHECK(table && strstr(table, "| 12.5 | -7.25 |"));
    free(table);
    snprintf(cmd, sizeof cmd, "python3 scripts/prediction_table.py %s/none 2>/dev/null", dir);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}
