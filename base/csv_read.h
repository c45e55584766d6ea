/* Reading RFC 4180 CSV back (summary.csv, plan.csv, the peer script's rows) for
 * plots and reports: quoted fields, doubled quotes, CRLF or LF record ends. */
#ifndef PB_CSV_READ_H
#define PB_CSV_READ_H
#include <stddef.h>

struct csv_table {
    int n_cols;
    char **header;       /* n_cols names */
    int n_rows;
    char ***rows;        /* n_rows x n_cols fields; a short record's missing fields read "" */
};

/* Parse a whole file; -1 with a message if it cannot be read or has no header. */
int csv_read_file(const char *path, struct csv_table *t);
/* Parse text (for tests and the file reader). */
int csv_read_text(const char *text, struct csv_table *t);
void csv_table_free(struct csv_table *t);
/* Column index by name, -1 if absent. */
int csv_column(const struct csv_table *t, const char *name);
/* Field of row by column name; "" when the column is absent. */
const char *csv_get(const struct csv_table *t, int row, const char *name);
/* The field as a number; NAN when empty, absent or not a number. */
double csv_get_num(const struct csv_table *t, int row, const char *name);
/* The i-th ';'-separated number of a list field ("0.5;0.48"); NAN when missing/empty. */
double csv_list_num(const char *field, int i);
#endif
