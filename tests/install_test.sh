#!/bin/sh
# tests/install_test.sh: 'make install' into a temporary PREFIX, then what a user does with
# it: build a program with the README's pkg-config line and run it (no LD_LIBRARY_PATH),
# run the installed charlm, and check that its manual page documents every option that
# each command's --help lists.
#
#   tests/install_test.sh [BUILD]       (BUILD defaults to build)
#
# Prints "install test: N passed, M failed" last and exits nonzero when anything failed.
set -u
BUILD=${1:-build}
PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/tapegrad_prefix.XXXXXX") || exit 1
trap 'rm -rf "$PREFIX"' EXIT INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

make --no-print-directory -s BUILD="$BUILD" install PREFIX="$PREFIX" > "$PREFIX/make.log" 2>&1 &&
    ok || { bad "make install PREFIX=$PREFIX"; tail -5 "$PREFIX/make.log" >&2; }

cat > "$PREFIX/prog.c" <<'C'
#include <stdio.h>
#include <tapegrad.h>
int main(void)
{
    tg_text t;
    tg_vocab v;
    if (tg_text_from_memory(&t, "hello", 5, TG_VOCAB_CHARS) != TG_OK ||
        tg_vocab_build(&v, &t) != TG_OK)
        return 1;
    printf("vocabulary %d\n", v.size);
    tg_vocab_free(&v);
    tg_text_free(&t);
    return 0;
}
C
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 "$PREFIX/prog.c" $(pkg-config --cflags --libs tapegrad) -o "$PREFIX/prog" &&
    ok || bad "building a program with pkg-config --cflags --libs tapegrad"
out=$(env -u LD_LIBRARY_PATH "$PREFIX/prog" 2>&1)
[ "$out" = "vocabulary 4" ] && ok || bad "the program did not run from the prefix: $out"
# shellcheck disable=SC2046
cc -std=c11 "$PREFIX/prog.c" $(pkg-config --cflags tapegrad) "$PREFIX/lib/libtapegrad.a" \
    $(pkg-config --libs-only-other tapegrad | sed 's/-Wl,-rpath,[^ ]*//') -lm \
    -o "$PREFIX/prog_static" && [ "$("$PREFIX/prog_static")" = "vocabulary 4" ] && ok ||
    bad "static linking with libtapegrad.a"

"$PREFIX/bin/charlm" --help > /dev/null && ok || bad "the installed charlm does not run"
MAN=$PREFIX/share/man/man1/charlm.1
[ -s "$MAN" ] && grep -q '^\.TH CHARLM 1' "$MAN" && ok || bad "charlm.1 is not installed"
for sect in 'EXIT STATUS' EXAMPLES; do
    grep -q "^\.SH $sect" "$MAN" && ok || bad "charlm.1 has no $sect section"
done
for c in train sample eval gradcheck viz; do
    if [ $c = viz ]; then "$PREFIX/bin/charlm" viz --help; else "$PREFIX/bin/charlm" help $c; fi \
        > "$PREFIX/help.txt" 2>&1
    grep -q "^\.SS $c\$" "$MAN" && ok || bad "charlm.1 does not describe '$c'"
    for opt in $(grep -o -- '--[a-z][a-z-]*' "$PREFIX/help.txt" | sort -u); do
        esc=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
        grep -q -- "$esc" "$MAN" && ok || bad "charlm.1 does not document $c $opt"
    done
done
echo "install test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
