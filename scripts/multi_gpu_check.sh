#!/usr/bin/env bash
# The multi-GPU run of issues 8-10 in one go, on a machine with N >= 2 GPUs, with
# bench, test_gpu and bench-mpi built: GPU tests, every strategy on N GPUs for each
# model and workload (prefill 1x128 and 8x512, generate 128 tokens at batch 1 and 16,
# pipeline with 8 microbatches), the cost model's prediction beside each row, the
# peer stack (hf-naive, hf-auto) in the same folders, and mpirun -np N against one
# process. Everything is logged under OUT.
#   scripts/multi_gpu_check.sh OUT [N] [MODEL ...]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/multi_gpu_check.sh OUT [N] [MODEL ...]}
n=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(models/llama-2-7b.json models/tinyllama-1.1b.json)
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
step() { echo "== $*" | tee -a "$out/steps.log"; }
run() { local name=$1; shift; step "$name: $*"; "$@" > "$out/$name.log" 2>&1; echo "exit $?" >> "$out/$name.log"; tail -3 "$out/$name.log" | tee -a "$out/steps.log"; }

nvidia-smi -L > "$out/gpu.txt" 2>&1
nvidia-smi topo -m > "$out/topology.txt" 2>&1
run test_gpu build/test_gpu
# The peer test against transformers (tests/gpu/test_peer_transformers.cu): its
# references written whenever python3 has torch and transformers, into build/peer
# (about 0.8 GB, kept while the script is unchanged), not under OUT.
run peer_test scripts/with_peer_reference.sh build/peer build/test_gpu peer
run calibrate build/bench --calibrate --gpus "$n" --out "$out/calibrate"
profile=$(ls "$out"/calibrate/*.json 2>/dev/null | head -1)
pred=(--predict)
[ -n "$profile" ] && pred=(--predict --gpu-profile "$profile")
for model in "${models[@]}"; do
    name=$(basename "$model" .json)
    run "$name-prefill" build/bench -m "$model" --gpus "$n" -b 1,8 -q 128,512 --microbatches 0,8 \
        -n 20 -w 3 "${pred[@]}" --explain --plot --out "$out/$name-prefill"
    run "$name-generate" build/bench -m "$model" --gpus "$n" -b 1,16 -q 128 --decode 128 \
        -n 3 -w 1 "${pred[@]}" --explain --plot --out "$out/$name-generate"
    if python3 -c "import torch, transformers, accelerate" 2>/dev/null; then
        for bq in "1 128" "8 512"; do
            set -- $bq
            run "$name-peer-$1x$2" python3 scripts/peer_hf.py --model "$model" --gpus "$n" \
                --strategies hf-naive,hf-auto --batch "$1" --seq "$2" --iters 10 --warmup 3 \
                --out "$out/$name-prefill"
        done
    fi
done
if [ -x build/bench-mpi ] && command -v mpirun >/dev/null; then
    run mpi "mpirun" --allow-run-as-root -np "$n" build/bench-mpi -m "${models[0]}" \
        -s single,naive,auto,pipeline,tp -b 8 -q 512 -n 10 -w 2 --out "$out/mpi"
    run mpi_ref build/bench -m "${models[0]}" --gpus "$n" -s single,naive,auto,pipeline,tp \
        -b 8 -q 512 -n 10 -w 2 --out "$out/mpi_ref"
fi
step done
