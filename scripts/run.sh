#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine with the CUDA toolkit, build bench, and run
# the main job: every strategy on the visible GPUs (or, without a GPU, the plan and
# a note on what could not be measured). Extra arguments go to bench.
#   scripts/run.sh                         # Llama-2-7B, batch 8 x 512, all strategies
#   scripts/run.sh --model llama-3-8b --batch 1 --seq 128
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CUDA_HOME:-/usr/local/cuda}/bin:$PATH"

scripts/install_deps.sh   # the packages README's test command needs too (MPI, gnuplot, ...)
command -v nvcc >/dev/null || { echo "nvcc not found: install the CUDA toolkit (13.0) or set CUDA_HOME" >&2; exit 1; }

make -j"$(nproc)" CUDA="${CUDA_HOME:-/usr/local/cuda}"
has_model=0
for a in "$@"; do [ "$a" = "--model" ] || [ "$a" = "-m" ] && has_model=1; done
if [ $has_model = 0 ]; then set -- --model models/llama-2-7b.json --batch 8 --seq 512 "$@"; fi
exec build/bench "$@"
