/* bench --search's outputs: search.csv (every configuration, ranked), the top-ten
 * table, and with --measure-top search_measured.csv and its table. Columns are
 * fixed; docs/METRICS.md, "Search", defines each. Files are written atomically. */
#ifndef PB_SEARCH_REPORT_H
#define PB_SEARCH_REPORT_H
#include <stdio.h>
#include "search_price.h"

extern const char *const search_csv_columns[];
extern const char *const search_measured_csv_columns[];

int search_write_csv(const char *dir, const struct search_row *rows, int n);
/* rows[0..k): the best k by prediction, as measured. */
int search_write_measured_csv(const char *dir, const struct search_row *rows, int k);
/* The ten best (fewer if fewer fit), the count refused, and the winner's sentence. */
void search_print_top(FILE *f, const struct search_problem *pb, const struct search_row *rows, int n,
                      enum search_objective objective);
void search_print_measured(FILE *f, const struct search_row *rows, int k);
#endif
