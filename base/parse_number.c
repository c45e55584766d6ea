#include "parse_number.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

/* One integer at s, ending at *end; PB_ERR without a message if it is not one. */
static int scan_int(const char *s, const char **end, long long lo, long long hi, long long *out)
{
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])))) return PB_ERR;
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    *end = e;
    if (errno == ERANGE || v < lo || v > hi) return PB_ERR;
    *out = v;
    return PB_OK;
}

int parse_int(const char *what, const char *s, long long lo, long long hi, long long *out)
{
    const char *end;
    if (scan_int(s, &end, lo, hi, out) != PB_OK || *end)
        return pb_fail("%s: \"%s\" is not an integer from %lld to %lld", what, s, lo, hi);
    return PB_OK;
}

int parse_int_list(const char *what, const char *s, long long lo, long long hi, int *out, int max)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *end;
        long long v;
        if (scan_int(p, &end, lo, hi, &v) != PB_OK || (*end && *end != ','))
            return pb_fail("%s: \"%s\" is not a comma list of integers from %lld to %lld", what, s, lo, hi);
        if (n == max) return pb_fail("%s: at most %d values", what, max);
        out[n++] = (int)v;
        if (!*end) return n;
        p = end + 1;   /* a comma must be followed by another value */
    }
}

int number_in_range(const char *what, double v, double lo, double hi)
{
    if (!isfinite(v)) return pb_fail("%s: must be a finite number", what);
    if (v < lo || v > hi) return pb_fail("%s: %g is out of range [%g, %g]", what, v, lo, hi);
    return PB_OK;
}

int number_to_integer(const char *what, double v, double lo, double hi, int64_t *out)
{
    PB_TRY(number_in_range(what, v, lo, hi));
    if (v != floor(v)) return pb_fail("%s: %g must be a whole number", what, v);
    if (!(v >= -9.2e18 && v <= 9.2e18)) return pb_fail("%s: %g does not fit a 64-bit integer", what, v);
    *out = (int64_t)v;
    return PB_OK;
}
