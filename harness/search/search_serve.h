/* --objective goodput: one configuration serves the search's request stream through
 * the serving engine on the cost model (harness/serve/), as bench --serve --simulate
 * serves a strategy, with the configuration's microbatch count as the groups in flight. */
#ifndef PB_SEARCH_SERVE_H
#define PB_SEARCH_SERVE_H
#include "search_price.h"

/* Serve pb->requests on placement p (placed on mc): fill row's goodput, E2E p99 as
 * latency_ms, output tokens/s, and the per-GPU terms over the stream's span.
 * -1 with a message if the weights leave no KV room or a step cannot be costed. */
int search_price_serving(const struct search_problem *pb, const struct strategy *st, const struct placement *p,
                         const struct machine *mc, struct search_row *row);
#endif
