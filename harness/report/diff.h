/* bench diff: two results folders (or two strategies of one) side by side, per GPU
 * and per step kind: what took longer and where the idle time moved. Reads only
 * summary.json (its per_gpu work_ms, idle causes, MBU and MFU). */
#ifndef PB_DIFF_H
#define PB_DIFF_H
#include <stdio.h>

/* `bench diff A B [--strategies X,Y]` or `bench diff DIR --strategies X,Y`; argv[0]
 * is "diff". Points are paired by workload (mode, batch, seq, decode tokens) and,
 * across folders, by strategy and microbatches; with --strategies side A is X and
 * side B is Y. Writes the comparison to out. Returns the exit status: 0, or 2 for
 * bad usage or input (a folder without summary.json, no point in common). */
int diff_main(int argc, char **argv, FILE *out);
#endif
