/* Status-returning checks: a failing call prints what failed, where, and a hint,
 * then the enclosing function returns -1 so main can tidy up and exit(1). */
#ifndef PB_CHECK_H
#define PB_CHECK_H
#include <stdio.h>

#define PB_OK 0
#define PB_ERR (-1)

/* Print "bench: error: ..." and evaluate to PB_ERR. */
#define pb_fail(...) (fprintf(stderr, "bench: error: " __VA_ARGS__), fputc('\n', stderr), PB_ERR)

/* Propagate a failing status from a callee that already printed its message. */
#define PB_TRY(call)                      \
    do {                                  \
        if ((call) != PB_OK) return PB_ERR; \
    } while (0)

#endif
