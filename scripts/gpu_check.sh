#!/usr/bin/env bash
# On a GPU machine, with bench, test_gpu and (optionally) bench-mpi built: the GPU
# tests, then the one-GPU measurements docs/PERF.md records, everything logged
# under OUT. Logical devices (--devices 0,0) stand in for a second GPU.
#   scripts/gpu_check.sh OUT [MODEL]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_check.sh OUT [MODEL]}
model=${2:-models/llama-2-7b.json}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
step() { echo "== $*" | tee -a "$out/steps.log"; }
run() { local name=$1; shift; step "$name: $*"; "$@" > "$out/$name.log" 2>&1; echo "exit $?" >> "$out/$name.log"; tail -3 "$out/$name.log" | tee -a "$out/steps.log"; }

nvidia-smi -L > "$out/gpu.txt" 2>&1
git rev-parse --short HEAD > "$out/commit.txt" 2>/dev/null || true
run test_gpu build/test_gpu
# The peer test against transformers (tests/gpu/test_peer_transformers.cu): its
# references written whenever python3 has torch and transformers, into build/peer
# (about 0.8 GB, kept while the script is unchanged), not under OUT.
run peer_test scripts/with_peer_reference.sh build/peer build/test_gpu peer
[ -x build/bench_kernels ] && run bench_kernels build/bench_kernels "$model"
run calibrate build/bench --calibrate -m "$model" --out "$out/calibrate"
profile=$(ls "$out"/calibrate/*.json 2>/dev/null | head -1)
pred=(--predict)
[ -n "$profile" ] && pred=(--predict --gpu-profile "$profile")
run prefill_8x512 build/bench -m "$model" -s single,naive,auto,optimal,pipeline --devices 0,0 \
    -b 8 -q 512 -n 20 -w 3 "${pred[@]}" --explain --out "$out/prefill_8x512"
run prefill_1x128 build/bench -m "$model" -s single,naive,pipeline --devices 0,0 \
    -b 1,4 -q 128 -n 30 -w 5 "${pred[@]}" --out "$out/prefill_1x128"
run nocupti_1x128 build/bench -m "$model" -s single -b 1 -q 128 -n 50 -w 5 --no-cupti --out "$out/nocupti_1x128"
run cupti_1x128 build/bench -m "$model" -s single -b 1 -q 128 -n 50 -w 5 --out "$out/cupti_1x128"
# CUPTI's perturbation with one record per replayed graph instead of one per kernel.
run cupti_step_1x128 build/bench -m "$model" -s single -b 1 -q 128 -n 50 -w 5 --profile-detail step \
    --out "$out/cupti_step_1x128"
run decode_step build/bench -m "$model" -s single -b 1 -q 128 --decode 32 -n 5 -w 1 --profile-detail step \
    --out "$out/decode_step"
run decode build/bench -m "$model" -s single -b 1,16 -q 128 --decode 128 -n 3 -w 1 "${pred[@]}" --out "$out/decode"
if [ -x build/bench-mpi ] && command -v mpirun >/dev/null; then
    run mpi_np1 mpirun --allow-run-as-root -np 1 build/bench-mpi -m models/llama-tiny.json \
        -s single,naive,pipeline -b 4 -q 64 -n 5 -w 2 --out "$out/mpi_np1"
    run mpi_ref build/bench -m models/llama-tiny.json --devices 0 -s single,naive,pipeline \
        -b 4 -q 64 -n 5 -w 2 --out "$out/mpi_ref"
fi
# The peer stack beside ours, rows appended to the same summary.csv files.
if python3 -c "import torch, transformers, accelerate" 2>/dev/null; then
    run peer_tiny python3 scripts/peer_hf.py --model models/llama-tiny.json --gpus 1 \
        --strategies hf-single,hf-naive,hf-auto --batch 4 --seq 64 --iters 5 --warmup 2 --out "$out/mpi_ref"
    run peer_1x128 python3 scripts/peer_hf.py --model "$model" --gpus 1 --strategies hf-single,hf-auto \
        --batch 1 --seq 128 --iters 10 --warmup 3 --out "$out/prefill_1x128"
    # the strongest single-GPU peer without a serving engine (static cache + torch.compile)
    # beside our decode rows: its per-step figure is printed in the log and peer_hf.json
    for b in 1 16; do
        run "peer_compiled_decode_b$b" python3 scripts/peer_hf.py --model "$model" --gpus 1 \
            --strategies hf-compiled --batch "$b" --seq 128 --decode 128 --iters 3 --warmup 2 --no-profile \
            --out "$out/decode"
    done
fi
python3 scripts/prediction_table.py "$out" > "$out/prediction_table.md" 2>&1
step "predicted against measured: $out/prediction_table.md"
step done
