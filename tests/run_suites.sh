#!/usr/bin/env bash
# Runs each test suite given as an argument (a command line), shows its output,
# and ends with one line totalling them: "N passed, N failed".
passed=0; failed=0; status=0
for suite in "$@"; do
    echo "== $suite"
    out=$(mktemp)
    bash -c "$suite" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
    rm -f "$out"
    if [ -z "$last" ]; then
        echo "suite \"$suite\" ended without a result line (exit $rc)"
        failed=$((failed + 1)); status=1; continue
    fi
    p=${last%% passed*}; f=${last#*, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" = 0 ] || status=1
done
echo "$passed passed, $failed failed"
exit $status
