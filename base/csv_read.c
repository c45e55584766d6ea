/* An RFC 4180 reader: enough for the files this project writes and the peer
 * script appends to (quoted fields with commas and line breaks, "" for a quote). */
#include "csv_read.h"
#include "text_file.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

/* One growable list of strings: a record's fields. */
struct fields {
    int n, cap;
    char **v;
};

static int fields_push(struct fields *f, const char *s, size_t len)
{
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        char **grown = realloc(f->v, (size_t)cap * sizeof *grown);
        if (!grown) return pb_fail("out of host memory reading CSV");
        f->v = grown;
        f->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return pb_fail("out of host memory reading CSV");
    memcpy(copy, s, len);
    copy[len] = 0;
    f->v[f->n++] = copy;
    return PB_OK;
}

static void fields_free(struct fields *f)
{
    for (int i = 0; i < f->n; i++) free(f->v[i]);
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* Parse one record starting at *p; advances past its line end. */
static int parse_record(const char **p, struct fields *out)
{
    const char *s = *p;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf) return pb_fail("out of host memory reading CSV");
    for (;;) {
        len = 0;
        int quoted = *s == '"';
        if (quoted) s++;
        for (;;) {
            char c = *s;
            if (!c) break;
            if (quoted) {
                if (c == '"' && s[1] == '"') s++;
                else if (c == '"') { s++; quoted = 0; continue; }
            } else if (c == ',' || c == '\n' || c == '\r') {
                break;
            }
            if (len + 1 >= cap) {
                char *grown = realloc(buf, cap *= 2);
                if (!grown) { free(buf); return pb_fail("out of host memory reading CSV"); }
                buf = grown;
            }
            buf[len++] = c;
            s++;
        }
        if (fields_push(out, buf, len) != PB_OK) { free(buf); return PB_ERR; }
        if (*s == ',') { s++; continue; }
        break;
    }
    if (*s == '\r') s++;
    if (*s == '\n') s++;
    free(buf);
    *p = s;
    return PB_OK;
}

int csv_read_text(const char *text, struct csv_table *t)
{
    memset(t, 0, sizeof *t);
    const char *p = text;
    struct fields head = {0};
    if (!*p) return pb_fail("CSV has no header line");
    PB_TRY(parse_record(&p, &head));
    t->n_cols = head.n;
    t->header = head.v;
    int cap = 0;
    while (*p) {
        if (*p == '\n' || *p == '\r') { p++; continue; }   /* blank line */
        struct fields rec = {0};
        if (parse_record(&p, &rec) != PB_OK) { fields_free(&rec); csv_table_free(t); return PB_ERR; }
        /* Pad or cut to the header's width so every lookup is in bounds. */
        while (rec.n < t->n_cols)
            if (fields_push(&rec, "", 0) != PB_OK) { fields_free(&rec); csv_table_free(t); return PB_ERR; }
        while (rec.n > t->n_cols) free(rec.v[--rec.n]);
        if (t->n_rows == cap) {
            cap = cap ? cap * 2 : 16;
            char ***grown = realloc(t->rows, (size_t)cap * sizeof *grown);
            if (!grown) { fields_free(&rec); csv_table_free(t); return pb_fail("out of host memory reading CSV"); }
            t->rows = grown;
        }
        t->rows[t->n_rows++] = rec.v;
    }
    return PB_OK;
}

int csv_read_file(const char *path, struct csv_table *t)
{
    memset(t, 0, sizeof *t);
    char *text = text_file_read(path);
    if (!text) return pb_fail("%s: cannot read: %s", path, text_file_strerror(errno));
    int rc = csv_read_text(text, t);
    free(text);
    if (rc != PB_OK) return pb_fail("%s: not a CSV file with a header line", path);
    return PB_OK;
}

void csv_table_free(struct csv_table *t)
{
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    for (int c = 0; c < t->n_cols; c++) free(t->header[c]);
    free(t->rows);
    free(t->header);
    memset(t, 0, sizeof *t);
}

int csv_column(const struct csv_table *t, const char *name)
{
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->header[c], name)) return c;
    return -1;
}

const char *csv_get(const struct csv_table *t, int row, const char *name)
{
    int c = csv_column(t, name);
    return c < 0 || row < 0 || row >= t->n_rows ? "" : t->rows[row][c];
}

static double parse_num(const char *s, const char **end)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || errno) v = NAN;
    if (end) *end = e;
    return v;
}

double csv_get_num(const struct csv_table *t, int row, const char *name)
{
    const char *s = csv_get(t, row, name);
    const char *e;
    double v = parse_num(s, &e);
    return *e ? NAN : v;
}

double csv_list_num(const char *field, int i)
{
    const char *s = field;
    for (int k = 0; k < i; k++) {
        s = strchr(s, ';');
        if (!s) return NAN;
        s++;
    }
    if (*s == ';' || !*s) return NAN;
    return parse_num(s, NULL);
}
