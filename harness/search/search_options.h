/* What the command line decides for bench --search: which objective ranks the
 * configurations and how many of the best to measure. Parsed by search_cli.c; the
 * goodput objective's request stream is --serve's (serve_options.h). */
#ifndef PB_SEARCH_OPTIONS_H
#define PB_SEARCH_OPTIONS_H

enum search_objective {
    OBJECTIVE_LATENCY,       /* the workload's predicted wall time, lowest first */
    OBJECTIVE_THROUGHPUT,    /* tokens/s of all N GPUs (replicas side by side), highest first */
    OBJECTIVE_GOODPUT,       /* requests/s within --slo of a --serve stream at one --rate, highest first */
};

struct search_options {
    int enabled;                     /* --search */
    int any_flag;                    /* --objective or --measure-top was given (refused without --search) */
    enum search_objective objective; /* --objective; default latency */
    int measure_top;                 /* --measure-top K: measure the best K on the GPUs; 0: none */
};
#endif
