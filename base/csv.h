/* RFC 4180 CSV: fields with a comma, quote, CR or LF are quoted, quotes doubled;
 * records end with CRLF. */
#ifndef PB_CSV_H
#define PB_CSV_H
#include <stdio.h>

void csv_field(FILE *f, const char *s, int first);
void csv_number(FILE *f, double v, int first);
/* An integer-valued column (bytes, FLOPs, counts): every digit, never an exponent; empty for NaN. */
void csv_integer(FILE *f, double v, int first);
void csv_end(FILE *f);
#endif
