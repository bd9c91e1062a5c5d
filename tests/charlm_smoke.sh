#!/bin/sh
# tests/charlm_smoke.sh: end-to-end smoke test of the charlm tool on a tiny model (train,
# exact resume, sample, eval, gradcheck, logs, signals and every error path's exit code).
#
#   tests/charlm_smoke.sh build/examples/charlm [corpus]
#
# Builds nothing. The corpus defaults to the bundled examples/data/tinyshakespeare.txt,
# of which only the first 30 kB are used. Prints "charlm smoke: N passed, M failed" last
# and exits nonzero when anything failed.
set -u
. "$(dirname "$0")/test_util.sh"

BIN=${1:?usage: tests/charlm_smoke.sh path/to/charlm [corpus]}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
CORPUS=${2:-$(dirname "$0")/../examples/data/tinyshakespeare.txt}
[ -x "$BIN" ] || { echo "charlm smoke: $BIN is not an executable" >&2; exit 1; }
[ -r "$CORPUS" ] || { echo "charlm smoke: cannot read $CORPUS" >&2; exit 1; }

scratch charlm_smoke "$CORPUS"
D=$TMP/small.txt
TINY="--data $D --hidden 16 --layers 2 --seq 8 --batch 4 --eval-every 10 --quiet"

# run NAME EXPECTED_EXIT ARGS...: run_cmd of charlm with ARGS
run() {
    n=$1 w=$2
    shift 2
    run_cmd "$n" "$w" "$BIN" "$@"
}

# expect NAME REGEX FILE: the last line of FILE matches the extended regex
last_line_is() {
    if tail -n 1 "$3" | grep -Eq "$2"; then ok; else
        bad "$1: last line '$(tail -n 1 "$3")' does not match $2"; fi
}

# one_line_error NAME: stderr of NAME is exactly one non-empty line
one_line_error() {
    if [ "$(wc -l < "$TMP/$1.err")" -eq 1 ] && [ -s "$TMP/$1.err" ]; then ok; else
        bad "$1: expected a one-line message on stderr, got: $(cat "$TMP/$1.err")"; fi
}

num='[0-9]+(\.[0-9]+)?'

# ---- help -------------------------------------------------------------------------------
run help 0 --help && grep -q train "$TMP/help.out" && ok || bad "charlm --help"
for c in train sample eval gradcheck; do
    run "help_$c" 0 $c --help && grep -q -- "--threads" "$TMP/help_$c.out" && ok ||
        bad "charlm $c --help does not document --threads"
done

# ---- train, exact resume -----------------------------------------------------------------
run train30 0 train $TINY --steps 30 --save "$TMP/straight.ckpt" --log "$TMP/log.csv" \
    --plot "$TMP/loss.svg"
last_line_is train30 "^train: steps=30 loss=$num val_loss=$num tokens_per_s=$num elapsed_s=$num\$" \
    "$TMP/train30.out"
[ "$(wc -l < "$TMP/train30.out")" -eq 1 ] && ok || bad "--quiet printed more than the summary"
head -n 1 "$TMP/log.csv" | grep -qx 'step,loss,val_loss,lr,grad_norm,tokens_per_s' && ok ||
    bad "CSV header"
[ "$(wc -l < "$TMP/log.csv")" -eq 31 ] && ok || bad "CSV should have 30 rows"
grep -q '^10,[0-9.]*,[0-9.]\+,' "$TMP/log.csv" && ok || bad "CSV row 10 lacks val_loss"
grep -q '<svg' "$TMP/loss.svg" && grep -q '</svg>' "$TMP/loss.svg" &&
    grep -q 'loss (nats/char)' "$TMP/loss.svg" && ok || bad "SVG plot"

run train15 0 train $TINY --steps 15 --save "$TMP/resumed.ckpt"
last_line_is train15 "^train: steps=15 " "$TMP/train15.out"
run resume30 0 train $TINY --steps 30 --resume "$TMP/resumed.ckpt" --save "$TMP/resumed.ckpt" \
    --log "$TMP/log.csv"
# the resumed run rewrote the log's rows 16..30 instead of appending duplicates
[ "$(wc -l < "$TMP/log.csv")" -eq 31 ] && [ -z "$(cut -d, -f1 "$TMP/log.csv" | sort | uniq -d)" ] &&
    ok || bad "resumed CSV log has duplicate or missing rows"
last_line_is resume30 "^train: steps=30 " "$TMP/resume30.out"
cmp -s "$TMP/straight.ckpt" "$TMP/resumed.ckpt" && ok ||
    bad "30 steps straight and 15 + resumed 15 wrote different checkpoints"
# the same summary (apart from timings)
[ "$(cut -d' ' -f1-4 < "$TMP/train30.out")" = "$(cut -d' ' -f1-4 < "$TMP/resume30.out")" ] &&
    ok || bad "resumed summary differs"

# learning-rate schedules live in the checkpoint: a plateau run (which cuts the lr on the
# way) resumes bit-exactly; a cosine run resumed past its end holds --min-lr
P="--lr-schedule plateau --plateau-patience 0 --eval-every 2 --lr 10 --optim sgd"
run plateau30 0 train $TINY $P --steps 30 --save "$TMP/plateau30.ckpt" --log "$TMP/plateau.csv"
[ "$(cut -d, -f4 "$TMP/plateau.csv" | grep -c '^2.5$')" -gt 0 ] && ok ||
    bad "--lr-schedule plateau never cut the lr"
run plateau16 0 train $TINY $P --steps 16 --save "$TMP/plateau_r.ckpt"
run plateau_r 0 train $TINY --eval-every 2 --steps 30 --resume "$TMP/plateau_r.ckpt" \
    --save "$TMP/plateau_r.ckpt"
cmp -s "$TMP/plateau30.ckpt" "$TMP/plateau_r.ckpt" && ok ||
    bad "plateau: 30 steps straight and 16 + resumed 14 wrote different checkpoints"
run cosine10 0 train $TINY --steps 10 --lr-schedule cosine --warmup 3 --min-lr 0.0001 \
    --save "$TMP/cosine.ckpt" --log "$TMP/cosine.csv"
[ "$(cut -d, -f4 "$TMP/cosine.csv" | sed -n 2,5p | tr '\n' ' ')" = "0.0002 0.0008 0.0014 0.002 " ] &&
    ok || bad "cosine warm-up lr: $(cut -d, -f4 "$TMP/cosine.csv" | sed -n 2,5p | tr '\n' ' ')"
run cosine_r 0 train $TINY --steps 12 --resume "$TMP/cosine.ckpt" --log "$TMP/cosine.csv"
[ "$(cut -d, -f4 "$TMP/cosine.csv" | sed -n 12,13p | tr '\n' ' ')" = "0.0001 0.0001 " ] && ok ||
    bad "resumed cosine lost its schedule: $(cut -d, -f4 "$TMP/cosine.csv" | tail -n 2)"
run cosine_bad 2 train $TINY --steps 10 --lr-schedule cosine --warmup 10
one_line_error cosine_bad
grep -q "total_steps 10 must exceed warmup_steps 10" "$TMP/cosine_bad.err" && ok ||
    bad "cosine_bad: $(cat "$TMP/cosine_bad.err")"

run threads1 0 train $TINY --steps 12 --threads 1 --save "$TMP/t1.ckpt"
run threads2 0 train $TINY --steps 12 --threads 2 --save "$TMP/t2.ckpt"
cmp -s "$TMP/t1.ckpt" "$TMP/t2.ckpt" && ok || bad "--threads 1 and 2 trained differently"

for cell in gru rnn; do
    run "train_$cell" 0 train $TINY --cell $cell --embed 8 --dropout 0.2 --optim adam \
        --steps 10 --save "$TMP/$cell.ckpt"
    run "sample_$cell" 0 sample --model "$TMP/$cell.ckpt" --len 20
done

# ---- recurrent regularisers: train, exact resume, 1 vs 2 threads, eval, shown, carried ------
R="--var-dropout 0.25 --zoneout 0.1 --weight-drop 0.3"
run reg20 0 train $TINY $R --steps 20 --save "$TMP/reg20.ckpt"
run reg10 0 train $TINY $R --steps 10 --save "$TMP/reg_r.ckpt"
run reg_r 0 train $TINY --steps 20 --resume "$TMP/reg_r.ckpt" --save "$TMP/reg_r.ckpt"
cmp -s "$TMP/reg20.ckpt" "$TMP/reg_r.ckpt" && ok ||
    bad "regularised: 20 steps straight and 10 + resumed 10 wrote different checkpoints"
run reg_t1 0 train $TINY $R --steps 12 --threads 1 --save "$TMP/reg_t1.ckpt"
run reg_t2 0 train $TINY $R --steps 12 --threads 2 --save "$TMP/reg_t2.ckpt"
cmp -s "$TMP/reg_t1.ckpt" "$TMP/reg_t2.ckpt" && ok ||
    bad "regularised: --threads 1 and 2 trained differently"
run reg_plain 0 train $TINY --steps 12 --threads 1 --save "$TMP/reg_plain.ckpt"
cmp -s "$TMP/reg_t1.ckpt" "$TMP/reg_plain.ckpt" && bad "the regularisers changed nothing" || ok
run reg_eval 0 eval --model "$TMP/reg20.ckpt" --data "$D"
grep -q "var-dropout 0.25, zoneout 0.1, weight-drop 0.3" "$TMP/reg_eval.out" && ok ||
    bad "eval does not show the regularisers: $(head -n 1 "$TMP/reg_eval.out")"
run reg_plan_shown 0 train --data "$D" --hidden 16 --layers 2 --seq 8 --batch 4 $R --steps 1
grep -q "^model: .*var-dropout 0.25, zoneout 0.1, weight-drop 0.3" "$TMP/reg_plan_shown.out" &&
    ok || bad "train does not show the regularisers"
run reg_sample 0 sample --model "$TMP/reg20.ckpt" --len 20 --seed 3
run reg_resume_clash 2 train $TINY --steps 30 --resume "$TMP/reg20.ckpt" --zoneout 0.2
run reg_ft 0 train $TINY --steps 5 --init-from "$TMP/reg20.ckpt" --save "$TMP/reg_ft.ckpt" \
    --zoneout 0.05
run reg_ft_eval 0 eval --model "$TMP/reg_ft.ckpt" --data "$D"
grep -q "var-dropout 0.25, zoneout 0.05, weight-drop 0.3" "$TMP/reg_ft_eval.out" && ok ||
    bad "--init-from does not carry the regularisers: $(head -n 1 "$TMP/reg_ft_eval.out")"
for c in lnlstm peephole torchgru mgu indrnn; do
    run "reg_$c" 0 train $TINY --cell $c --var-dropout 0.2 --zoneout 0.1 --weight-drop 0.2 \
        --steps 4
done
run reg_gradcheck 0 gradcheck --data "$D" --hidden 5 $R --max-per-tensor 8
run reg_resume_same 0 train $TINY $R --steps 21 --resume "$TMP/reg20.ckpt"
# a metadata version 2 checkpoint (before the regularisers; tests/fixtures/charlm_v2.ckpt,
# 6 steps on this text) loads with them 0 and resumes bit-exactly: as the same state saved
# in today's format does (it was written before products gathered one-hot rows, so a
# straight run today differs from it in the last bits)
for i in $(seq 1 120); do printf 'abba cab bad dab\n'; done > "$TMP/abc.txt"
V2="--data $TMP/abc.txt --hidden 4 --layers 1 --seq 4 --batch 2 --eval-every 3 --quiet"
OLD=$(dirname "$0")/fixtures/charlm_v2.ckpt
run v2_eval 0 eval --model "$OLD" --data "$TMP/abc.txt"
grep -q "^model: .*, lstm 1 x 4, vocabulary 6" "$TMP/v2_eval.out" && ok ||
    bad "the version 2 checkpoint: $(head -n 1 "$TMP/v2_eval.out")"
run v2_resume 0 train $V2 --steps 12 --resume "$OLD" --save "$TMP/v2_resumed.ckpt"
run v2_resave 0 train $V2 --steps 6 --resume "$OLD" --save "$TMP/v2_resaved.ckpt"
run v2_resave_resume 0 train $V2 --steps 12 --resume "$TMP/v2_resaved.ckpt" \
    --save "$TMP/v2_resave_resumed.ckpt"
cmp -s "$TMP/v2_resumed.ckpt" "$TMP/v2_resave_resumed.ckpt" && ok ||
    bad "the version 2 checkpoint resumed differently from its state saved again"

# time limit: stops cleanly, saves, summarises
run timelimit 0 train $TINY --steps 100000000 --time-limit 1 --save "$TMP/tl.ckpt"
last_line_is timelimit "^train: steps=[0-9]+ loss=$num val_loss=$num " "$TMP/timelimit.out"
[ -s "$TMP/tl.ckpt" ] && ok || bad "--time-limit did not save"

# SIGINT: finishes the step, saves, exits 130; the checkpoint resumes
"$BIN" train $TINY --steps 100000000 --save "$TMP/int.ckpt" > "$TMP/int.out" 2>&1 &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && ok || bad "SIGINT: exit $rc, expected 130"
run eval_int 0 eval --model "$TMP/int.ckpt" --data "$D"
run resume_int 0 train $TINY --resume "$TMP/int.ckpt" --steps 1 --eval-every 0

# ---- sample -------------------------------------------------------------------------------
M=$TMP/straight.ckpt
run sample_a 0 sample --model "$M" --len 60 --seed 7 --prime "ROMEO:"
run sample_b 0 sample --model "$M" --len 60 --seed 7 --prime "ROMEO:"
cmp -s "$TMP/sample_a.out" "$TMP/sample_b.out" && ok || bad "same seed, different samples"
[ "$(head -c 6 "$TMP/sample_a.out")" = "ROMEO:" ] && ok || bad "sample does not start with --prime"
# prime + --len characters, and a newline unless the last one was one
size=$(wc -c < "$TMP/sample_a.out")
{ [ "$size" -eq 67 ] || { [ "$size" -eq 66 ] && [ "$(tail -c 1 "$TMP/sample_a.out")" = "" ]; }; } &&
    ok || bad "sample length is not prime + --len (+ the final newline)"
run sample_c 0 sample --model "$M" --len 60 --seed 8 --prime "ROMEO:"
cmp -s "$TMP/sample_a.out" "$TMP/sample_c.out" && bad "seeds 7 and 8 gave the same sample" || ok
run sample_argmax 0 sample --model "$M" --len 30 --argmax
run sample_topk 0 sample --model "$M" --len 30 --top-k 3 --temperature 0.7
run sample_topp 0 sample --model "$M" --len 30 --top-p 0.5

# ---- eval ---------------------------------------------------------------------------------
run eval 0 eval --model "$M" --data "$D"
last_line_is eval "^eval: loss=$num bpc=$num perplexity=$num chars=[0-9]+\$" "$TMP/eval.out"
tv=$(sed -n 's/.* val_loss=\([^ ]*\) .*/\1/p' "$TMP/train30.out")
ev=$(sed -n 's/^eval: loss=\([^ ]*\) .*/\1/p' "$TMP/eval.out")
[ -n "$tv" ] && [ "$tv" = "$ev" ] && ok || bad "eval loss $ev differs from train's val_loss $tv"
run eval_all 0 eval --model "$M" --data "$D" --split all

# ---- gradcheck ------------------------------------------------------------------------------
for cell in lstm gru rnn; do
    run "gradcheck_$cell" 0 gradcheck --data "$D" --cell $cell --hidden 6 --layers 2
    last_line_is "gradcheck_$cell" "^gradcheck: params=[0-9]+ max_rel_err=" \
        "$TMP/gradcheck_$cell.out"
done
run gradcheck_embed 0 gradcheck --data "$D" --hidden 5 --embed 4 --dropout 0.25 \
    --init orthogonal

# ---- data -----------------------------------------------------------------------------------
# invalid UTF-8 becomes U+FFFD, never a crash
{ head -c 3000 "$D"; printf '\377\376\200 caf\303\251 \342\202 x\n'; head -c 3000 "$D"; } \
    > "$TMP/bad_utf8.txt"
run utf8 0 train --data "$TMP/bad_utf8.txt" --hidden 8 --layers 1 --seq 8 --batch 4 \
    --steps 5 --save "$TMP/utf8.ckpt"
grep -q 'U+FFFD' "$TMP/utf8.out" && ok || bad "invalid UTF-8 not reported"
run utf8_sample 0 sample --model "$TMP/utf8.ckpt" --len 20 --prime "café"

# ---- usage errors: exit 2 with one line --------------------------------------------------------
i=0
for args in "train --hidden -5" "train --layers 0" "train --cell foo" "train --lr -1" \
    "train --val-frac 2" "train --steps x" "train --dropout 1" "train --optim nadam" \
    "train --var-dropout 1" "train --zoneout -0.1" "train --weight-drop x" \
    "sample --model $M --zoneout 0.1" \
    "train --bogus" "train stray" "train --hidden" "sample" "sample --model $M --temperature 0" \
    "sample --model $M --top-p 1.5" "sample --model $M --top-k -1" "eval --model $M --split x" \
    "gradcheck --eps 0" "train --save-every 5" "frobnicate" "sample --model $M --prime Ω" \
    "train $TINY --resume $M --hidden 32 --steps 40" "train --threads 0" \
    "train --lr-schedule linear" "train --plateau-factor 1" "train --warmup -1"; do
    i=$((i + 1))
    run "usage$i" 2 $args && one_line_error "usage$i"
done

# ---- runtime errors: exit 1 with one line ------------------------------------------------------
: > "$TMP/empty.txt"
printf 'tiny' > "$TMP/short.txt"
printf 'not a checkpoint at all\n' > "$TMP/junk.ckpt"
head -c 200 "$M" > "$TMP/trunc.ckpt"
cp "$M" "$TMP/version.ckpt"   # another format version (byte 8 is the u32 version)
printf '\143' | dd of="$TMP/version.ckpt" bs=1 seek=8 conv=notrunc 2>/dev/null
cp "$M" "$TMP/flip.ckpt"
size=$(wc -c < "$M")
printf '\125' | dd of="$TMP/flip.ckpt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
cmp -s "$M" "$TMP/flip.ckpt" && printf '\252' |
    dd of="$TMP/flip.ckpt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
head -c 20000 "$CORPUS" | tail -c 10000 > "$TMP/other.txt"
i=0
for args in "train --data $TMP/missing.txt" "train --data $TMP/empty.txt" \
    "train --data $TMP/short.txt" "train --data $TMP" "sample --model $TMP/missing.ckpt" \
    "sample --model $TMP/junk.ckpt" "sample --model $TMP/trunc.ckpt" \
    "eval --model $TMP/flip.ckpt --data $D" "eval --model $TMP/version.ckpt --data $D" \
    "eval --model $M --data $TMP/bad_utf8.txt" \
    "train $TINY --resume $TMP/trunc.ckpt" "train $TINY --resume $M --data $TMP/other.txt" \
    "train $TINY --steps 5 --save $TMP/nodir/x.ckpt"; do
    i=$((i + 1))
    run "runtime$i" 1 $args && one_line_error "runtime$i"
done

# a diverging run stops at a NaN/inf loss, names the step, and keeps the last checkpoint
cp "$M" "$TMP/keep.ckpt"
run nan 1 train --data "$D" --hidden 16 --layers 1 --seq 8 --batch 4 --optim sgd --lr 1e100 \
    --clip 0 --steps 200 --save "$TMP/keep.ckpt" --quiet
grep -Eq 'step [0-9]+: .*(NaN|infinite)' "$TMP/nan.err" && ok ||
    bad "NaN message: $(cat "$TMP/nan.err")"
cmp -s "$M" "$TMP/keep.ckpt" && ok || bad "the last good checkpoint was overwritten"

# ---- fine-tuning, best model, patience, stateful evaluation, bytes, unknown symbols --------
T1="--hidden 16 --layers 1 --seq 8 --batch 4 --quiet"
run base 0 train --data "$D" $T1 --steps 10 --save "$TMP/base.ckpt"
{ cat "$D"; for i in 1 2 3 4 5 6 7 8; do printf 'Z\303\251bra {~} ~\n'; done; } > "$TMP/new.txt"
run initfrom 0 train --data "$TMP/new.txt" $T1 --steps 10 --init-from "$TMP/base.ckpt" \
    --save "$TMP/ft.ckpt" --print-every 1000
run initfrom_talk 0 train --data "$TMP/new.txt" --hidden 16 --layers 1 --seq 8 --batch 4 \
    --steps 1 --init-from "$TMP/base.ckpt" --print-every 1000
grep -Eq 'initialised from .* [1-9][0-9]* of them new' "$TMP/initfrom_talk.out" && ok ||
    bad "--init-from does not report the new symbols"
run ft_eval 0 eval --model "$TMP/ft.ckpt" --data "$TMP/new.txt"     # the new symbols are known
run initfrom_clash 2 train --data "$D" $T1 --init-from "$TMP/base.ckpt" --hidden 32
run initfrom_resume 2 train --data "$D" $T1 --init-from "$TMP/base.ckpt" --resume "$M"
run old_unknown 1 eval --model "$TMP/base.ckpt" --data "$TMP/new.txt"
grep -q "is not in the model's vocabulary" "$TMP/old_unknown.err" && ok ||
    bad "eval: unknown characters are not refused with the usual message"
run skip 0 eval --model "$TMP/base.ckpt" --data "$TMP/new.txt" --unknown skip --split all
grep -Eq '^data: skipped [1-9][0-9]* characters' "$TMP/skip.out" && ok || bad "--unknown skip count"
last_line_is skip "^eval: loss=$num " "$TMP/skip.out"
run prime_unknown 2 sample --model "$TMP/base.ckpt" --prime "Z~" --len 5
run prime_skip 0 sample --model "$TMP/base.ckpt" --prime "Z~A" --unknown skip --len 5
grep -q "skipped 2 characters" "$TMP/prime_skip.err" && ok || bad "--prime with --unknown skip"

run viz_unknown 1 viz --model "$TMP/base.ckpt" --text "$TMP/new.txt" --from 29990 --chars 200 \
    --out "$TMP/v.html"
grep -q "is not in the model's vocabulary" "$TMP/viz_unknown.err" && ok || bad "viz refusal"
run viz_skip 0 viz --model "$TMP/base.ckpt" --text "$TMP/new.txt" --from 29990 --chars 200 \
    --out "$TMP/v.html" --unknown skip
grep -q "skipped [1-9][0-9]* characters" "$TMP/viz_skip.err" && ok || bad "viz --unknown skip"
run stateful 0 eval --model "$TMP/base.ckpt" --data "$D" --stateful
last_line_is stateful "^eval: loss=$num bpc=$num perplexity=$num chars=[0-9]+\$" "$TMP/stateful.out"
run chunked 0 eval --model "$TMP/base.ckpt" --data "$D"
[ "$(tail -n 1 "$TMP/stateful.out")" != "$(tail -n 1 "$TMP/chunked.out")" ] && ok ||
    bad "--stateful gives the chunked result"
run valmode 0 train --data "$D" $T1 --steps 5 --val-mode stateful
run valmode_bad 2 train --data "$D" $T1 --steps 5 --val-mode sideways

run best 0 train --data "$D" $T1 --steps 200 --eval-every 2 --patience 2 --optim sgd --lr 3 \
    --save-best "$TMP/best.ckpt" --print-every 1000
grep -Eq '^train: steps=([0-9]|[0-9][0-9]|1[0-9][0-9]) ' "$TMP/best.out" && ok ||
    bad "--patience 2 did not stop the run early"
best=$(sed -n 's/.*best (\([0-9.]*\)).*/\1/p' "$TMP/best.out")
"$BIN" eval --model "$TMP/best.ckpt" --data "$D" > "$TMP/best_eval.out" 2>&1
grep -q "^eval: loss=$best" "$TMP/best_eval.out" && ok ||
    bad "--save-best's checkpoint does not hold the best loss ($best)"

head -c 4000 "$BIN" > "$TMP/binary.dat"
run bytes 0 train --data "$TMP/binary.dat" --vocab bytes --hidden 8 --layers 1 --seq 4 \
    --batch 2 --steps 5 --val-frac 0.2 --save "$TMP/bytes.ckpt" --quiet
run bytes_eval 0 eval --model "$TMP/bytes.ckpt" --data "$TMP/binary.dat"
run bytes_sample 0 sample --model "$TMP/bytes.ckpt" --len 10
run bytes_other 0 eval --model "$TMP/bytes.ckpt" --data "$D"     # any file: no unknown byte
run vocab_bad 2 train --data "$D" $T1 --vocab words

# ---- sample: the prime from a file or stdin, interactive, beam search, final newline -----
printf 'ROMEO:' > "$TMP/prime.txt"
run prime_file 0 sample --model "$M" --prime-file "$TMP/prime.txt" --len 20 --seed 3
run prime_arg 0 sample --model "$M" --prime "ROMEO:" --len 20 --seed 3
cmp -s "$TMP/prime_file.out" "$TMP/prime_arg.out" && ok || bad "--prime-file differs from --prime"
"$BIN" sample --model "$M" --prime - --len 20 --seed 3 < "$TMP/prime.txt" > "$TMP/prime_stdin.out" &&
    cmp -s "$TMP/prime_stdin.out" "$TMP/prime_arg.out" && ok || bad "--prime - differs from --prime"
[ "$(tail -c 1 "$TMP/prime_arg.out" | od -An -c | tr -d ' ')" = '\n' ] && ok ||
    bad "sample output does not end with a newline"
run prime_both 2 sample --model "$M" --prime a --prime-file "$TMP/prime.txt"
run prime_missing 1 sample --model "$M" --prime-file "$TMP/missing.txt"
printf 'First line\nSecond\n' | "$BIN" sample --model "$M" --interactive --len 15 \
    > "$TMP/inter.out" 2> "$TMP/inter.err" && ok || bad "--interactive in a pipe failed"
[ "$(wc -l < "$TMP/inter.out")" -ge 2 ] && ok || bad "--interactive: one continuation per line"
run inter_beam 2 sample --model "$M" --interactive --beam 2
run beam1 0 sample --model "$M" --prime "ROMEO:" --len 30 --beam 1
run beam4 0 sample --model "$M" --prime "ROMEO:" --len 30 --beam 4
run beam4_again 0 sample --model "$M" --prime "ROMEO:" --len 30 --beam 4
cmp -s "$TMP/beam4.out" "$TMP/beam4_again.out" && cmp -s "$TMP/beam4.err" "$TMP/beam4_again.err" &&
    ok || bad "--beam is not deterministic"
g=$(sed -n 's/.*log_prob=//p' "$TMP/beam1.err"); b=$(sed -n 's/.*log_prob=//p' "$TMP/beam4.err")
awk -v g="$g" -v b="$b" 'BEGIN { exit !(g != "" && b != "" && b >= g) }' && ok ||
    bad "--beam 4's log-probability $b is below greedy's $g"
run beam_bad 2 sample --model "$M" --beam 0
run one_thread 0 train --data "$D" --hidden 16 --layers 1 --seq 8 --batch 4 --steps 1 \
    --threads 1 --print-every 1000
grep -q " 1 threads" "$TMP/one_thread.out" && bad "prints '1 threads'" || ok
for opt in vocab unknown stateful val-mode save-best patience init-from interactive prime-file beam \
    lr-schedule warmup min-lr plateau-factor plateau-patience; do
    "$BIN" help train > "$TMP/h.txt"; for c in sample eval; do "$BIN" help $c >> "$TMP/h.txt"; done
    grep -q -- "--$opt" "$TMP/h.txt" && ok || bad "--$opt is not in --help"
done

# ---- presets -----------------------------------------------------------------------------
# a preset is its options typed first: the same run spelled out gives the same checkpoint,
# and options given besides it override it (here the size, so the test stays small)
SMALL="--data $D --hidden 16 --steps 2 --warmup 1 --eval-every 0 --quiet --threads 1"
run preset 0 train --preset shakespeare $SMALL --save "$TMP/preset.ckpt"
args=$(sed -n '/^Presets/,$p' "$TMP/help_train.out" | sed 1d | sed 's/^  shakespeare//' |
       tr -s ' \n' ' ')
run preset_spelled 0 train $args $SMALL --save "$TMP/preset_spelled.ckpt"
cmp -s "$TMP/preset.ckpt" "$TMP/preset_spelled.ckpt" && ok ||
    bad "--preset shakespeare differs from the options its --help lists: $args"
grep -q -- "--weight-drop" "$TMP/help_train.out" && [ -n "$args" ] && ok ||
    bad "train --help does not list the preset's options"
run preset_eq 0 train --preset=shakespeare $SMALL --save "$TMP/preset_eq.ckpt"
cmp -s "$TMP/preset.ckpt" "$TMP/preset_eq.ckpt" && ok || bad "--preset=NAME differs"
run preset_bad 2 train --preset nope $SMALL
one_line_error preset_bad
grep -q "preset" "$TMP/preset_bad.err" && ok || bad "unknown preset: $(cat "$TMP/preset_bad.err")"
run preset_other_cmd 2 sample --model "$M" --preset shakespeare

summary "charlm smoke"
