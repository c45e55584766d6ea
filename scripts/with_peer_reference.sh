#!/usr/bin/env bash
# Runs a command (the GPU suite, or part of it) with PB_PEER_DIR naming
# transformers' references for the peer test (tests/gpu/test_peer_transformers.cu):
#  - PB_PEER_DIR already set: used as it is;
#  - else, where python3 can import torch and transformers: DIR, written by
#    scripts/make_peer_reference.py (kept if it already holds the references of
#    the script as it is now);
#  - else the command runs without it: this says so, and the suite reports the
#    peer tests as skipped.
#   scripts/with_peer_reference.sh DIR COMMAND [ARG ...]
# e.g. scripts/with_peer_reference.sh build/peer build/test_gpu peer
set -uo pipefail
usage="usage: scripts/with_peer_reference.sh DIR COMMAND [ARG ...]"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
dir=$1
shift
if [ -n "${PB_PEER_DIR:-}" ]; then
    echo "peer references: PB_PEER_DIR=$PB_PEER_DIR"
elif python3 -c "import torch, transformers, safetensors" 2>/dev/null; then
    python3 "$(dirname "$0")/make_peer_reference.py" "$dir" --reuse ||
        { echo "peer references: scripts/make_peer_reference.py $dir failed" >&2; exit 1; }
    export PB_PEER_DIR=$dir
else
    echo "peer test against transformers SKIPPED: python3 cannot import torch, transformers and safetensors" \
         "(or set PB_PEER_DIR to references written elsewhere by scripts/make_peer_reference.py)"
fi
exec "$@"
