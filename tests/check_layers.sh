#!/usr/bin/env bash
# Fails (exit 1, one line per violation) when a layer reaches up: a file in a layer's
# folder includes a header from a higher layer's folder (or from outside the layers),
# or a layer's library leaves undefined a symbol that a higher layer's library defines.
# Arguments, lowest layer first: FOLDER:LIB[,LIB...] ... (a library may be omitted:
# FOLDER: checks only the includes). Run from the repository root (the Makefile does,
# before linking; tests/test_check_layers.sh proves it catches both kinds).
set -u
names=(); libs=()
for arg in "$@"; do names+=("${arg%%:*}"); libs+=("${arg#*:}"); done
n=${#names[@]}
layer_of() {   # top folder of a repository path -> its layer index, or -1
    local top=${1%%/*} i
    for ((i = 0; i < n; i++)); do [ "${names[i]}" = "$top" ] && { echo "$i"; return; }; done
    echo -1
}
bad=0
for ((i = 0; i < n; i++)); do
    dir=${names[i]}
    [ -d "$dir" ] || { echo "check_layers: no folder $dir"; exit 2; }
    while IFS= read -r file; do
        while IFS= read -r inc; do
            target=$(realpath -m --relative-to=. "$(dirname "$file")/$inc")
            j=$(layer_of "$target")
            if [ "$j" -lt 0 ] || [ "$j" -gt "$i" ]; then
                where=$([ "$j" -lt 0 ] && echo "outside the layers" || echo "layer ${names[j]}, above $dir")
                echo "layer check: $file includes \"$inc\" ($where)"
                bad=1
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
    done < <(find "$dir" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
done
defined() {    # symbols the given comma-separated libraries define: "symbol library"
    local lib
    for lib in ${1//,/ }; do
        [ -f "$lib" ] || { echo "check_layers: no library $lib" >&2; exit 2; }
        nm -g --defined-only -P "$lib" 2>/dev/null | awk -v l="$lib" 'NF >= 2 && $1 !~ /:$/ {print $1, l}'
    done
}
for ((i = 0; i < n - 1; i++)); do
    [ -n "${libs[i]}" ] || continue
    own=$(defined "${libs[i]}") || exit 2
    above=$(for ((j = i + 1; j < n; j++)); do [ -z "${libs[j]}" ] || defined "${libs[j]}" || exit 2; done) || exit 2
    for lib in ${libs[i]//,/ }; do
        # Undefined in this layer's library, not defined by the layer itself, defined above.
        out=$( { sed 's/^/own /' <<<"$own"; sed 's/^/above /' <<<"$above"
                 nm -A -u -P "$lib" 2>/dev/null | sed 's/^/undef /'; } | awk -v layer="${names[i]}" '
            $1 == "own" { own[$2] = 1; next }
            $1 == "above" { if (!($2 in above)) above[$2] = $3; next }
            { o = $2; sub(/:$/, "", o); s = $3
              if (!(s in own) && (s in above))
                  printf "layer check: %s (%s) uses %s, defined in %s (above %s)\n", o, layer, s, above[s], layer }')
        [ -z "$out" ] || { echo "$out"; bad=1; }
    done
done
exit $bad
