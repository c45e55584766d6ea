/* Runs every registered test (optionally only those whose name contains argv[1])
 * and prints "N passed, N failed" as its last line, after a line naming any
 * skipped tests. */
#include <stdarg.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../base/text_file.h"
#include "test.h"

#define MAX_TESTS 1024
static struct test_case registered[MAX_TESTS];
static int n_registered;
static char skip_reason[512];  /* set by test_skip during the running test */

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    if (!skip_reason[0]) snprintf(skip_reason, sizeof skip_reason, "(no reason given)");
}

void test_register(const char *name, void (*fn)(int *))
{
    if (n_registered < MAX_TESTS) registered[n_registered++] = (struct test_case){name, fn};
}

/* The bench under test: $BENCH (the sanitizer build sets it), else build/bench. */
const char *bench_binary(void)
{
    return getenv("BENCH") ? getenv("BENCH") : "build/bench";
}

int run_bench(const char *args, char *buf, size_t buflen)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", bench_binary(), args);
    return run_capture(cmd, buf, buflen);
}

int run_capture(const char *cmd, char *buf, size_t buflen)
{
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(buf, 1, buflen - 1, p);
    buf[n] = 0;
    /* Drain the rest so the child is not killed by SIGPIPE. */
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int leftover_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

char *read_text_in(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return text_file_read(path);
}

int count_occurrences(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    char skipped_names[2048] = "";
    for (int i = 0; i < n_registered; i++) {
        if (argc > 1 && !strstr(registered[i].name, argv[1])) continue;
        int failures = 0;
        skip_reason[0] = 0;
        registered[i].fn(&failures);
        if (failures) {
            printf("FAIL %s\n", registered[i].name);
            temp_dirs_done(1);
            failed++;
        } else if (skip_reason[0]) {
            printf("SKIP %s: %s\n", registered[i].name, skip_reason);
            size_t used = strlen(skipped_names);
            snprintf(skipped_names + used, sizeof skipped_names - used, "%s%s", skipped++ ? ", " : "",
                     registered[i].name);
        } else {
            printf("ok   %s\n", registered[i].name);
            passed++;
        }
        temp_dirs_done(0);
        fflush(stdout);
    }
    if (skipped) printf("%d skipped (not run, not counted as passed): %s\n", skipped, skipped_names);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
