#!/bin/sh
# tests/plugin_test.sh: charlm with a cell type from a plug-in (examples/plugin/mycell.c):
# train, sample, eval, gradcheck and viz with --plugin; a checkpoint of a plug-in's cell
# refused without it; the three ways loading fails (a missing file, a constructor that
# registers nothing, a name clash), each exit 1 with its message; and the same cell built
# into charlm trains to the same bits as the plug-in does.
#
#   tests/plugin_test.sh BUILD_DIR      (make check runs it with build/)
#
# Needs BUILD_DIR/examples/charlm, BUILD_DIR/examples/plugin/mycell.so and
# BUILD_DIR/libtapegrad.so (make examples). Prints "plugin test: N passed, M failed".
set -u
. "$(dirname "$0")/test_util.sh"
BUILD=${1:?usage: tests/plugin_test.sh BUILD_DIR}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/examples/charlm
PLUGIN=$BUILD/examples/plugin/mycell.so
CC=${CC:-cc}
for f in "$BIN" "$PLUGIN" "$BUILD/libtapegrad.so"; do
    [ -e "$f" ] || { echo "plugin test: $f is missing (make examples)" >&2; exit 1; }
done

scratch plugin_test "$ROOT/examples/data/tinyshakespeare.txt"
TINY="--data $TMP/small.txt --hidden 16 --layers 2 --seq 8 --batch 4 --eval-every 0 --threads 1"

# has NAME FILE TEXT: FILE ($TMP/NAME.FILE) contains TEXT
has() {
    if grep -qF -- "$3" "$TMP/$1.$2"; then ok; else
        bad "$1: $2 lacks '$3'"; sed 's/^/    /' "$TMP/$1.$2" >&2; fi
}

# ---- the whole toolchain on the plug-in's cell ----------------------------------------
run_cmd help 0 "$BIN" train --plugin "$PLUGIN" --help
has help out "Registered cell types: rnn, lstm, gru"
has help out "mycell"
run_cmd train 0 "$BIN" train --plugin "$PLUGIN" --cell mycell $TINY --steps 12 --save "$TMP/my.ckpt"
has train out "train: steps=12"
run_cmd sample_needs_plugin 1 "$BIN" sample --model "$TMP/my.ckpt" --len 20
has sample_needs_plugin err 'cell type "mycell" is not registered'
has sample_needs_plugin err "--plugin FILE.so"
run_cmd sample 0 "$BIN" sample --plugin "$PLUGIN" --model "$TMP/my.ckpt" --len 40 --threads 1
run_cmd eval 0 "$BIN" eval --plugin "$PLUGIN" --model "$TMP/my.ckpt" --data "$TMP/small.txt" \
    --threads 1
has eval out "eval: loss="
has eval out "mycell 2 x 16"
run_cmd resume 0 "$BIN" train --plugin "$PLUGIN" --resume "$TMP/my.ckpt" $TINY --steps 16
has resume out "train: steps=16"
run_cmd gradcheck 0 "$BIN" gradcheck --plugin "$PLUGIN" --cell mycell --hidden 6 \
    --data "$TMP/small.txt"
has gradcheck out "gradcheck: params=10"
run_cmd viz 0 "$BIN" viz --plugin "$PLUGIN" --model "$TMP/my.ckpt" --text "$TMP/small.txt" \
    --chars 200 --out "$TMP/gates.html" --threads 1
has viz out "quantities: gate candidate hidden"
[ -s "$TMP/gates.html" ] && ok || bad "viz wrote no page"
run_cmd unknown_cell 2 "$BIN" train --cell mycell $TINY --steps 1
has unknown_cell err "'mycell' is not a registered cell type"

# ---- loading failures: exit 1 with a message ------------------------------------------
run_cmd missing 1 "$BIN" train --plugin "$TMP/nope.so" $TINY --steps 1
has missing err "--plugin: cannot load $TMP/nope.so"
printf 'int plugin_test_nothing;\n' > "$TMP/empty.c"
"$CC" -shared -fPIC -o "$TMP/empty.so" "$TMP/empty.c" || bad "cannot build empty.so"
run_cmd empty 1 "$BIN" train --plugin "$TMP/empty.so" $TINY --steps 1
has empty err "empty.so registered no cell type"
cat > "$TMP/clash.c" <<'EOF'
#include "tapegrad.h"
static tg_status init(void *c, tg_params *p, const char *n, int i, int h, const tg_init *in,
                      tg_rng *r)
{
    (void)c, (void)p, (void)n, (void)i, (void)h, (void)in, (void)r;
    return TG_OK;
}
static void step(tg_tape *t, const void *c, tg_tensor *x, tg_tensor *const *s, tg_tensor **o)
{
    (void)t, (void)c, (void)x, (void)s, (void)o;
}
static const tg_cell_type clash = { "lstm", 1, 8, init, step };
__attribute__((constructor)) static void reg(void) { tg_cell_type_register(&clash); }
EOF
"$CC" -std=c11 -shared -fPIC -I"$ROOT" -o "$TMP/clash.so" "$TMP/clash.c" \
    "$BUILD/libtapegrad.so" || bad "cannot build clash.so"
run_cmd clash 1 "$BIN" train --plugin "$TMP/clash.so" $TINY --steps 1
has clash err 'the name "lstm" is taken'
run_cmd twice 0 "$BIN" eval --plugin "$PLUGIN" --plugin "$PLUGIN" --model "$TMP/my.ckpt" \
    --data "$TMP/small.txt" --threads 1             # the same file twice: loaded once

# ---- the same cell built into charlm: the same bits -----------------------------------
# charlm's objects and mycell.c linked into one program: the constructor registers the type
# at start-up, as a built-in's table entry would. Training must give the same checkpoint.
"$CC" -o "$TMP/charlm_builtin" "$BUILD"/obj/examples/charlm/*.o -std=c11 -O3 -fPIC \
    -I"$ROOT" "$ROOT/examples/plugin/mycell.c" "$BUILD/libtapegrad.so" \
    -Wl,-rpath,"$BUILD" -fopenmp -lm || bad "cannot link charlm with mycell built in"
run_cmd builtin 0 "$TMP/charlm_builtin" train --cell mycell $TINY --steps 12 --save "$TMP/b.ckpt"
"$BIN" train --plugin "$PLUGIN" --cell mycell $TINY --steps 12 --save "$TMP/p.ckpt" \
    > /dev/null 2>&1
if cmp -s "$TMP/p.ckpt" "$TMP/b.ckpt"; then ok; else
    bad "mycell built in and as a plug-in trained to different checkpoints"; fi

# ---- the installed path: make install, the plug-in built with pkg-config ---------------
INST=$TMP/inst
if make -s -C "$ROOT" install PREFIX="$INST" BUILD="$BUILD" > "$TMP/install.log" 2>&1; then
    ok
    cp "$ROOT/examples/plugin/mycell.c" "$TMP/mycell.c"
    # shellcheck disable=SC2046
    if (cd "$TMP" && PKG_CONFIG_PATH=$INST/lib/pkgconfig "$CC" -shared -fPIC -O2 mycell.c \
            $(PKG_CONFIG_PATH=$INST/lib/pkgconfig pkg-config --cflags --libs tapegrad) \
            -o inst_mycell.so); then ok; else bad "cannot build the plug-in with pkg-config"; fi
    run_cmd installed 0 "$INST/bin/charlm" train --plugin "$TMP/inst_mycell.so" --cell mycell \
        $TINY --steps 12 --save "$TMP/i.ckpt"
    if cmp -s "$TMP/i.ckpt" "$TMP/b.ckpt"; then ok; else
        bad "the installed charlm and plug-in trained to a different checkpoint"; fi
    run_cmd installed_sample 0 "$INST/bin/charlm" sample --plugin "$TMP/inst_mycell.so" \
        --model "$TMP/i.ckpt" --len 20 --threads 1
else
    bad "make install failed"; sed 's/^/    /' "$TMP/install.log" >&2
fi

summary "plugin test"
