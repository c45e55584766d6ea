#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine with the CUDA toolkit, build bench, and run
# the main job: every strategy on the visible GPUs (or, without a GPU, the plan and
# a note on what could not be measured). Extra arguments go to bench.
#   scripts/run.sh                         # Llama-2-7B, batch 8 x 512, all strategies
#   scripts/run.sh --model llama-3-8b --batch 1 --seq 128
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CUDA_HOME:-/usr/local/cuda}/bin:$PATH"

missing=()
for pkg in make gcc pkg-config libcjson-dev gnuplot-nox; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v nvcc >/dev/null || { echo "nvcc not found: install the CUDA toolkit (13.0) or set CUDA_HOME" >&2; exit 1; }

make -j"$(nproc)"
has_model=0
for a in "$@"; do [ "$a" = "--model" ] || [ "$a" = "-m" ] && has_model=1; done
if [ $has_model = 0 ]; then set -- --model models/llama-2-7b.json --batch 8 --seq 512 "$@"; fi
exec build/bench "$@"
