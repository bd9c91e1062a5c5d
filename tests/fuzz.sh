#!/usr/bin/env bash
# tests/fuzz.sh: runs each libFuzzer target for a bounded time and summarises it (make fuzz).
#
#   tests/fuzz.sh FUZZ_DIR SECONDS fuzz_NAME...
#
# FUZZ_DIR/fuzz_NAME is run for SECONDS from the seeds in tests/fuzz_seeds/NAME and the
# crash inputs kept in tests/fuzz_regress/NAME (both read-only); new inputs go to
# FUZZ_DIR/corpus/NAME, crash inputs to FUZZ_DIR/crashes/NAME/. One line per target:
#   fuzz_NAME: N execs in S s (E exec/s), corpus C inputs, cov X ft Y, no findings
# A finding prints the fuzzer's report and the input to keep (copy it into
# tests/fuzz_regress/NAME/ once fixed: `make reliability` then replays it) and fails.
set -u
DIR=${1:?usage: tests/fuzz.sh FUZZ_DIR SECONDS fuzz_NAME...}
SECS=${2:?usage: tests/fuzz.sh FUZZ_DIR SECONDS fuzz_NAME...}
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
status=0
for t in "$@"; do
    name=${t#fuzz_}
    bin=$DIR/$t
    corpus=$DIR/corpus/$name
    crashes=$DIR/crashes/$name
    log=$DIR/$t.log
    mkdir -p "$corpus" "$crashes" "$DIR/tmp"
    seeds=()
    for d in "$ROOT/tests/fuzz_seeds/$name" "$ROOT/tests/fuzz_regress/$name"; do
        [ -d "$d" ] && seeds+=("$d")
    done
    # one OpenMP thread: the targets run no parallel code and libFuzzer wants one thread
    OMP_NUM_THREADS=1 TMPDIR="$DIR/tmp" "$bin" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" \
        > "$log" 2>&1
    rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    secs=$(grep -o 'DONE\|Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | grep -o '[0-9]* second' | grep -o '[0-9]*')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]* ft: [0-9]*')
    ninputs=$(find "$corpus" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        echo "$t: ${execs:-?} execs in ${secs:-$SECS} s (${rate:-?} exec/s), corpus $ninputs inputs, ${cov:-cov ?}, no findings"
    else
        status=1
        echo "$t: FINDING after ${execs:-?} execs (exit $rc); report:"
        grep -v '^#[0-9]' "$log" | tail -60 | sed 's/^/    /'
        for f in "$crashes"/*; do
            [ -f "$f" ] && echo "    input kept: $f (copy into tests/fuzz_regress/$name/)"
        done
    fi
done
exit $status
