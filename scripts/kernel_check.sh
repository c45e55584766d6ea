#!/usr/bin/env bash
# On a GPU machine, with build/test_gpu, build/bench_kernels and
# build/bench_decode_gemm built: the GPU tests, compute-sanitizer over the
# streaming decode kernel (memcheck, racecheck) and over the attention tests, every
# version of the decode linears side by side, the kernel-core benchmark, and the
# hf-compiled peer's decode steps; each step under its own time limit, logs under
# OUT, a short table last (docs/PERF.md records it).
#   scripts/kernel_check.sh OUT [MODEL] [PEER_BATCHES]   (PEER_BATCHES default "1 16")
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/kernel_check.sh OUT [MODEL] [PEER_BATCHES]}
model=${2:-models/llama-2-7b.json}
peer_batches=${3:-1 16}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
budget=${KERNEL_CHECK_SECONDS:-430}  # the whole script's time: later steps get what is left
start=$(date +%s)
. scripts/lib/timed_step.sh   # after the cd to the repository root
nvidia-smi -L > "$out/gpu.txt" 2>&1
nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv >> "$out/gpu.txt" 2>&1
git rev-parse --short HEAD > "$out/commit.txt" 2>/dev/null || true

step bench_decode_gemm 60 build/bench_decode_gemm "$model"
step bench_kernels 80 build/bench_kernels "$model"
step test_gpu 60 build/test_gpu
# the kernels issue 16 added or changed: the decode linears and the decode attention
step memcheck_kernels 50 "$sanitizer" --tool memcheck build/test_gpu gemm_
step memcheck_attention 30 "$sanitizer" --tool memcheck build/test_gpu attention_decode
step racecheck_stream 30 "$sanitizer" --tool racecheck build/test_gpu stream_matches
step racecheck_skinny 30 "$sanitizer" --tool racecheck build/test_gpu skinny_matches
step synccheck_stream 30 "$sanitizer" --tool synccheck build/test_gpu stream_matches
# issue 14: this command exited non-zero with "0 hazards" and no summary line
step racecheck_attention 100 "$sanitizer" --tool racecheck build/test_gpu attention
if python3 -c "import torch, transformers" 2>/dev/null; then
    for b in $peer_batches; do
        step "peer_decode_b$b" 160 python3 scripts/peer_hf.py --model "$model" --gpus 1 --strategies hf-compiled \
            --batch "$b" --seq 128 --decode 128 --iters 3 --warmup 2 --no-profile --out "$out/peer"
    done
fi

echo "== table"
cat "$out/steps.log"
for f in "$out"/test_gpu.log "$out"/memcheck_*.log "$out"/racecheck_*.log "$out"/synccheck_*.log; do
    [ -f "$f" ] && echo "$(basename "$f"): $(grep -h "passed, \|SUMMARY" "$f" | tr '\n' ' ')"
done
grep -h "^best \|version(s) failed" "$out/bench_decode_gemm.log" 2>/dev/null
grep -h "^ceilings\|^prefill\|^decode\|rows, all weights\|all weights:" "$out/bench_kernels.log" 2>/dev/null
grep -h "decode step\|failed" "$out"/peer_decode_b*.log 2>/dev/null
