#!/usr/bin/env bash
# On a GPU machine, with test_gpu, bench_kernels and bench_decode_gemm in BIN
# (default ., the repository root's build/ if run from there: BIN=build), the tests of
# issue 16's new decode kernels first (a hang there must not eat the benchmarks'
# time), then the kernel-core benchmarks, the GPU suite and compute-sanitizer over
# the new kernels; each step under its own limit, logs under OUT, a short summary
# last (docs/PERF.md). STEPS picks the steps; DECODE_ONLY=1 skips bench_decode_gemm's
# prefill candidates.
#   scripts/kernel_check_decode.sh OUT MODEL [BUDGET_SECONDS]
set -uo pipefail
out=${1:?usage: kernel_check_decode.sh OUT MODEL [BUDGET_SECONDS]}
model=${2:?model json}
budget=${3:-310}
bin=${BIN:-.}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
start=$(date +%s)
. "$(dirname "${BASH_SOURCE[0]}")/lib/timed_step.sh"
nvidia-smi -L > "$out/gpu.txt" 2>&1
nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv >> "$out/gpu.txt" 2>&1
for s in ${STEPS:-tests bench_kernels bench_decode_gemm test_gpu memcheck racecheck}; do
    case $s in
    tests) step tests_async 40 "$bin/test_gpu" async ;;
    tests_attention) step tests_attention 30 "$bin/test_gpu" attention_decode ;;
    bench_kernels) step bench_kernels 110 "$bin/bench_kernels" "$model" ;;
    bench_decode_gemm) step bench_decode_gemm 100 "$bin/bench_decode_gemm" "$model" ${DECODE_ONLY:+decode} ;;
    test_gpu) step test_gpu 70 "$bin/test_gpu" ;;
    memcheck)
        step memcheck_skinny 25 "$sanitizer" --tool memcheck "$bin/test_gpu" skinny_async_matches
        step memcheck_attention 30 "$sanitizer" --tool memcheck "$bin/test_gpu" attention_decode ;;
    racecheck)
        step racecheck_skinny 25 "$sanitizer" --tool racecheck "$bin/test_gpu" skinny_async_matches
        step racecheck_attention 40 "$sanitizer" --tool racecheck "$bin/test_gpu" attention_decode ;;
    synccheck) step synccheck_skinny 25 "$sanitizer" --tool synccheck "$bin/test_gpu" skinny_async_matches ;;
    esac
done
echo "== summary"
cat "$out/steps.log"
for f in "$out"/test*.log "$out"/memcheck_*.log "$out"/racecheck_*.log "$out"/synccheck_*.log; do
    [ -f "$f" ] && echo "$(basename "$f"): $(grep -h "passed, \|SUMMARY\|check failed\|differ\|error" "$f" | head -8 | tr '\n' ' ')"
done
grep -h "^best \|version(s) failed" "$out/bench_decode_gemm.log" 2>/dev/null
grep -h "^ceilings\|^prefill\|^decode\|rows, all weights\|all weights:\|^gemv\|same with\|decode attention alone" "$out/bench_kernels.log" 2>/dev/null
