#!/usr/bin/env bash
# The README's answer until a 2-GPU machine measures it: the cost model's run of
# every strategy for Llama-2-7B on 2 x H200 (NVLink), batch 8 x 512, kept under
# results/reference-predicted/. Every number in it is marked predicted.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/reference-predicted
rm -rf "$out.new"
build/bench --model models/llama-2-7b.json --simulate --gpu-profile h200 --gpus 2 \
    --batch 8 --seq 512 --microbatches 2,4,8 --explain --plot --out "$out.new"
# keep what a reader opens; the SVGs and plot data are rebuilt by `bench plot DIR`, the
# per-GPU HTA traces by a run (trace.json holds every point)
rm -rf "$out.new/plot-data" "$out.new"/*.svg "$out.new/hta"
rm -rf "$out" && mv "$out.new" "$out"
