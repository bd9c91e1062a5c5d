#!/usr/bin/env bash
# tests/viz/browser_test.sh: the gate viewer in a real browser: trains tiny models, writes
# pages with 'charlm viz', loads them in headless Chromium and checks the dumped DOM; leaves
# screenshots in build/viz/. Last line: "viz browser test: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."

OUT=build/viz
CHARLM=build/examples/charlm
CORPUS=examples/data/tinyshakespeare.txt
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
PY=${PYTHON:-$(command -v python3)}
passed=0
failed=0

ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "not ok - $*"; failed=$((failed + 1)); }
finish() {
    echo "viz browser test: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
# expect CODE WHAT COMMAND...: the command exits with CODE
expect() {
    local want=$1 what=$2
    shift 2
    "$@" >"$OUT/last.out" 2>&1
    local got=$?
    if [ "$got" -eq "$want" ]; then
        ok "$what"
    else
        bad "$what (exit $got)"
        cat "$OUT/last.out"
    fi
}
# tally the ok/not ok lines of a checker's output
tally() {
    local out
    out=$("$@")
    echo "$out"
    passed=$((passed + $(grep -c '^ok - ' <<<"$out")))
    failed=$((failed + $(grep -c '^not ok - ' <<<"$out")))
    if ! grep -q '^ok - ' <<<"$out" && ! grep -q '^not ok - ' <<<"$out"; then
        bad "$* printed no result"
    fi
}
# chromium MODE PAGE#FRAGMENT OUTPUT: --dump-dom into OUTPUT, or --screenshot=OUTPUT
chromium_run() {
    local mode=$1 url=$2 out=$3 profile
    profile=$(mktemp -d)
    local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
                 --disable-component-update --disable-sync --no-first-run --disable-quic
                 --disable-extensions --user-data-dir="$profile" --hide-scrollbars)
    if [ "$mode" = dom ]; then
        timeout 120 "$CHROMIUM" "${flags[@]}" --dump-dom "$url" >"$out" 2>"$OUT/chromium.log"
    else
        timeout 120 "$CHROMIUM" "${flags[@]}" --window-size="${VIZ_WINDOW:-1440,1000}" \
            --virtual-time-budget=3000 --screenshot="$out" \
            "$url" >"$OUT/chromium.log" 2>&1
    fi
    local rc=$?
    rm -rf "$profile"
    return $rc
}

mkdir -p "$OUT"
rm -f "$OUT"/*.html "$OUT"/*.png "$OUT"/*.ckpt
if [ -z "$CHROMIUM" ] || [ -z "$PY" ]; then
    bad "chromium and python3 are needed (apt-get install -y chromium python3)"
    finish
fi

# the page template in the C file is the one in viz_page.html
expect 0 "viz_page.c is generated from viz_page.html" "$PY" tests/viz/gen_page.py --check
expect 0 "charlm builds" make -s -j2 "$CHARLM"

# tiny models, a few steps each
expect 0 "train a tiny 2-layer LSTM" "$CHARLM" train --cell lstm --layers 2 --hidden 12 \
    --seq 16 --batch 4 --steps 20 --eval-every 0 --quiet --threads 1 --save "$OUT/lstm.ckpt"
expect 0 "train a tiny 1-layer GRU" "$CHARLM" train --cell gru --layers 1 --hidden 10 \
    --seq 16 --batch 4 --steps 10 --eval-every 0 --quiet --threads 1 --save "$OUT/gru.ckpt"
expect 0 "train a tiny 2-layer RNN" "$CHARLM" train --cell rnn --layers 2 --hidden 8 \
    --seq 16 --batch 4 --steps 10 --eval-every 0 --quiet --threads 1 --save "$OUT/rnn.ckpt"

# the command line
expect 2 "viz without --out is a usage error" "$CHARLM" viz --model "$OUT/lstm.ckpt" \
    --text "$CORPUS"
expect 2 "viz with both --text and --prime is a usage error" "$CHARLM" viz \
    --model "$OUT/lstm.ckpt" --text "$CORPUS" --prime "A" --out "$OUT/x.html"
expect 1 "viz of a missing model fails cleanly" "$CHARLM" viz --model "$OUT/none.ckpt" \
    --text "$CORPUS" --out "$OUT/x.html"
printf 'caf\xc3\xa9\n' >"$OUT/accent.txt"
expect 1 "a character outside the vocabulary is reported" "$CHARLM" viz \
    --model "$OUT/lstm.ckpt" --text "$OUT/accent.txt" --out "$OUT/x.html"
expect 0 "charlm viz --help" "$CHARLM" viz --help

# the pages
FROM=1000
CHARS=3000
expect 0 "viz an LSTM over $CHARS characters of the corpus" "$CHARLM" viz \
    --model "$OUT/lstm.ckpt" --text "$CORPUS" --from $FROM --chars $CHARS --out "$OUT/lstm.html"
expect 0 "viz a GRU over sampled text (--prime)" "$CHARLM" viz --model "$OUT/gru.ckpt" \
    --prime "ROMEO:" --len 600 --out "$OUT/gru.html"
expect 0 "viz an RNN" "$CHARLM" viz --model "$OUT/rnn.ckpt" --text "$CORPUS" --chars 800 \
    --out "$OUT/rnn.html"
page=$(realpath "$OUT/lstm.html")

chromium_run dom "file://$page#layer=0&unit=0&q=forget" "$OUT/lstm_a.dom.html" &&
    ok "chromium dumps the LSTM page (#layer=0&unit=0&q=forget)" || bad "chromium --dump-dom"
chromium_run dom "file://$page#layer=1&unit=7&q=cell" "$OUT/lstm_b.dom.html" &&
    ok "chromium dumps the LSTM page (#layer=1&unit=7&q=cell)" || bad "chromium --dump-dom"
chromium_run dom "file://$(realpath "$OUT/gru.html")#layer=0&unit=3&q=update" \
    "$OUT/gru.dom.html" && ok "chromium dumps the GRU page" || bad "chromium --dump-dom (GRU)"
chromium_run dom "file://$(realpath "$OUT/rnn.html")#layer=1&unit=5&q=hidden" \
    "$OUT/rnn.dom.html" && ok "chromium dumps the RNN page" || bad "chromium --dump-dom (RNN)"

tally "$PY" tests/viz/check_dom.py "$OUT/lstm_a.dom.html" "$CORPUS" $FROM $CHARS \
    --q forget --layer 0 --unit 0 --cell-names forget,candidate,input,cell,output,hidden
tally "$PY" tests/viz/check_dom.py "$OUT/lstm_b.dom.html" "$CORPUS" $FROM $CHARS \
    --q cell --layer 1 --unit 7 --other "$OUT/lstm_a.dom.html"
tally "$PY" tests/viz/check_dom.py "$OUT/gru.dom.html" - 0 0 --q update --layer 0 --unit 3 \
    --cell-names update,reset,candidate,hidden
tally "$PY" tests/viz/check_dom.py "$OUT/rnn.dom.html" "$CORPUS" 0 800 --q hidden --layer 1 \
    --unit 5 --cell-names hidden

# 20,000 characters: every span there, and the first colouring (decoding included) is quick
expect 0 "viz 20000 characters" "$CHARLM" viz --model "$OUT/lstm.ckpt" --text "$CORPUS" \
    --chars 20000 --out "$OUT/long.html"
chromium_run dom "file://$(realpath "$OUT/long.html")#layer=1&unit=2&q=output" \
    "$OUT/long.dom.html" && ok "chromium dumps the 20000-character page" || bad "chromium (long)"
spans=$(sed -n '/<div id="text"/,/<\/div>/p' "$OUT/long.dom.html" | grep -o '<span' | wc -l)
[ "$spans" -eq 20000 ] && ok "20000 character spans" || bad "20000 character spans ($spans)"
render_ms=$(grep -o 'data-render-ms="[0-9.]*"' "$OUT/long.dom.html" | grep -o '[0-9.]*')
ready_ms=$(grep -o 'data-ready-ms="[0-9.]*"' "$OUT/long.dom.html" | grep -o '[0-9.]*')
echo "# 20000 characters: colouring took ${render_ms:-?} ms, page ready after ${ready_ms:-?} ms"
if [ -n "$render_ms" ] && awk -v t="$render_ms" 'BEGIN { exit !(t < 2000) }'; then
    ok "recolouring 20000 characters takes under 2 s (${render_ms} ms)"
else
    bad "recolouring 20000 characters takes under 2 s (${render_ms:-none} ms)"
fi

# a text with quotes: "inside quotes" is among the features the units are ranked by
for i in $(seq 1 60); do
    printf 'She said "come here, %d" and he said "no".\nThen they left <b>&amp; \\ ok</script>\n' "$i"
done >"$OUT/quotes.txt"
expect 0 "train on a text with quotes" "$CHARLM" train --data "$OUT/quotes.txt" --hidden 8 \
    --layers 1 --seq 16 --batch 4 --steps 10 --eval-every 0 --quiet --threads 1 \
    --save "$OUT/quotes.ckpt"
expect 0 "viz the text with quotes" "$CHARLM" viz --model "$OUT/quotes.ckpt" \
    --text "$OUT/quotes.txt" --out "$OUT/quotes.html"
if grep -q '"top":\[.*{"f":0,' "$OUT/quotes.html"; then ok "units ranked by 'inside quotes'"
else bad "units ranked by 'inside quotes'"; fi
chromium_run dom "file://$(realpath "$OUT/quotes.html")#layer=0&unit=1&q=input" \
    "$OUT/quotes.dom.html" && ok "chromium dumps the quotes page" || bad "chromium (quotes)"
tally "$PY" tests/viz/check_dom.py "$OUT/quotes.dom.html" "$OUT/quotes.txt" 0 100000 \
    --q input --layer 0 --unit 1

# the prime is where the sampled page starts
if grep -q '"text":"ROMEO:' "$OUT/gru.html"; then ok "the sampled text starts with the prime"
else bad "the sampled text starts with the prime"; fi

# a page of a real model, when one is given (how docs/viz.png is made):
#   VIZ_MODEL=lm.ckpt VIZ_FRAGMENT='#layer=1&unit=10&q=hidden&at=200' tests/viz/browser_test.sh
if [ -n "${VIZ_MODEL:-}" ]; then
    expect 0 "viz $VIZ_MODEL over ${VIZ_CHARS:=4000} characters" "$CHARLM" viz \
        --model "$VIZ_MODEL" --text "$CORPUS" --from "${VIZ_FROM:-0}" --chars "$VIZ_CHARS" \
        --title "${VIZ_TITLE:-tinyshakespeare LSTM}" --out "$OUT/model.html"
    chromium_run png "file://$(realpath "$OUT/model.html")${VIZ_FRAGMENT:-}" "$OUT/model.png" &&
        ok "screenshot $OUT/model.png" || bad "screenshot $OUT/model.png"
fi

# screenshots for people to look at
if chromium_run png "file://$page#layer=1&unit=7&q=cell" "$OUT/viz.png" &&
    [ "$(head -c 8 "$OUT/viz.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
    [ "$(stat -c %s "$OUT/viz.png")" -gt 20000 ]; then
    ok "screenshot $OUT/viz.png"
else
    bad "screenshot $OUT/viz.png"
fi
finish
