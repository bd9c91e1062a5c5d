# tests/test_util.sh: what the charlm shell tests share, sourced (POSIX sh): sleeping
# OpenMP threads, the pass and fail counters, a scratch directory and the closing line.

# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning makes these
# tiny models up to 30x slower (the results do not depend on it).
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# scratch NAME CORPUS: a new directory $TMP, removed on exit, holding the first 30 kB of
# CORPUS as $TMP/small.txt.
scratch() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    trap 'rm -rf "$TMP"' EXIT INT TERM
    head -c 30000 "$2" > "$TMP/small.txt"
}

# run_cmd NAME EXPECTED_EXIT COMMAND...: runs COMMAND with stdout/stderr kept in
# $TMP/NAME.{out,err} and counts it; returns 0 when it exited as expected.
run_cmd() {
    name=$1 want=$2
    shift 2
    "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
    got=$?
    if [ "$got" -eq "$want" ]; then
        ok
        return 0
    fi
    bad "$name: exit $got, expected $want: $*"
    sed 's/^/    /' "$TMP/$name.err" | head -20 >&2
    return 1
}

# summary LABEL: prints "LABEL: N passed, M failed"; returns nonzero when anything failed.
summary() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
