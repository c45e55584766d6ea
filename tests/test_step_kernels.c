/* scripts/step_kernels.py: on a trace written here (a prompt step and two decode
 * steps), the prompt's step is left out, the names lose their template arguments
 * and parameters, and each kernel's end-to-end time (from the end of the kernel
 * before it) adds up to the step; with --prompt only the prompt's step is kept; a
 * trace without decode steps is an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"

static void write_trace(const char *dir, const char *events)
{
    char path[512];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"traceEvents\": [%s]}\n", events);
    fclose(f);
}

#define KERNEL(name, ts, dur)                                                                                          \
    "{\"ph\": \"X\", \"cat\": \"kernel\", \"name\": \"" name "\", \"pid\": 0, \"tid\": 0, \"ts\": " #ts              \
    ", \"dur\": " #dur ", \"args\": {\"device\": 0, \"strategy\": \"single\", \"point\": 0}}"

/* The script's output for dir in out; its exit status. */
static int run_script(const char *dir, const char *flags, char *out, size_t cap)
{
    char cmd[640];
    snprintf(cmd, sizeof cmd, "python3 scripts/step_kernels.py %s %s", dir, flags);
    return run_capture(cmd, out, cap);
}

/* launches, busy and end-to-end us of the row for `name`; 0 if absent */
static int row(const char *out, const char *name, double v[3])
{
    char key[96];
    snprintf(key, sizeof key, "\n  %s ", name);
    const char *at = strstr(out, key);
    return at && sscanf(at + strlen(key), "%lf %lf %lf", &v[0], &v[1], &v[2]) == 3;
}

TEST(test_step_kernels_charges_each_kernel_its_share_of_the_decode_steps)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("  (python3 not installed: scripts/step_kernels.py not run)\n");
        return;
    }
    char dir[64];
    make_temp_dir(dir, sizeof dir);
    CHECK(dir[0] != 0);
    write_trace(dir, KERNEL("embed_kernel(int const*)", 0, 5) ", " KERNEL("void flash_prefill_kernel<128>(x)", 10, 20)
                ", " KERNEL("embed_kernel(int const*)", 100, 2) ", " KERNEL("void k_a<int>(float)", 105, 10) ", "
                KERNEL("k_b(float)", 120, 5) ", " KERNEL("embed_kernel(int const*)", 200, 4) ", "
                KERNEL("void k_a<int>(float)", 204, 20) ", " KERNEL("k_b(float)", 230, 6));
    static char out[8192];
    CHECK_EQ_INT(run_script(dir, "", out, sizeof out), 0);
    CHECK(strstr(out, "single, point 0, GPU 0: 2 decode steps, 30.5 us a step") != NULL);
    double a[3], b[3], e[3];
    CHECK(row(out, "k_a", a) && row(out, "k_b", b) && row(out, "embed_kernel", e));
    CHECK_NEAR(a[0], 1.0, 1e-9);
    CHECK_NEAR(a[1], 15.0, 1e-9);   /* (10 + 20) / 2 */
    CHECK_NEAR(a[2], 16.5, 1e-9);   /* (13 + 20) / 2: from the embed's end */
    CHECK_NEAR(b[2], 11.0, 1e-9);   /* (10 + 12) / 2: its launch gap included */
    CHECK_NEAR(a[2] + b[2] + e[2], 30.5, 1e-9);
    CHECK(strstr(out, "flash_prefill") == NULL);
    if (!strstr(out, "30.5 us a step")) fprintf(stderr, "%s", out);
    CHECK_EQ_INT(run_script(dir, "--prompt", out, sizeof out), 0);
    CHECK(strstr(out, "single, point 0, GPU 0: 1 prompt passes, 30.0 us a step") != NULL);
    double f[3];
    CHECK(row(out, "flash_prefill_kernel", f) && !row(out, "k_a", a));
    CHECK_NEAR(f[2], 25.0, 1e-9);  /* from the embed's end to its own */

    /* only the prompt: no decode step */
    write_trace(dir, KERNEL("embed_kernel(int const*)", 0, 5) ", " KERNEL("void flash_prefill_kernel<128>(x)", 10, 20));
    CHECK_EQ_INT(run_script(dir, "", out, sizeof out), 1);
    CHECK(strstr(out, "no decode step") != NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK_EQ_INT(run_script(dir, "", out, sizeof out), 1);  /* no folder */
    CHECK(strstr(out, "cannot read") != NULL);
}
