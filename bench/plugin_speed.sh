#!/bin/sh
# bench/plugin_speed.sh: a cell loaded as a plug-in against the same cell built in.
#
# Alternates two processes of bench_cells, both linked with libtapegrad.so and built by
# make bench: BUILD/bench/cells_so loading BUILD/examples/plugin/mycell.so through
# TG_BENCH_PLUGIN, and BUILD/bench/cells_builtin with examples/plugin/mycell.c compiled in.
# Each runs TG_BENCH_CELLS=lstm,mycell, so it also gives mycell relative to lstm in the same
# process, which machine drift between processes does not move. 5 rounds (3 with
# TG_BENCH_QUICK=1, which the processes see too), then, medians over the rounds:
#   plugin cell=mycell hidden= threads= rounds= builtin_ms= plugin_ms= ratio=
#          builtin_vs_lstm= plugin_vs_lstm=    (ratio = plugin_ms / builtin_ms)
# Each process's mycell line is echoed first as a "#" comment. Environment: BUILD (build),
# TG_BENCH_HIDDEN (one size, default 128), TG_BENCH_THREADS, TG_BENCH_QUICK.
set -eu
BUILD=${BUILD:-build}
rounds=5
[ "${TG_BENCH_QUICK:-0}" = 0 ] || rounds=3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TG_BENCH_CELLS=lstm,mycell
i=0
while [ "$i" -lt "$rounds" ]; do
    "$BUILD/bench/cells_builtin" | grep '^cells cell=mycell ' >> "$tmp/builtin"
    TG_BENCH_PLUGIN=$BUILD/examples/plugin/mycell.so "$BUILD/bench/cells_so" |
        grep '^cells cell=mycell ' >> "$tmp/plugin"
    i=$((i + 1))
done
sed 's/^/# builtin: /' "$tmp/builtin"
sed 's/^/# plugin:  /' "$tmp/plugin"

# field FILE KEY: KEY's values, one a line
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
# median: of the numbers on stdin
median() {
    sort -n | awk '{ v[NR] = $1 }
                   END { print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'
}
b=$(field "$tmp/builtin" ms_per_step | median)
p=$(field "$tmp/plugin" ms_per_step | median)
echo "plugin cell=mycell hidden=$(field "$tmp/builtin" hidden | head -1)" \
    "threads=$(field "$tmp/builtin" threads | head -1) rounds=$rounds builtin_ms=$b" \
    "plugin_ms=$p ratio=$(awk "BEGIN { printf \"%.3f\", $p / $b }")" \
    "builtin_vs_lstm=$(field "$tmp/builtin" vs_first | median)" \
    "plugin_vs_lstm=$(field "$tmp/plugin" vs_first | median)"
