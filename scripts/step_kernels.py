#!/usr/bin/env python3
"""Where a decode step's time goes, from a results folder's trace.json (bench with
CUPTI at kernel detail, the default; --profile-iters 1 is enough).

A step begins at each embed kernel of a GPU; the step that runs the flash prefill
kernel is the prompt's and is left out, so the table covers the decode steps
(--prompt: the prompt passes only, each iteration's, with or without --decode). For
each kernel name (template arguments and parameters dropped): launches a step, busy
time a step, and end-to-end time a step, which charges each kernel the time from the
end of the kernel before it to its own end (its launch gap and any wait included),
so the end-to-end column adds up to the step.

    scripts/step_kernels.py RESULTS_DIR [--device D] [--prompt]

One table per (strategy, point, device). Exits 1 with a message when the folder has
no trace.json or the trace has no decode step."""
import argparse
import collections
import json
import os
import re
import sys


def short_name(name):
    name = re.sub(r"^void ", "", name)
    name = re.split(r"[<(]", name, maxsplit=1)[0]
    return name.strip()


def cut_steps(kernels, prompt):
    """The kernels of one GPU in time order, cut into steps at each embed kernel;
    the steps holding the prefill kernel dropped, or (prompt) the others."""
    steps, current = [], []
    for k in kernels:
        if short_name(k["name"]).startswith("embed_kernel") and current:
            steps.append(current)
            current = []
        current.append(k)
    if current:
        steps.append(current)
    return [s for s in steps if any("flash_prefill" in k["name"] for k in s) == prompt]


def table(steps):
    agg = collections.OrderedDict()
    spans = []
    for s in steps:
        prev_end = s[0]["ts"]
        spans.append(max(k["ts"] + k["dur"] for k in s) - s[0]["ts"])
        for k in s:
            end = k["ts"] + k["dur"]
            a = agg.setdefault(short_name(k["name"]), [0, 0.0, 0.0])
            a[0] += 1
            a[1] += k["dur"]
            a[2] += max(0.0, end - prev_end)
            prev_end = max(prev_end, end)
    n = len(steps)
    span = sum(spans) / n
    rows = sorted(agg.items(), key=lambda kv: -kv[1][2])
    return n, span, [(name, a[0] / n, a[1] / n, a[2] / n) for name, a in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results_dir")
    ap.add_argument("--device", type=int, default=None, help="only this GPU (default: every GPU)")
    ap.add_argument("--prompt", action="store_true", help="the prompt passes instead of the decode steps")
    args = ap.parse_args()
    path = os.path.join(args.results_dir, "trace.json")
    try:
        with open(path) as f:
            trace = json.load(f)
    except (OSError, ValueError) as e:
        print(f"step_kernels: cannot read {path}: {e}", file=sys.stderr)
        return 1
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    groups = collections.OrderedDict()
    for e in events:
        if e.get("ph") != "X" or e.get("cat") != "kernel":
            continue
        a = e.get("args", {})
        dev = a.get("device", e.get("pid"))
        if args.device is not None and dev != args.device:
            continue
        groups.setdefault((a.get("strategy", "?"), a.get("point", 0), dev), []).append(e)
    printed = 0
    for (strategy, point, dev), ks in groups.items():
        ks.sort(key=lambda k: k["ts"])
        steps = cut_steps(ks, args.prompt)
        if not steps:
            continue
        n, span, rows = table(steps)
        what = "prompt passes" if args.prompt else "decode steps"
        print(f"{strategy}, point {point}, GPU {dev}: {n} {what}, {span:.1f} us a step (first kernel's start "
              f"to last kernel's end)")
        print(f"  {'kernel':<48} {'launches':>9} {'busy us':>10} {'end-to-end us':>14} {'share':>6}")
        for name, launches, busy, e2e in rows:
            print(f"  {name[:48]:<48} {launches:9.1f} {busy:10.1f} {e2e:14.1f} {100 * e2e / span:5.1f}%")
        printed += 1
    if not printed:
        what = "prompt pass" if args.prompt else "decode step (run bench with --decode)"
        print(f"step_kernels: no {what} in {path} (CUPTI at kernel detail)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
