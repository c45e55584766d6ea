/* The executors bench knows; adding one is its own file plus one line here. The
 * MPI rank executor (exec/mpi/) is linked only into bench-mpi, which names it. */
#include <string.h>
#include "executor.h"

static const struct executor_ops *const executors[] = {&cuda_executor_ops, &model_executor_ops, NULL};

const struct executor_ops *executor_find(const char *name)
{
    for (int i = 0; executors[i]; i++)
        if (!strcmp(executors[i]->name, name)) return executors[i];
    return NULL;
}
