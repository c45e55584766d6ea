# Sourced by the device scripts (kernel_check.sh, kernel_check_decode.sh): `step
# NAME SECONDS CMD...` runs CMD under a time limit, its output in $out/NAME.log, and
# appends its exit status and seconds to $out/steps.log. The whole script has
# $budget seconds from $start: a step gets at most what is left, and is not run
# when that is under 8 s. Needs out, budget and start set.
step() {
    local name=$1 limit=$2 t0 left
    shift 2
    t0=$(date +%s)
    left=$(( budget - (t0 - start) - 3 ))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 8 ]; then echo "$name: not run, out of time" | tee -a "$out/steps.log"; return; fi
    timeout -k 3 "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc, $(( $(date +%s) - t0 )) s (limit $limit)" | tee -a "$out/steps.log"
}
