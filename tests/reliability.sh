#!/usr/bin/env bash
# tests/reliability.sh: end-to-end reliability checks of the charlm tool (docs/RELIABILITY.md).
#
#   tests/reliability.sh [-b BUILD] [SECTION...]
#
# Sections (default: all, in this order):
#   determinism  --threads 1, 2, 3 and OMP_NUM_THREADS unset write byte-identical
#                checkpoints (a tiny model, and the default 2x128 LSTM for 5 steps)
#   valgrind     train + sample of a tiny model under valgrind memcheck: zero errors,
#                zero definitely-lost bytes (skipped with a note if valgrind is missing)
#   memory       peak RSS (VmHWM) of 1000 training steps is within 5% of 50 steps
#   faults       a full disk, a read-only file system and a file-size limit while saving
#                leave the previous checkpoint byte-identical and report the error
#   regress      the fuzz seed corpora and kept crash inputs replayed under ASan+UBSan
#                (needs BUILD/san/replay/*: `make reliability` builds them)
#
# BUILD defaults to build; the tool is BUILD/examples/charlm. Prints a PASS/FAIL line per
# check, "reliability: N passed, M failed" last, and exits nonzero when anything failed.
#
# libgomp's threads spin while they wait; on a loaded 2-core CI machine that makes
# --threads 2 runs ~40x slower, so the passive wait policy is the default here. It has
# no effect on results.
set -u
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
if [ "${1:-}" = -b ]; then
    BUILD=$2
    shift 2
fi
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
BIN=$BUILD/examples/charlm
CORPUS=$ROOT/examples/data/tinyshakespeare.txt
SECTIONS=${*:-determinism valgrind memory faults regress}

[ -x "$BIN" ] || { echo "reliability: $BIN is missing (run make first)" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tg_reliability.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
head -c 40000 "$CORPUS" > "$TMP/small.txt"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
note() { echo "NOTE: $*"; }
# The checkpoint's size and CRC-32 (its last 4 bytes), for the log.
ident() { printf '%s bytes, crc %s' "$(stat -c %s "$1")" "$(tail -c 4 "$1" | od -An -tx4 | tr -d ' ')"; }

# ---- determinism --------------------------------------------------------------------
# train NAME THREADS ARGS...: THREADS is a number, or "unset" for no --threads and no
# OMP_NUM_THREADS (the library then uses every core).
train() {
    local name=$1 threads=$2
    shift 2
    if [ "$threads" = unset ]; then
        env -u OMP_NUM_THREADS "$BIN" train "$@" --save "$TMP/$name.ckpt" --quiet \
            > "$TMP/$name.out" 2>&1
    else
        "$BIN" train "$@" --threads "$threads" --save "$TMP/$name.ckpt" --quiet \
            > "$TMP/$name.out" 2>&1
    fi
}

determinism() {
    echo "== reliability: thread-count determinism"
    local tiny="--data $TMP/small.txt --layers 1 --hidden 16 --seq 8 --batch 4 --steps 20"
    tiny="$tiny --dropout 0 --eval-every 10"
    local deflt="--steps 5 --val-frac 0.02 --eval-every 0"
    local model args t ref
    for model in tiny default; do
        if [ $model = tiny ]; then args=$tiny; else args=$deflt; fi
        ref=
        for t in 1 2 3 unset; do
            [ $model = default ] && [ $t = 3 ] && continue   # keep CI short
            if ! train "det_${model}_$t" $t $args; then
                bad "determinism $model --threads $t: train failed: $(tail -1 "$TMP/det_${model}_$t.out")"
                continue
            fi
            if [ -z "$ref" ]; then
                ref=$TMP/det_${model}_$t.ckpt
                echo "   $model model, threads $t: $(ident "$ref"): $(tail -1 "$TMP/det_${model}_$t.out")"
            elif cmp -s "$ref" "$TMP/det_${model}_$t.ckpt"; then
                ok "determinism $model model: --threads $t checkpoint == --threads 1 ($(ident "$ref"))"
            else
                bad "determinism $model model: --threads $t checkpoint differs from --threads 1: $(cmp "$ref" "$TMP/det_${model}_$t.ckpt" 2>&1)"
            fi
        done
    done
    # the GRU and the vanilla RNN, with dropout (its RNG must not depend on threads either)
    local cell
    for cell in gru rnn; do
        args="--data $TMP/small.txt --cell $cell --layers 2 --hidden 24 --seq 8 --batch 6"
        args="$args --steps 10 --dropout 0.2 --embed 8"
        if train "det_${cell}_1" 1 $args && train "det_${cell}_2" 2 $args; then
            if cmp -s "$TMP/det_${cell}_1.ckpt" "$TMP/det_${cell}_2.ckpt"; then
                ok "determinism $cell+dropout+embed: --threads 2 == --threads 1 ($(ident "$TMP/det_${cell}_1.ckpt"))"
            else
                bad "determinism $cell+dropout+embed: checkpoints differ"
            fi
        else
            bad "determinism $cell: train failed"
        fi
    done
}

# ---- valgrind -------------------------------------------------------------------------
valgrind_section() {
    echo "== reliability: valgrind memcheck (train + sample, tiny model)"
    if ! command -v valgrind > /dev/null; then
        note "valgrind is not installed: section skipped (apt-get install valgrind)"
        return
    fi
    local vg="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
    vg="$vg --show-leak-kinds=definite --track-origins=yes"
    local what rc
    for what in train sample; do
        if [ $what = train ]; then
            set -- train --data "$TMP/small.txt" --layers 2 --hidden 16 --embed 8 --seq 8 \
                --batch 4 --steps 4 --dropout 0.1 --eval-every 2 --threads 2 \
                --save "$TMP/vg.ckpt" --log "$TMP/vg.csv" --plot "$TMP/vg.svg" --quiet
        else
            set -- sample --model "$TMP/vg.ckpt" --len 64 --threads 2 --seed 3
        fi
        $vg "$BIN" "$@" > "$TMP/vg_$what.out" 2> "$TMP/vg_$what.err"
        rc=$?
        local summary
        summary=$(grep -E "ERROR SUMMARY|definitely lost" "$TMP/vg_$what.err" | sed 's/^==[0-9]*== //' | tr "\n" " " | tr -s " ")
        if [ $rc -eq 0 ]; then
            ok "valgrind charlm $what: exit 0; $summary"
        else
            bad "valgrind charlm $what: exit $rc; $summary"
            sed 's/^/    /' "$TMP/vg_$what.err" | tail -60
        fi
    done
}

# ---- memory ---------------------------------------------------------------------------
# peak_kb STEPS: the peak RSS in kB of a small model trained for STEPS steps.
peak_kb() {
    /usr/bin/time -f '%M' -o "$TMP/rss_$1" "$BIN" train --data "$TMP/small.txt" --layers 2 \
        --hidden 32 --seq 16 --batch 8 --steps "$1" --eval-every 250 --threads 2 \
        --save "$TMP/rss.ckpt" --log "$TMP/rss.csv" --quiet > "$TMP/rss_$1.out" 2>&1 || return 1
    tail -1 "$TMP/rss_$1"
}

memory() {
    echo "== reliability: peak RSS flat over training steps"
    if [ ! -x /usr/bin/time ]; then
        note "/usr/bin/time is missing: section skipped (apt-get install time)"
        return
    fi
    local a b
    if ! a=$(peak_kb 50) || ! b=$(peak_kb 1000); then
        bad "memory: training failed: $(tail -1 "$TMP"/rss_*.out)"
        return
    fi
    # |b - a| <= 5% of a
    local diff=$(( b > a ? b - a : a - b ))
    if [ $(( diff * 100 )) -le $(( a * 5 )) ]; then
        ok "memory: peak RSS 50 steps ${a} kB, 1000 steps ${b} kB (+$(( b - a )) kB, <= 5%)"
    else
        bad "memory: peak RSS 50 steps ${a} kB, 1000 steps ${b} kB: grows by more than 5%"
    fi
}

# ---- faults ----------------------------------------------------------------------------
# expect_kept NAME DIR RC: the save of run NAME failed (exit 1, message saying why), the
# previous DIR/m.ckpt is byte-identical to $TMP/prev.ckpt and no temporary is left.
expect_kept() {
    local name=$1 dir=$2 rc=$3 reason=$4
    local msg
    msg=$(grep -v '^train:' "$TMP/$name.err" | tail -1)
    if [ "$rc" -ne 1 ]; then
        bad "faults $name: exit $rc, expected 1 ($msg)"
    elif ! grep -q "$reason" "$TMP/$name.err"; then
        bad "faults $name: message does not say '$reason': $msg"
    elif ! cmp -s "$TMP/prev.ckpt" "$dir/m.ckpt"; then
        bad "faults $name: the previous checkpoint was modified"
    elif [ -e "$dir/m.ckpt.tmp" ]; then
        bad "faults $name: the temporary file was left behind"
    elif ! "$BIN" sample --model "$dir/m.ckpt" --len 10 > /dev/null 2>&1; then
        bad "faults $name: the previous checkpoint no longer loads"
    else
        ok "faults $name: exit 1, previous checkpoint intact and loadable: $msg"
    fi
}

faults() {
    echo "== reliability: faults while saving"
    local args="--data $TMP/small.txt --layers 1 --hidden 16 --seq 8 --batch 4 --threads 1"
    args="$args --eval-every 0 --quiet"
    # the previous checkpoint (5 steps); each failing run trains 6 steps from scratch
    "$BIN" train $args --steps 5 --save "$TMP/prev.ckpt" > /dev/null 2>&1 \
        || { bad "faults: cannot train the previous checkpoint"; return; }
    local size
    size=$(stat -c %s "$TMP/prev.ckpt")

    # a file-size limit (EFBIG): works without privileges
    mkdir -p "$TMP/fsize"
    cp "$TMP/prev.ckpt" "$TMP/fsize/m.ckpt"
    ( trap '' XFSZ; ulimit -f $(( size / 2048 )); \
      exec "$BIN" train $args --steps 6 --save "$TMP/fsize/m.ckpt" ) \
        > "$TMP/fsize.out" 2> "$TMP/fsize.err"
    expect_kept fsize "$TMP/fsize" $? "File too large"

    # a full file system and a read-only one: a private tmpfs (root + unshare -m only)
    if [ "$(id -u)" = 0 ] && command -v unshare > /dev/null \
        && unshare -m true 2> /dev/null; then
        mkdir -p "$TMP/mnt"
        # room for the previous checkpoint and ~half of a new one
        local kb=$(( (size * 3 / 2) / 1024 + 4 ))
        unshare -m bash -c '
            set -e
            mount --make-rprivate / 2> /dev/null || true
            mount -t tmpfs -o size='"$kb"'k tmpfs "$1"
            cp "$2" "$1/m.ckpt"
            set +e
            "$3" train '"$args"' --steps 6 --save "$1/m.ckpt" > "$4.out" 2> "$4.err"
            echo $? > "$4.rc"
            cp "$1/m.ckpt" "$4.kept"; ls -A "$1" > "$4.ls"
            mount -o remount,ro "$1"
            "$3" train '"$args"' --steps 6 --save "$1/m.ckpt" > "$5.out" 2> "$5.err"
            echo $? > "$5.rc"
            cp "$1/m.ckpt" "$5.kept"; ls -A "$1" > "$5.ls"
        ' _ "$TMP/mnt" "$TMP/prev.ckpt" "$BIN" "$TMP/full" "$TMP/ro"
        local n
        for n in full ro; do
            mkdir -p "$TMP/$n.dir"
            [ -f "$TMP/$n.kept" ] && cp "$TMP/$n.kept" "$TMP/$n.dir/m.ckpt"
            if grep -q 'm.ckpt.tmp' "$TMP/$n.ls" 2> /dev/null; then
                bad "faults $n: the temporary file was left behind"
            fi
        done
        expect_kept full "$TMP/full.dir" "$(cat "$TMP/full.rc" 2> /dev/null || echo 9)" \
            "No space left on device"
        expect_kept ro "$TMP/ro.dir" "$(cat "$TMP/ro.rc" 2> /dev/null || echo 9)" \
            "Read-only file system"
    else
        note "faults: not root or no unshare -m: full-disk and read-only tmpfs cases skipped"
    fi

    # an unwritable directory (permissions; root ignores them, so only as a normal user)
    if [ "$(id -u)" != 0 ]; then
        mkdir -p "$TMP/rodir"
        cp "$TMP/prev.ckpt" "$TMP/rodir/m.ckpt"
        chmod 555 "$TMP/rodir"
        "$BIN" train $args --steps 6 --save "$TMP/rodir/m.ckpt" > "$TMP/rodir.out" \
            2> "$TMP/rodir.err"
        expect_kept rodir "$TMP/rodir" $? "Permission denied"
        chmod 755 "$TMP/rodir"
    fi
}

# ---- regress ------------------------------------------------------------------------------
regress() {
    echo "== reliability: fuzz seeds and kept crash inputs under ASan+UBSan"
    local r found=0
    for r in "$BUILD"/san/replay/fuzz_*; do
        [ -x "$r" ] || continue
        found=1
        local name=${r##*/fuzz_}
        local dirs=()
        local d
        for d in "$ROOT/tests/fuzz_seeds/$name" "$ROOT/tests/fuzz_regress/$name"; do
            [ -d "$d" ] && dirs+=("$d")
        done
        if out=$(OMP_NUM_THREADS=1 "$r" "${dirs[@]}" 2>&1); then
            ok "regress fuzz_$name: $(echo "$out" | tail -1)"
        else
            bad "regress fuzz_$name:"
            echo "$out" | tail -40 | sed 's/^/    /'
        fi
    done
    [ $found = 1 ] || note "regress: no replay binaries in $BUILD/san/replay (make reliability builds them)"
}

for s in $SECTIONS; do
    case $s in
        determinism) determinism ;;
        valgrind) valgrind_section ;;
        memory) memory ;;
        faults) faults ;;
        regress) regress ;;
        *) echo "reliability: unknown section '$s'" >&2; exit 2 ;;
    esac
done
echo "reliability: $pass passed, $fail failed"
[ $fail -eq 0 ]
