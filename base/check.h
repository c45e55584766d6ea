/* Status-returning checks: a failing call prints what failed, where, and a hint,
 * then the enclosing function returns PB_ERR so main can tidy up and exit(1). */
#ifndef PB_CHECK_H
#define PB_CHECK_H
#include <stdarg.h>
#include <stdio.h>

#define PB_OK 0
#define PB_ERR (-1)

#ifdef __cplusplus
extern "C" {
#endif
/* The calling thread's last pb_fail message, so a report can record why a
 * strategy or sweep point failed (errno-style, thread-local; see check.c). */
char *pb_last_error(void);
#define PB_ERROR_LEN 512
#ifdef __cplusplus
}
#endif

/* Print "bench: error: <message>", remember it, and return PB_ERR, so
 * `return pb_fail(...)` reads well. */
__attribute__((format(printf, 1, 2))) static inline int pb_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = pb_last_error();
    vsnprintf(msg, PB_ERROR_LEN, fmt, ap);
    va_end(ap);
    fprintf(stderr, "bench: error: %s\n", msg);
    return PB_ERR;
}

/* Propagate a failing status from a callee that already printed its message. */
#define PB_TRY(call)                        \
    do {                                    \
        if ((call) != PB_OK) return PB_ERR; \
    } while (0)

#endif
