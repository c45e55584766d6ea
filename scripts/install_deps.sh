#!/usr/bin/env bash
# The one list of distribution packages placebench needs (Debian/Ubuntu): README's
# first command (scripts/run.sh) and CI (.ci/run) both install through this script,
# so the two cannot drift. Installs only what is missing; needs root or sudo.
# The CUDA 13 toolkit and NCCL are not in it: they come from NVIDIA (the Makefile
# says how when it cannot find them).
#   scripts/install_deps.sh          # install what is missing
#   scripts/install_deps.sh --list   # print the list, one package a line
set -euo pipefail

packages=(
    make gcc pkg-config   # the build
    clang                 # make fuzz: libFuzzer targets (CI runs them)
    libcjson-dev          # config.json, safetensors headers, summary.json
    gnuplot-nox           # --plot and bench plot
    openmpi-bin libopenmpi-dev   # make MPI=1: bench-mpi and the 2-rank tests (mpi.h)
    python3               # scripts/peer_hf.py's syntax check in the tests
    chromium              # the report screenshot test (headless)
)

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi
if [ $# -gt 0 ]; then
    echo "usage: scripts/install_deps.sh [--list]" >&2
    exit 2
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
