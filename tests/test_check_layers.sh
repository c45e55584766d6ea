#!/usr/bin/env bash
# Proves tests/check_layers.sh fails a build that reaches up a layer: a tiny
# three-layer tree (base < models < harness) built as static libraries, clean, then
# with an upward include, an upward call and an include from outside the layers.
set -u
check=$(realpath "$(dirname "$0")/check_layers.sh")
CC=${CC:-cc}
passed=0; failed=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

make_tree() {   # $1: folder; a clean tree where models calls down into base only
    mkdir -p "$1/base" "$1/models" "$1/harness" "$1/tests"
    printf 'int base_value(void);\n' > "$1/base/value.h"
    printf '#include "value.h"\nint base_value(void) { return 1; }\n' > "$1/base/value.c"
    printf '#include "../base/value.h"\nint model_value(void) { return base_value() + 1; }\n' > "$1/models/model.c"
    printf 'int harness_value(void);\n' > "$1/harness/top.h"
    printf 'int model_value(void);\nint harness_value(void) { return model_value() + 1; }\n' > "$1/harness/top.c"
    printf 'int test_helper;\n' > "$1/tests/helper.h"
}
build_and_check() {   # $1: folder; runs the check on its libraries, returns its status
    (cd "$1" && for l in base models harness; do
        rm -f "lib$l.a"
        for c in "$l"/*.c; do "$CC" -c "$c" -o "${c%.c}.o" || exit 3; done
        ar rcs "lib$l.a" "$l"/*.o || exit 3
     done && "$check" base:libbase.a models:libmodels.a harness:libharness.a)
}
expect() {   # $1: test name, $2: wanted status (0 pass, 1 fail), $3: text the output must hold
    local name=$1 want=$2 text=$3 out rc
    out=$(build_and_check "$tmp/$name" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && grep -qF -- "$text" <<<"$out"; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name: exit $rc (wanted $want), output: $out"; failed=$((failed + 1))
    fi
}

make_tree "$tmp/test_layers_that_only_reach_down_pass"
expect test_layers_that_only_reach_down_pass 0 ""

make_tree "$tmp/test_a_model_including_a_harness_header_fails"
printf '#include "../harness/top.h"\n' >> "$tmp/test_a_model_including_a_harness_header_fails/models/model.c"
expect test_a_model_including_a_harness_header_fails 1 'models/model.c includes "../harness/top.h" (layer harness, above models)'

make_tree "$tmp/test_a_model_calling_a_harness_function_fails"
printf 'int harness_value(void);\nint model_calls_up(void) { return harness_value(); }\n' \
    > "$tmp/test_a_model_calling_a_harness_function_fails/models/up.c"
expect test_a_model_calling_a_harness_function_fails 1 'uses harness_value, defined in libharness.a (above models)'

make_tree "$tmp/test_base_including_a_test_header_fails"
printf '#include "../tests/helper.h"\n' >> "$tmp/test_base_including_a_test_header_fails/base/value.c"
expect test_base_including_a_test_header_fails 1 'base/value.c includes "../tests/helper.h" (outside the layers)'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
