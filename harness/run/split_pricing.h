/* optimal's measure (strategies/strategy.h, struct split_pricing) from the cost model:
 * each stage and copy of a sequential split priced by planning it with the strategy's
 * own planner and replaying it at a device profile, so the sum is the schedule's
 * predicted latency. Prices are cached per model, workload and profile; one profile
 * prices every GPU alike, and a copy by whether its two devices share a GPU. */
#ifndef PB_SPLIT_PRICING_H
#define PB_SPLIT_PRICING_H
#include "../exec/model/device_profile.h"
#include "../../strategies/strategy.h"

struct split_pricer {
    struct split_pricing ops;      /* what struct machine points at */
    const struct device_profile *prof;
    const struct model_spec *m;
    const struct strategy *st;     /* whose plan turns a split into steps */
    struct workload w;
    int ordinal[PB_MAX_DEVICES];   /* GPU of each device: copies within one GPU are cheaper */
    int n_modules;
    double *stage;                 /* [first][end], NAN until priced */
    double *copy;                  /* [at][same GPU], NAN until priced */
};

/* Price splits of m for w at prof (ordinal: each device's GPU, NULL: its own). */
int split_pricer_init(struct split_pricer *x, const struct device_profile *prof, const struct model_spec *m,
                      const struct strategy *st, const struct workload *w, const int *ordinal, int n_devices);
void split_pricer_free(struct split_pricer *x);

/* st->place with splits priced at prof (optimal's measure; NULL prof: unpriced, the
 * balanced split), for the sweep and the search alike. */
int place_priced(const struct device_profile *prof, const struct model_spec *m, const struct strategy *st,
                 const struct workload *w, const struct machine *mc, const int *ordinal, int n_devices,
                 struct placement *out);
#endif
