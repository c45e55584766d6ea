/* Everything the command line decides, parsed once by main. */
#ifndef PB_OPTIONS_H
#define PB_OPTIONS_H
#include "../../strategies/strategy.h"
#include "../serve/serve_options.h"
#include "../search/search_options.h"
#include "../../kernels/allreduce_algo.h"


struct options {
    const char *model_path;
    const char *strategies[PB_MAX_LIST];
    int n_strategies;
    int strategies_named;            /* 1: --strategy gave the list; 0: every strategy, by default */
    int gpus;                        /* N; 0 = all visible */
    int devices[PB_MAX_DEVICES];     /* --devices 0,0: logical device -> CUDA ordinal */
    int n_devices_listed;
    int batches[PB_MAX_LIST], n_batches;
    int seqs[PB_MAX_LIST], n_seqs;
    int microbatches[PB_MAX_LIST], n_microbatches;   /* 0 entry = default */
    int decode_tokens;               /* --decode T: generate T greedy tokens */
    enum dtype dtype;
    struct machine machine;          /* memory budgets and --device-map policy */
    int max_memory_given;
    int plan_only;                   /* --plan */
    int simulate;                    /* --simulate */
    const char *gpu_profile;         /* --gpu-profile NAME or path */
    int predict, calibrate, plot, explain;
    int iters, warmup;
    int profile_iters;               /* --profile-iters: CUPTI-traced iterations after the timed ones */
    int no_cupti;
    int profile_steps;               /* --profile-detail step: one record per replayed graph, not per kernel */
    int use_graph;                   /* replay prefill and decode passes from CUDA graphs */
    enum allreduce_algo allreduce;   /* --allreduce: tp sums by NCCL, peer memory, or auto by size */
    const char *weights;             /* safetensors folder (--weights DIR, or the --model folder's); NULL: random */
    int weights_random;              /* --weights random: random weights even for a model folder */
    uint64_t seed;
    struct serve_options serve;      /* --serve and its flags (harness/serve/) */
    struct search_options search;    /* --search and its flags (harness/search/) */
    const char *out_dir;             /* --out DIR; default results/<timestamp>-<model> */
    char command[2048];              /* the command line, for reports */
};
#endif
