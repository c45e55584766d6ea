/* trace.json reader: events back into per-point traces, then into timelines. */
#include <unistd.h>
#include "../../harness/report/timeline.h"
#include "../../harness/report/trace_read.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    struct trace_point *pts;
    int n, predicted;
    if (trace_json_read(path, &pts, &n, &predicted) == 0) {
        for (int i = 0; i < n; i++) {
            struct timeline tl;
            if (timeline_build(&pts[i].t, 0, &tl) == 0) timeline_free(&tl);
        }
        trace_points_free(pts, n);
    }
    close(fd);
    return 0;
}
