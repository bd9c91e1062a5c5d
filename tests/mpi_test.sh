#!/usr/bin/env bash
# tests/mpi_test.sh: data-parallel training over MPI (docs/MPI.md): the tg_dist API on 2 and 3
# ranks, 2-rank vs 1-rank training, bit-identical reruns, resume across rank counts,
# dropout, a rank killed or hung mid-run, a graceful stop. Usage: tests/mpi_test.sh [BUILD]
# where BUILD holds an MPI=1 build (default build/mpi; `make mpi-test` builds it first).
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build/mpi}
BIN=$BUILD/examples/charlm
LIB=$BUILD/libtapegrad.a
for f in "$BIN" "$LIB"; do
    [ -e "$f" ] || { echo "mpi test: $f is missing (run: make MPI=1)"; exit 1; }
done
command -v mpirun >/dev/null || { echo "mpi test: mpirun not found (openmpi-bin)"; exit 1; }
MPIRUN=(mpirun --oversubscribe --allow-run-as-root)
# containers often forbid the cross-memory attach Open MPI's shared-memory transport tries
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
TOL=1e-5   # largest |loss difference| per step, and parameter difference, 2 ranks vs 1

work=$(mktemp -d)
bg=""
cleanup() {
    if [ -n "$bg" ] && kill -0 "$bg" 2>/dev/null; then
        pkill -KILL -P "$bg" 2>/dev/null
        kill -KILL "$bg" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}

# A tiny model: 2 x 32 LSTM, 8 streams of 16, one thread per rank.
TINY=(--hidden 32 --layers 2 --batch 8 --seq 16 --threads 1 --eval-every 0 --val-frac 0.01
      --seed 5)
train1() { "$BIN" train "${TINY[@]}" --quiet "$@" >>"$work/out.txt" 2>&1; }
trainN() { local n=$1; shift; "${MPIRUN[@]}" -np "$n" "$BIN" train "${TINY[@]}" --quiet "$@" \
               >>"$work/out.txt" 2>&1; }

# loss column of a log, rows from..to (1-based steps)
losses() { awk -F, -v a="$2" -v b="$3" 'NR > 1 && $1 >= a && $1 <= b { print $1, $2 }' "$1"; }
# every step's |loss difference| <= TOL (and the same steps present)
close_losses() {
    paste -d' ' <(losses "$1" "$3" "$4") <(losses "$2" "$3" "$4") |
        awk -v tol="$TOL" -v want=$(($4 - $3 + 1)) '
            { n++; d = $2 - $4; if (d < 0) d = -d; if (d > m) m = d; if ($1 != $3) bad = 1 }
            END { printf "    max |loss diff| %.3g over %d steps\n", m, n;
                  exit !(n == want && !bad && m <= tol) }'
}
close_params() {
    local line
    line=$(python3 tests/mpi/ckpt_diff.py "$1" "$2") || return 1
    echo "    $line"
    awk -v tol="$TOL" '{ split($2, a, "="); exit !(a[2] + 0 <= tol) }' <<<"$line"
}
# log rows without the timing column
same_logs() { cmp -s <(cut -d, -f1-5 "$1") <(cut -d, -f1-5 "$2"); }

echo "== tg_dist API"
if mpicc -std=c11 -Wall -Wextra -Wpedantic -O2 -fopenmp -I. -D_POSIX_C_SOURCE=200809L \
        -o "$work/dist_api" tests/mpi/dist_api.c "$LIB" -lm; then
    for n in 2 3; do
        "${MPIRUN[@]}" -np "$n" "$work/dist_api" >"$work/api$n.txt" 2>&1
        rc=$?
        tail -1 "$work/api$n.txt"
        check "dist API on $n ranks" test $rc -eq 0
    done
else
    bad "dist API test compiles"
fi
# the same with headers on the heap (the path for more than 64 ranks), on 3 ranks
if mpicc -std=c11 -O1 -fopenmp -I. -D_POSIX_C_SOURCE=200809L -DTG_WITH_MPI \
        -DTG_DIST_SMALL_RANKS=1 -o "$work/dist_api_heap" tests/mpi/dist_api.c optim/dist.c \
        "$LIB" -lm; then
    "${MPIRUN[@]}" -np 3 "$work/dist_api_heap" >"$work/api_heap.txt" 2>&1
    rc=$?
    tail -1 "$work/api_heap.txt"
    check "dist API on 3 ranks, headers on the heap" test $rc -eq 0
else
    bad "dist API test (heap headers) compiles"
fi

echo "== training: 2 ranks vs 1"
train1 --steps 20 --log "$work/one.csv" --save "$work/one.ckpt"
check "1-process run" test -s "$work/one.ckpt"
trainN 1 --steps 20 --log "$work/np1.csv" --save "$work/np1.ckpt"
check "mpirun -np 1 is bit-identical to running without mpirun" \
    cmp -s "$work/one.ckpt" "$work/np1.ckpt"
plain=$(dirname "$BUILD")/examples/charlm   # the default build's charlm, if built
if [ "$BUILD" = build/mpi ] && [ -x "$plain" ]; then
    "$plain" train "${TINY[@]}" --quiet --steps 20 --save "$work/plain.ckpt" >>"$work/out.txt" 2>&1
    check "the MPI build in one process is bit-identical to the plain build" \
        cmp -s "$work/one.ckpt" "$work/plain.ckpt"
fi
trainN 2 --steps 20 --log "$work/two.csv" --save "$work/two.ckpt"
check "2-rank losses match 1-rank within $TOL" close_losses "$work/one.csv" "$work/two.csv" 1 20
check "2-rank parameters after 20 steps within $TOL" close_params "$work/one.ckpt" "$work/two.ckpt"
trainN 2 --steps 20 --log "$work/two_b.csv" --save "$work/two_b.ckpt"
check "two 2-rank runs: bit-identical checkpoints" cmp -s "$work/two.ckpt" "$work/two_b.ckpt"
check "two 2-rank runs: identical logs" same_logs "$work/two.csv" "$work/two_b.csv"
OMP_WAIT_POLICY=passive trainN 2 --steps 20 --threads 2 --save "$work/two_t2.ckpt"
check "2 ranks x 2 threads: bit-identical to 2 x 1" cmp -s "$work/two.ckpt" "$work/two_t2.ckpt"
trainN 3 --steps 20 --log "$work/three.csv" --save "$work/three.ckpt"
check "3 ranks (rows 2+3+3) match 1-rank within $TOL" close_losses "$work/one.csv" \
    "$work/three.csv" 1 20

# plain SGD: the step is proportional to the gradient, so a wrong weighting would show
train1 --steps 10 --optim sgd --lr 0.5 --save "$work/sgd1.ckpt"
trainN 2 --steps 10 --optim sgd --lr 0.5 --save "$work/sgd2.ckpt"
check "SGD: 2-rank parameters after 10 steps within $TOL" close_params "$work/sgd1.ckpt" \
    "$work/sgd2.ckpt"

echo "== resume across rank counts"
trainN 2 --steps 10 --log "$work/r2.csv" --save "$work/r2.ckpt"
cp "$work/r2.ckpt" "$work/r2_10.ckpt"
cp "$work/r2.csv" "$work/r2_one.csv"
train1 --steps 20 --resume "$work/r2.ckpt" --log "$work/r2_one.csv" --save "$work/r2_one.ckpt"
check "2-rank checkpoint resumes in one process (steps 11-20 within $TOL)" \
    close_losses "$work/two.csv" "$work/r2_one.csv" 11 20
trainN 2 --steps 20 --resume "$work/r2_10.ckpt" --save "$work/r2_two.ckpt"
check "2-rank checkpoint resumed on 2 ranks: bit-identical to the uninterrupted run" \
    cmp -s "$work/two.ckpt" "$work/r2_two.ckpt"
train1 --steps 10 --save "$work/o10.ckpt"
cp "$work/one.csv" "$work/o_two.csv"
trainN 2 --steps 20 --resume "$work/o10.ckpt" --log "$work/o_two.csv" --save "$work/o_two.ckpt"
check "1-process checkpoint resumes on 2 ranks (steps 11-20 within $TOL)" \
    close_losses "$work/one.csv" "$work/o_two.csv" 11 20

# rank 0 sends the checkpoint: rank 1 runs in a directory where the relative path is missing
mkdir -p "$work/elsewhere"
abs_bin=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
(cd "$work" && "${MPIRUN[@]}" -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
     cd elsewhere; fi; exec "$0" "$@"' "$abs_bin" train "${TINY[@]}" --quiet --steps 20 \
     --resume r2_10.ckpt --save r2_rel.ckpt >>"$work/out.txt" 2>&1)
check "--resume read by rank 0 only (rank 1 cannot see the file): same result" \
    cmp -s "$work/two.ckpt" "$work/r2_rel.ckpt"
check "no copy of the checkpoint left behind" test -z "$(ls "${TMPDIR:-/tmp}" |
    grep '^charlm-resume-')"

echo "== dropout (per-rank masks) and GRU"
DROP=(--cell gru --dropout 0.3)
trainN 2 --steps 16 "${DROP[@]}" --save "$work/d1.ckpt"
trainN 2 --steps 16 "${DROP[@]}" --save "$work/d2.ckpt"
check "GRU+dropout on 2 ranks: bit-identical reruns" cmp -s "$work/d1.ckpt" "$work/d2.ckpt"
trainN 2 --steps 8 "${DROP[@]}" --save "$work/d8.ckpt"
trainN 2 --steps 16 "${DROP[@]}" --resume "$work/d8.ckpt" --save "$work/d8.ckpt"
check "GRU+dropout on 2 ranks: exact resume" cmp -s "$work/d1.ckpt" "$work/d8.ckpt"

echo "== errors"
"${MPIRUN[@]}" -np 3 "$BIN" train "${TINY[@]}" --quiet --batch 2 --steps 2 >"$work/small.txt" 2>&1
rc=$?
check "--batch smaller than the ranks is refused (exit $rc)" \
    grep -q "smaller than the 3 ranks" "$work/small.txt"
"${MPIRUN[@]}" -np 2 "$BIN" train "${TINY[@]}" --quiet --data "$work/missing.txt" --steps 2 \
    >"$work/missing.txt.out" 2>&1
rc=$?
check "an error every rank sees ends the job without MPI_Abort (exit $rc)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'cannot open' '$work/missing.txt.out' &&
             ! grep -q MPI_ABORT '$work/missing.txt.out'"

# start a long 2-rank run in the background and wait for its first checkpoint
start_long() { # [CHECKPOINT]
    local ck=${1:-$work/long.ckpt}
    rm -f "$ck"
    "${MPIRUN[@]}" -np 2 "$BIN" train "${TINY[@]}" --steps 1000000 --save "$ck" \
        --save-every 4 --print-every 100000 >"$work/long.txt" 2>&1 &
    bg=$!
    for _ in $(seq 300); do
        [ -s "$ck" ] && break
        sleep 0.1
    done
    sleep 0.5
}
rank_pid() { # the pid of rank $1 among mpirun's children
    local p
    for p in $(pgrep -P "$bg"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"
        then echo "$p"; return; fi
    done
}
wait_bounded() { # wait_bounded SECONDS: 0 when the job ended in time (rc in $job_rc)
    local t0=$SECONDS
    while kill -0 "$bg" 2>/dev/null; do
        if [ $((SECONDS - t0)) -ge "$1" ]; then
            pkill -KILL -P "$bg" 2>/dev/null
            kill -KILL "$bg" 2>/dev/null
            wait "$bg" 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
    wait "$bg"
    job_rc=$?
    echo "    ended after $((SECONDS - t0)) s, mpirun exit $job_rc"
    bg=""
    return 0
}
# signal_rank1 SIGNAL SECONDS: sends SIGNAL to rank 1 of the run start_long began and checks
# that the job ends within SECONDS; false (and counted as failed) when rank 1 is not found.
signal_rank1() {
    local pid
    pid=$(rank_pid 1)
    if [ -z "$pid" ]; then
        bad "find rank 1 of the background run"
        return 1
    fi
    kill -"$1" "$pid"
    check "the job ends within $2 s" wait_bounded "$2"
    return 0
}
ckpt_loads() { "$BIN" eval --model "$1" --threads 1 --val-frac 0.01 >/dev/null 2>&1; }

echo "== a rank killed with SIGKILL mid-run"
start_long
if signal_rank1 KILL 30; then
    check "nonzero exit and mpirun names the dead rank" \
        grep -q "exited on signal 9" "$work/long.txt"
    check "the last checkpoint is intact (eval reads it)" ckpt_loads "$work/long.ckpt"
    check "and resumes in one process" train1 --steps 1000000 --time-limit 0.5 \
        --resume "$work/long.ckpt" --save "$work/after_kill.ckpt"
fi

echo "== a rank that hangs (SIGSTOP): the watchdog"
export CHARLM_DIST_TIMEOUT=2
start_long
unset CHARLM_DIST_TIMEOUT
if signal_rank1 STOP 20; then
    check "rank 0 says why" grep -q "rank 0: no answer from the other ranks" "$work/long.txt"
    check "the last checkpoint is intact" ckpt_loads "$work/long.ckpt"
fi

echo "== rank 0 cannot write a checkpoint any more (its directory vanished)"
mkdir -p "$work/sub"
start_long "$work/sub/long.ckpt"
# renamed away in one step: rm -rf alone races with a save creating its temp file there
mv "$work/sub" "$work/sub.gone" && rm -rf "$work/sub.gone"
check "the job ends within 30 s" wait_bounded 30
check "rank 0 says why" grep -q "charlm train: .*sub/long.ckpt" "$work/long.txt"
check "and the other rank is stopped, not left waiting" \
    grep -q "rank 0 failed (exit 1) while other ranks were still training" "$work/long.txt"

echo "== SIGTERM to one rank: every rank stops after the same step and saves"
start_long
if signal_rank1 TERM 30; then
    step=$(sed -n 's/.*stopped after step \([0-9]*\).*/\1/p' "$work/long.txt" | tail -1)
    check "stopped after step ${step:-?} and saved it" \
        grep -q "saved .*long.ckpt (step ${step:-x})" <(tr '\r' '\n' <"$work/long.txt")
    check "exit status 130" test "${job_rc:-0}" -eq 130
    check "the checkpoint resumes in one process" train1 --steps $((step + 2)) \
        --resume "$work/long.ckpt" --save "$work/after_term.ckpt"
fi

if [ "$fail" -gt 0 ]; then
    echo "---- output of the failed runs (last lines)"
    tail -30 "$work/out.txt"
    echo "---- output of the last long run (last lines)"
    tail -30 "$work/long.txt" 2>/dev/null
fi
echo "mpi test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
