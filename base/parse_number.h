/* The one place numbers from outside are checked: command-line flags (text) and
 * JSON fields (cJSON's doubles). Each refuses overflow, trailing text, NaN and
 * infinity and values out of [lo, hi], with a message naming what was read. */
#ifndef PB_PARSE_NUMBER_H
#define PB_PARSE_NUMBER_H
#include <stdint.h>

/* A whole decimal integer in [lo, hi]; "8," "08x" " 8" "" are refused. */
int parse_int(const char *what, const char *s, long long lo, long long hi, long long *out);
/* A comma list of integers in [lo, hi] into out[max]; an empty item ("8,", ",8",
 * "8,,9") is refused. Returns the count, or -1 with a message. */
int parse_int_list(const char *what, const char *s, long long lo, long long hi, int *out, int max);
/* A JSON number that must be finite and in [lo, hi]; `what` names the field. */
int number_in_range(const char *what, double v, double lo, double hi);
/* A JSON number that must be a whole number in [lo, hi] (safe to cast). */
int number_to_integer(const char *what, double v, double lo, double hi, int64_t *out);
#endif
