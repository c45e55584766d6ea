#!/usr/bin/env python3
"""Predicted against measured, per point, from every summary.csv under a folder
(scripts/gpu_check.sh's OUT): one Markdown row per measured point with a prediction,
and the CUPTI perturbation of its profiled iterations, for docs/PERF.md."""
import csv
import glob
import os
import sys


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: scripts/prediction_table.py OUT (a folder holding results folders)", file=sys.stderr)
        return 2
    paths = sorted(glob.glob(os.path.join(sys.argv[1], "**", "summary.csv"), recursive=True))
    if not paths:
        print(f"{sys.argv[1]}: no summary.csv under it", file=sys.stderr)
        return 2
    print("| run | strategy | mode | batch x seq (+ tokens) | mb | measured p50 ms | predicted ms | error % "
          "| cupti +% |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in paths:
        run = os.path.relpath(os.path.dirname(path), sys.argv[1])
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("status") != "ok" or r.get("predicted") == "1":
                    continue
                shape = f"{r['batch']} x {r['seq']}" + (f" + {r['decode_tokens']}" if r["decode_tokens"] != "0" else "")
                print(f"| {run} | {r['strategy']} | {r['mode']} | {shape} | {r['microbatches']} | "
                      f"{r['latency_p50_ms']} | {r.get('predicted_ms') or '-'} | "
                      f"{r.get('prediction_error_pct') or '-'} | {r.get('cupti_overhead_pct') or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
