/* A minimal test framework: TEST(name) registers a function; CHECK records a
 * failure with file and line and lets the test go on. runner.c runs them all and
 * ends with "N passed, N failed". */
#ifndef PB_TEST_H
#define PB_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(int *failures);
};

#ifdef __cplusplus
extern "C" {
#endif
void test_register(const char *name, void (*fn)(int *));

#define TEST(name)                                                     \
    static void name(int *failures_);                                 \
    __attribute__((constructor)) static void register_##name(void) {  \
        test_register(#name, name);                                    \
    }                                                                  \
    static void name(int *failures_)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            (*failures_)++;                                                      \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                           \
    do {                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                          \
        if (a_ != b_) {                                                              \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                                 \
            (*failures_)++;                                                          \
        }                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double a_ = (a), b_ = (b);                                                   \
        if (!(fabs(a_ - b_) <= (tol))) {                                             \
            fprintf(stderr, "  %s:%d: %s = %g, expected %g (tol %g)\n", __FILE__, __LINE__, \
                    #a, a_, b_, (double)(tol));                                      \
            (*failures_)++;                                                          \
        }                                                                            \
    } while (0)

/* A test that cannot run here (a missing input, not a failure) calls this and
 * returns: the runner reports it as skipped with the reason, not as passed. */
__attribute__((format(printf, 1, 2))) void test_skip(const char *fmt, ...);

/* Helpers shared by tests: run build/bench with arguments, capture its exit status
 * and output (stdout+stderr) into buf. */
const char *bench_binary(void);
int run_bench(const char *args, char *buf, size_t buflen);
/* The same for any shell command line. */
int run_capture(const char *cmd, char *buf, size_t buflen);
/* A fresh temporary directory under /tmp, created; returns its path in buf. The
 * runner removes it after the test if the test passed (temp_dirs.c). */
void make_temp_dir(char *buf, size_t buflen);
/* After each test: its temporary folders removed (failed 0) or named on stdout. */
void temp_dirs_done(int failed);
/* Files in dir whose name holds ".tmp": a report left half-written. */
int leftover_temporaries(const char *dir);
/* The text of dir/name (the caller frees it); NULL where it cannot be read. */
char *read_text_in(const char *dir, const char *name);
/* How many times needle stands in s, not overlapping. */
int count_occurrences(const char *s, const char *needle);
#ifdef __cplusplus
}
#endif
#endif
