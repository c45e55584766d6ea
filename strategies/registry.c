/* The strategies bench knows; adding one is its own file plus one line here. */
#include <string.h>
#include "strategy.h"

extern const struct strategy single_strategy, naive_strategy, auto_strategy, optimal_strategy,
    pipeline_strategy, tp_strategy, hybrid_strategy;

const struct strategy *const strategies[] = {
    &single_strategy, &naive_strategy, &auto_strategy, &optimal_strategy, &pipeline_strategy,
    &tp_strategy, &hybrid_strategy, NULL,
};

const struct strategy *strategy_find(const char *name)
{
    for (int i = 0; strategies[i]; i++)
        if (!strcmp(strategies[i]->name, name)) return strategies[i];
    return NULL;
}

int strategy_takes_microbatches(const char *name)
{
    const struct strategy *s = strategy_find(name);
    return s && s->takes_microbatches;
}
