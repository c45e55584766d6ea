"""Holistic Trace Analysis on a folder of rank-N.json traces: one line per rank,
"rank idle_us compute_us non_compute_us kernel_us overlap_ratio", for tests/test_hta.c."""
import logging
import sys

logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis  # noqa: E402

analyzer = TraceAnalysis(trace_dir=sys.argv[1], include_last_profiler_step=True)
breakdown = analyzer.get_temporal_breakdown(visualize=False).set_index("rank")
overlap = analyzer.get_comm_comp_overlap(visualize=False).set_index("rank")
for rank, row in breakdown.iterrows():
    print(rank, row["idle_time(us)"], row["compute_time(us)"], row["non_compute_time(us)"],
          row["kernel_time(us)"], overlap.loc[rank, "comp_comm_overlap_pctg"] / 100)
