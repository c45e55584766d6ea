#!/usr/bin/env bash
# Pictures of a results folder, as PNG and SVG beside its data:
#   timeline-<strategy>-b<batch>-s<seq>[-m<M>]  one lane per GPU and stream; compute, communication and
#                           copies in distinct colours; microbatches labelled
#   util-b<batch>-s<seq>    utilisation per GPU per strategy, stacked: compute / comm / copy / idle
#   sweep-<knob>            throughput and latency against microbatches, batch or seq
#   bubble                  the pipeline's measured bubble beside the GPipe bound (p-1)/(m+p-1)
#   plan                    (a --plan folder) parameters and nominal work per GPU
# The data comes from `bench plot-data DIR` (bench --plot writes it itself).
#   scripts/plot.sh results/20250101-120000-llama-2-7b
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 RESULTS_DIR   (a folder written by bench: summary.csv, trace.json or plan.csv)" >&2
    exit 2
fi
dir=$1
data="$dir/plot-data"
repo="$(cd "$(dirname "$0")/.." && pwd)"
bench="${BENCH:-$repo/build/bench}"

if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot.sh: gnuplot is not installed, so no pictures were drawn." >&2
    echo "plot.sh: install it with:  sudo apt-get install gnuplot-nox   then run: $0 $dir" >&2
    exit 0
fi

# Convert unless bench has just done it (bench --plot) or the data is newer than its sources.
stale=1
if [ -n "${PLACEBENCH_PLOT_DATA_READY:-}" ]; then
    stale=0
elif [ -f "$data/plots.txt" ]; then
    stale=0
    for f in summary.csv trace.json plan.csv; do
        if [ -f "$dir/$f" ] && [ "$dir/$f" -nt "$data/plots.txt" ]; then stale=1; fi
    done
fi
if [ $stale = 1 ]; then
    if [ -x "$bench" ] && "$bench" plot-data "$dir" >/dev/null; then
        :
    elif [ -f "$data/plots.txt" ]; then
        echo "plot.sh: warning: could not refresh $data with '$bench plot-data'; drawing the data already there" >&2
    else
        echo "plot.sh: no plot data in $data and '$bench plot-data $dir' failed; build bench (make) or set BENCH" >&2
        exit 1
    fi
fi

# Colours: keep in step with plot_kind_rgb in harness/report/plot_data.c.
common='
set encoding utf8
set style fill solid 1.0 noborder
set key outside top center horizontal noenhanced
set grid xtics ytics lc rgb "#dddddd"
C_COMPUTE = "#4C72B0"; C_COMM = "#DD8452"; C_COPY = "#55A868"; C_MEMSET = "#8C8C8C"; C_IDLE = "#E8E8E8"
# Curves: 20 distinct colours (tab20: ten hues, then their light tints) and 5 point shapes, so
# up to 20 series (a sweep over many strategies and settings) never share a look.
array LT[20] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", \
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", \
    "#c7c7c7", "#dbdb8d", "#9edae5"]
do for [i=1:20] { set linetype i lc rgb LT[i] lw 2 pt (i - 1) % 5 * 2 + 5 }
set linetype cycle 20
'

draw_timeline() {   # $1 = name
    cat <<GP
load "$1.gp"
set title TITLE noenhanced
set xlabel "ms from the start of the iteration (one window for all GPUs)"
set style fill solid 1.0 border rgb "#ffffff"
# Short all-reduces and copies (a tp layer's 0.1 ms in 50) would vanish under the white
# borders that separate compute steps: they are drawn again on top, borderless.
plot "$1.dat" index 0 using ((\$1+\$2)/2):((\$3+\$4)/2):1:2:3:4:5 with boxxyerror lc rgb variable notitle, \\
     "$1.dat" index 0 using (strcol(6) eq "compute" ? NaN : (\$1+\$2)/2):((\$3+\$4)/2):1:2:3:4:5 \\
         with boxxyerror fs solid 1.0 noborder lc rgb variable notitle, \\
     NaN with boxes fs solid lc rgb C_COMPUTE title "compute", \\
     NaN with boxes fs solid lc rgb C_COMM title "communication (NCCL)", \\
     NaN with boxes fs solid lc rgb C_COPY title "copy (GPU to GPU, host)", \\
     NaN with boxes fs solid lc rgb C_MEMSET title "memset", \\
     "$1.dat" index 1 using 1:2:3 with labels font ",8" tc rgb "#000000" notitle
GP
}

draw_util() {
    cat <<GP
load "$1.gp"
set title TITLE noenhanced
set style data histograms
set style histogram rowstacked
set style fill solid 1.0 border rgb "#ffffff"
set boxwidth 0.75
set ylabel "% of the shared window"
set yrange [0:*]
set xtics rotate by -30 noenhanced
plot "$1.dat" using 2:xtic(1) title "compute" lc rgb C_COMPUTE, \\
     "" using 3 title "communication" lc rgb C_COMM, \\
     "" using 4 title "copy" lc rgb C_COPY, \\
     "" using 5 title "idle" lc rgb C_IDLE
GP
}

draw_sweep() {
    cat <<GP
load "$1.gp"
set multiplot layout 1,2 title TITLE noenhanced
set key below
set offsets graph 0.05, graph 0.05, 0, 0
set yrange [0:*]
set ylabel "tokens/s"
plot for [i=1:CURVES] "$1.dat" index (i-1) using 1:2 with linespoints lt i title T[i]
set ylabel "latency p50 (ms)"
plot for [i=1:CURVES] "$1.dat" index (i-1) using 1:3 with linespoints lt i title T[i]
unset multiplot
GP
}

draw_bubble() {
    cat <<GP
load "$1.gp"
set title TITLE noenhanced
set xlabel "microbatches m"
set ylabel "bubble: idle fraction of the window"
set xrange [0.5:MMAX+0.5]
set yrange [0:1]
set samples 200
plot "$1.dat" using 1:2 with linespoints pt 7 lc rgb C_COMPUTE title sprintf("pipeline, %s (mean over stages)", KIND), \\
     "" using 1:3 with points pt 6 ps 1.8 lc rgb C_COMM title "GPipe bound at these m", \\
     (P-1)/(x+P-1) with lines dt 2 lc rgb C_COMM title sprintf("(p-1)/(m+p-1), p = %d", P)
GP
}

draw_plan() {
    cat <<GP
load "$1.gp"
set style data histograms
set style histogram clustered gap 1
set style fill solid 1.0 border rgb "#ffffff"
set multiplot layout 1,2 title TITLE noenhanced
set ylabel "parameters (GiB)"
plot for [c=2:COLS+1] "$1.dat" index 0 using c:xtic(1) title columnheader(c)
set ylabel "nominal work (ms)"
plot for [c=2:COLS+1] "$1.dat" index 1 using c:xtic(1) title columnheader(c)
unset multiplot
GP
}

# Size: timelines grow with their lanes; the rest are fixed.
size_of() {   # $1 = type, $2 = name
    case $1 in
        timeline) lanes=$(sed -n 's/^LANES = //p' "$data/$2.gp")
                  case "$lanes" in ''|*[!0-9]*) lanes=1 ;; esac   # digits only reach $(( ))
                  echo "1400,$((160 + 46 * lanes))" ;;
        sweep|plan) echo "1400,560" ;;
        *) echo "1100,600" ;;
    esac
}

wrote=()
# gnuplot runs inside $data and sees only names bench made of letters, digits, - and _:
# no path (which may hold a model's file name) ever reaches its command line.
while read -r type name; do
    [ -n "$type" ] || continue
    case "$type$name" in
        *[!A-Za-z0-9_-]*) echo "plot.sh: skipping \"$type $name\" in plots.txt: not a name bench writes" >&2; continue ;;
    esac
    body=$(draw_"$type" "$name")
    size=$(size_of "$type" "$name")
    for fmt in png svg; do
        if [ $fmt = png ]; then term="pngcairo size $size font \"sans,10\""; else term="svg size $size dynamic font \"sans,10\""; fi
        out="$dir/$name.$fmt"
        # Draw to a temporary name, then rename: no half picture under the final name.
        tmp="$name.$fmt.tmp.$$"
        if ! (cd "$data" && gnuplot) 2>"$data/$name.$fmt.log" <<GP
set terminal $term
set output "../$tmp"
$common
$body
set output
GP
        then
            rm -f "$dir/$tmp"
            echo "plot.sh: gnuplot failed on $name ($fmt):" >&2
            cat "$data/$name.$fmt.log" >&2
            exit 1
        fi
        mv -f "$dir/$tmp" "$out"
        rm -f "$data/$name.$fmt.log"
        wrote+=("$out")
    done
done < "$data/plots.txt"

echo "plot.sh: wrote ${#wrote[@]} picture(s) in $dir:"
for f in "${wrote[@]}"; do echo "  $f"; done
