#!/usr/bin/env bash
# tests/mpi/scaling.sh: 2 ranks x 1 thread vs 1 rank x 2 threads (and 1 x 1) on the default
# char-LM (LSTM 2 x 128, batch 50, seq 50), ROUNDS interleaved rounds of STEPS steps; prints
# every run's tokens/s, the medians, and how far the 2-rank run is from the 1-rank one.
# Usage: tests/mpi/scaling.sh [BUILD=build/mpi] [ROUNDS=3] [STEPS=30]
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build/mpi}
ROUNDS=${2:-3}
STEPS=${3:-30}
BIN=$BUILD/examples/charlm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
COMMON=(train --steps "$STEPS" --eval-every 0 --val-frac 0 --quiet)
tps() { sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p' "$1" | tail -1; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for r in $(seq "$ROUNDS"); do
    "$BIN" "${COMMON[@]}" --threads 2 --log "$work/a.csv" --save "$work/a.ckpt" >"$work/a.txt"
    a=$(tps "$work/a.txt")
    mpirun --allow-run-as-root -np 2 "$BIN" "${COMMON[@]}" --threads 1 --log "$work/b.csv" \
        --save "$work/b.ckpt" >"$work/b.txt"
    b=$(tps "$work/b.txt")
    "$BIN" "${COMMON[@]}" --threads 1 >"$work/c.txt"
    c=$(tps "$work/c.txt")
    echo "round $r: 1 rank x 2 threads $a tok/s | 2 ranks x 1 thread $b tok/s |" \
         "1 rank x 1 thread $c tok/s | load $(cut -d' ' -f1 /proc/loadavg)"
    echo "$a $b $c" >>"$work/all.txt"
done
sort_col() { awk -v c="$1" '{ print $c }' "$work/all.txt" | sort -g | awk '{ v[NR] = $1 }
    END { print v[int((NR + 1) / 2)] }'; }
echo "median: 1x2 $(sort_col 1) | 2x1 $(sort_col 2) | 1x1 $(sort_col 3) tok/s"
paste -d' ' <(awk -F, 'NR > 1 { print $2 }' "$work/a.csv") \
            <(awk -F, 'NR > 1 { print $2 }' "$work/b.csv") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END {
        printf "2 ranks vs 1: max |loss diff| over %d steps %.3g (log resolution 1e-6)\n", NR, m }'
echo "2 ranks vs 1: parameters after $STEPS steps: $(python3 tests/mpi/ckpt_diff.py \
    "$work/a.ckpt" "$work/b.ckpt")"
