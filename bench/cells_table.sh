#!/bin/sh
# bench/cells_table.sh: every registered cell type trained as a char-LM with charlm's
# defaults (2 x 128, batch 50 x 50, rmsprop, seed 1, the bundled corpus) for a number
# of steps, as a markdown table: parameters, validation loss, tokens/s, wall time.
#
#   bench/cells_table.sh [CHARLM] [STEPS]      (defaults: build/examples/charlm, 2000)
#
# Validation loss is exact for a seed on any machine; tokens/s and wall time depend on
# the machine and its load. Extra charlm options (e.g. --threads 2) come from
# $CELLS_TABLE_ARGS.
set -eu
BIN=${1:-build/examples/charlm}
STEPS=${2:-2000}
[ -x "$BIN" ] || { echo "cells_table: $BIN is not an executable" >&2; exit 1; }
# every registered type, as `charlm train --help` lists them
CELLS=$("$BIN" train --help | sed -n 's/^Registered cell types: \(.*\)$/\1/p' | tr -d ',')
[ -n "$CELLS" ] || { echo "cells_table: cannot read the cell types from --help" >&2; exit 1; }

echo "| cell | parameters | val loss (nats/char) | tokens/s | wall s |"
echo "|---|---:|---:|---:|---:|"
for cell in $CELLS; do
    params=$("$BIN" gradcheck --cell "$cell" --layers 2 --hidden 128 --max-per-tensor 1 \
             ${CELLS_TABLE_ARGS:-} | sed -n 's/.* \([0-9]*\) weights$/\1/p')
    line=$("$BIN" train --cell "$cell" --steps "$STEPS" --seed 1 --quiet ${CELLS_TABLE_ARGS:-})
    val=$(echo "$line" | sed -n 's/.* val_loss=\([0-9.]*\).*/\1/p')
    tps=$(echo "$line" | sed -n 's/.* tokens_per_s=\([0-9.]*\).*/\1/p')
    wall=$(echo "$line" | sed -n 's/.* elapsed_s=\([0-9.]*\).*/\1/p')
    printf '| %s | %s | %.4f | %.0f | %.1f |\n' "$cell" "$params" "$val" "$tps" "$wall"
done
