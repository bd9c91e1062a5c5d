#!/bin/sh
# bench/shakespeare_ablation.sh: what each ingredient of `charlm train --preset shakespeare`
# is worth. Trains the preset and variants with one ingredient changed, each for the same
# number of steps (cosine schedule to that step), and prints a markdown table of the
# chunked and stateful validation losses.
#
#   bench/shakespeare_ablation.sh [CHARLM] [STEPS] [ARM...]
#       (defaults: build/examples/charlm, 1500, every arm)
#
# The losses are exact for the seed on any machine and thread count; tokens/s depends on
# the machine and its load. $ABLATION_THREADS sets --threads (e.g. 1, to run two scripts
# side by side), $ABLATION_ARGS adds training options. Checkpoints go to $ABLATION_DIR
# (default: a temporary directory, removed at the end).
set -eu
BIN=${1:-build/examples/charlm}
STEPS=${2:-1500}
[ $# -gt 2 ] && shift 2 || set --
[ -x "$BIN" ] || { echo "shakespeare_ablation: $BIN is not an executable" >&2; exit 1; }
THREADS=${ABLATION_THREADS:+--threads $ABLATION_THREADS}
DIR=${ABLATION_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ablation.XXXXXX")}
[ -n "${ABLATION_DIR:-}" ] || trap 'rm -rf "$DIR"' EXIT INT TERM

# arm name and the options it adds after the preset's
arm_options() {
    case $1 in
    preset)         echo "" ;;
    no-weight-drop) echo "--weight-drop 0" ;;
    no-var-dropout) echo "--var-dropout 0" ;;
    no-dropout)     echo "--dropout 0" ;;
    no-regularisers) echo "--weight-drop 0 --var-dropout 0 --dropout 0" ;;
    lnlstm)         echo "--cell lnlstm" ;;
    rmsprop-const)  echo "--optim rmsprop --lr-schedule step --warmup 0 --min-lr 0" ;;
    hidden-256)     echo "--hidden 256" ;;
    *) echo "shakespeare_ablation: unknown arm '$1'" >&2; exit 1 ;;
    esac
}
ARMS=${*:-preset no-weight-drop no-var-dropout no-dropout no-regularisers lnlstm rmsprop-const}

echo "| arm | options after --preset shakespeare | chunked val | stateful val | tokens/s |"
echo "|---|---|---:|---:|---:|"
for arm in $ARMS; do
    opts=$(arm_options "$arm")
    line=$("$BIN" train --preset shakespeare --steps "$STEPS" --eval-every 0 $opts \
           --save "$DIR/$arm.ckpt" --quiet $THREADS ${ABLATION_ARGS:-})
    val=$(echo "$line" | sed -n 's/.* val_loss=\([0-9.]*\).*/\1/p')
    tps=$(echo "$line" | sed -n 's/.* tokens_per_s=\([0-9.]*\).*/\1/p')
    sval=$("$BIN" eval --model "$DIR/$arm.ckpt" --stateful $THREADS |
           sed -n 's/^eval: loss=\([0-9.]*\).*/\1/p')
    printf '| %s | `--steps %s%s` | %.4f | %.4f | %.0f |\n' "$arm" "$STEPS" \
        "${opts:+ $opts}" "$val" "$sval" "$tps"
done
