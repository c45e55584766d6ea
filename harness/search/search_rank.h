/* Ordering the priced configurations, and predicted against measured order. */
#ifndef PB_SEARCH_RANK_H
#define PB_SEARCH_RANK_H
#include <stddef.h>
#include "search_price.h"

/* Sort rows in place: those that fit by the objective (search_objective_key), ties
 * in enumeration order, then the refused in enumeration order; rank = 1.. for
 * those that fit, 0 for the refused. */
void search_rank(struct search_row *rows, int n, enum search_objective objective);
/* rows[0..k) are the best k by prediction, measured_ms set where a measurement
 * succeeded: give those measured_rank 1.. by the same objective on the measured
 * time (0 for the others). Returns how many were measured. */
int search_rank_measured(struct search_row *rows, int k, enum search_objective objective);
/* Spearman's rank correlation between predicted and measured order over the
 * measured rows of rows[0..k) (1: the same order); NAN with fewer than two. */
double search_rank_correlation(const struct search_row *rows, int k);
/* One sentence on why rows[0] wins: against the best configuration of another
 * strategy that does worse (or the first that does worse), by how much, and the term of the time that differs
 * most (compute on the busiest GPU, all-reduces and copies, or waiting), then how
 * far ahead of naive it is; rows that tie with it are named. rows must be ranked. */
void search_explain_winner(const struct search_row *rows, int n, enum search_objective objective, char *buf,
                           size_t len);
#endif
