#include "csv.h"
#include <math.h>
#include <string.h>

void csv_field(FILE *f, const char *s, int first)
{
    if (!first) fputc(',', f);
    if (!s) s = "";
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Empty for NaN: "unknown" must never read as zero. */
void csv_number(FILE *f, double v, int first)
{
    if (!first) fputc(',', f);
    if (!isnan(v)) fprintf(f, "%.6g", v);
}

/* Counts (bytes, FLOPs, steps) written in full: "%.6g" would turn 33554432
 * into 3.35544e+07. "%.0f" prints an integral double's exact value. */
void csv_integer(FILE *f, double v, int first)
{
    if (!first) fputc(',', f);
    if (!isnan(v)) fprintf(f, "%.0f", v);
}

void csv_end(FILE *f)
{
    fputs("\r\n", f);
}
