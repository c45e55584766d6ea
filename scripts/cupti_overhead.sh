#!/usr/bin/env bash
# What CUPTI costs the iterations it profiles, one line per tracing variant
# (PB_CUPTI_MODE, harness/measure/cupti_mode.h, and --profile-detail), at a 1x128
# prefill and a batch-1 generate of 32 decode steps, against the same point with
# --no-cupti. Issue 19's target: profiled within 5% of untraced at both.
#   scripts/cupti_overhead.sh OUT [MODEL]
# Columns: the variant; the timed p50 (CUPTI paused) and the profiled p50 of the
# same run, and their difference (cupti +%, summary.csv's cupti_overhead_pct);
# the profiled p50 against the --no-cupti run's p50 (vs untraced +%). Logs and
# results folders are kept under OUT. CUPTI_VARIANTS (a comma list of the names
# below, e.g. "kernel,default step,default" separated by spaces) runs only those.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/cupti_overhead.sh OUT [MODEL]}
model=${2:-models/llama-2-7b.json}
mkdir -p "$out"
prefill=(-s single -b 1 -q 128 -n 50 -w 5)
decode=(-s single -b 1 -q 128 --decode 32 -n 5 -w 1)

# name, PB_CUPTI_MODE, extra flags
# (the first is the default; the last is the tree before this script: nogate,cuptizero)
variants=(
    "kernel,default|gate,copies,ownzero|"
    "kernel,nogate|nogate,copies,ownzero|"
    "kernel,cuptizero|gate,copies,cuptizero|"
    "kernel,nocopies|gate,nocopies,ownzero|"
    "kernel,nogate,nocopies|nogate,nocopies,ownzero|"
    "step,default|gate,copies,ownzero|--profile-detail step"
    "step,nogate,cuptizero|nogate,copies,cuptizero|--profile-detail step"
    "kernel,nogate,cuptizero|nogate,copies,cuptizero|"
)

# field of summary.csv's first row by column name
field() {
    python3 - "$1" "$2" <<'PY'
import csv, sys
with open(sys.argv[1]) as f:
    row = next(csv.DictReader(f), None)
print(row.get(sys.argv[2], "") if row else "")
PY
}

point() {   # name, point args...
    local name=$1; shift
    local base="$out/$name-nocupti"
    build/bench -m "$model" "$@" --no-cupti --out "$base" > "$base.log" 2>&1 || { echo "$name --no-cupti failed: $base.log"; return; }
    local untraced; untraced=$(field "$base/summary.csv" latency_p50_ms)
    printf '%-10s %-24s %10s %12s %9s %16s\n' point variant "timed p50" "profiled p50" "cupti +%" "vs untraced +%"
    printf '%-10s %-24s %10.3f %12s %9s %16s\n' "$name" "--no-cupti" "$untraced" - - -
    for v in "${variants[@]}"; do
        IFS='|' read -r vname mode flags <<< "$v"
        if [ -n "${CUPTI_VARIANTS:-}" ] && [[ " $CUPTI_VARIANTS " != *" $vname "* ]]; then continue; fi
        local dir="$out/$name-${vname//,/-}"
        # shellcheck disable=SC2086
        if ! PB_CUPTI_MODE=$mode build/bench -m "$model" "$@" $flags --out "$dir" > "$dir.log" 2>&1; then
            echo "$name $vname failed: $dir.log"
            continue
        fi
        local timed prof pct
        timed=$(field "$dir/summary.csv" latency_p50_ms)
        prof=$(field "$dir/summary.csv" profiled_p50_ms)
        pct=$(field "$dir/summary.csv" cupti_overhead_pct)
        printf '%-10s %-24s %10.3f %12.3f %9.1f %16.1f\n' "$name" "$vname" "$timed" "$prof" "$pct" \
            "$(python3 -c "print(($prof - $untraced) / $untraced * 100)")"
    done
}

{
    point prefill "${prefill[@]}"
    point decode "${decode[@]}"
} | tee "$out/cupti_overhead.txt"
