/* examples/charlm/viz_page.c: the gate viewer's HTML/CSS/JS page template, made
   from viz_page.html by tests/viz/gen_page.py (edit the .html, then run it). */
#include <stddef.h>
#include <stdio.h>

#include "examples/charlm/viz.h"

/* One line each; NULL marks where the data go. */
static const char *const page[] = {
    "<!doctype html>",
    "<!-- examples/charlm/viz_page.html: the gate viewer's page template (tests/viz/gen_p"
    "age.py",
    "     turns it into viz_page.c; 'charlm viz' writes the data where TG-DATA stands). -"
    "->",
    "<html lang=\"en\">",
    "<head>",
    "<meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    "<title>tapegrad gate viewer</title>",
    "<style>",
    ":root {",
    "  --bg: #f5f4ef; --panel: #ffffff; --ink: #1c2330; --muted: #6b7280; --line: #e3e1da"
    ";",
    "  --accent: #0f766e; --warm: #c8423b; --cool: #2f5fc4; --soft: #f0efe9;",
    "}",
    "* { box-sizing: border-box; }",
    "html, body { margin: 0; }",
    "body {",
    "  background: var(--bg); color: var(--ink);",
    "  font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\""
    ", Arial, sans-serif;",
    "}",
    "header { padding: 18px 28px 8px; display: flex; align-items: baseline; gap: 14px; fl"
    "ex-wrap: wrap; }",
    "header h1 { font-size: 19px; margin: 0; font-weight: 680; letter-spacing: -0.01em; }",
    "header h1 small { font-weight: 500; color: var(--muted); }",
    "header .sub { color: var(--muted); font-size: 13px; }",
    ".bar {",
    "  position: sticky; top: 0; z-index: 5; display: flex; gap: 20px; align-items: cente"
    "r;",
    "  flex-wrap: wrap; padding: 10px 28px; border-bottom: 1px solid var(--line);",
    "  background: rgba(245, 244, 239, 0.94); backdrop-filter: blur(6px);",
    "}",
    ".group { display: flex; align-items: center; gap: 8px; }",
    ".lbl {",
    "  font-size: 11px; font-weight: 650; letter-spacing: 0.08em; text-transform: upperca"
    "se;",
    "  color: var(--muted);",
    "}",
    ".seg {",
    "  display: inline-flex; border: 1px solid var(--line); border-radius: 8px; overflow:"
    " hidden;",
    "  background: var(--panel);",
    "}",
    ".seg button {",
    "  border: 0; background: transparent; padding: 5px 11px; font: inherit; color: var(-"
    "-ink);",
    "  cursor: pointer;",
    "}",
    ".seg button + button { border-left: 1px solid var(--line); }",
    ".seg button:hover { background: var(--soft); }",
    ".seg button[aria-pressed=\"true\"] { background: var(--ink); color: #fff; }",
    ".seg button kbd { font-size: 10px; opacity: 0.55; margin-left: 4px; font-family: inh"
    "erit; }",
    "button:focus-visible, input:focus-visible, .pick:focus-visible {",
    "  outline: 2px solid var(--accent); outline-offset: 1px;",
    "}",
    ".unit { display: inline-flex; align-items: center; gap: 0; }",
    ".unit button {",
    "  width: 30px; height: 30px; border: 1px solid var(--line); background: var(--panel)"
    ";",
    "  font: 15px/1 inherit; cursor: pointer; color: var(--ink);",
    "}",
    ".unit button:first-child { border-radius: 8px 0 0 8px; }",
    ".unit button:last-child { border-radius: 0 8px 8px 0; }",
    ".unit button:hover { background: var(--soft); }",
    ".unit input {",
    "  width: 62px; height: 30px; border: 1px solid var(--line); border-left: 0; border-r"
    "ight: 0;",
    "  text-align: center; font: 600 14px/1 ui-monospace, Menlo, Consolas, monospace;",
    "  color: var(--ink); background: var(--panel);",
    "}",
    ".of { color: var(--muted); font-size: 12px; }",
    ".legend { display: flex; align-items: center; gap: 8px; font-size: 12px; color: var("
    "--muted); }",
    ".legend .ramp { width: 150px; height: 10px; border-radius: 5px; border: 1px solid va"
    "r(--line); }",
    "main {",
    "  display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 18px;",
    "  padding: 16px 28px 36px; align-items: start;",
    "}",
    ".card {",
    "  background: var(--panel); border: 1px solid var(--line); border-radius: 12px;",
    "  box-shadow: 0 1px 2px rgba(28, 35, 48, 0.04);",
    "}",
    ".card h2 {",
    "  margin: 0; padding: 11px 16px 0; font-size: 11px; font-weight: 650; letter-spacing"
    ": 0.08em;",
    "  text-transform: uppercase; color: var(--muted);",
    "}",
    ".card h2 span { text-transform: none; letter-spacing: 0; font-weight: 500; }",
    "#text {",
    "  margin: 0; padding: 12px 16px 16px; max-height: 50vh; overflow: auto;",
    "  font: 13.5px/1.62 ui-monospace, \"SFMono-Regular\", Menlo, Consolas, \"DejaVu Sans"
    " Mono\", monospace;",
    "  white-space: pre-wrap; word-break: break-all; cursor: default;",
    "}",
    "#text span { border-radius: 2px; }",
    "#text span.nl { opacity: 0.55; font-size: 11px; }",
    "#text span[data-at] { outline: 2px solid var(--ink); outline-offset: 0; position: re"
    "lative; z-index: 1; }",
    ".side { display: flex; flex-direction: column; gap: 18px; position: sticky; top: 64p"
    "x; }",
    "#inspect { padding: 8px 16px 14px; }",
    ".glyph {",
    "  display: inline-grid; place-items: center; min-width: 40px; height: 40px; padding:"
    " 0 8px;",
    "  border-radius: 8px; border: 1px solid var(--line);",
    "  font: 600 22px/1 ui-monospace, Menlo, Consolas, monospace;",
    "}",
    ".where { color: var(--muted); font-size: 12px; margin-left: 10px; }",
    ".vals { width: 100%; border-collapse: collapse; margin: 10px 0 4px; font-size: 13px;"
    " }",
    ".vals td { padding: 2px 0; }",
    ".vals td:first-child { color: var(--muted); width: 86px; }",
    ".vals td.num { text-align: right; font-family: ui-monospace, Menlo, Consolas, monosp"
    "ace; width: 64px; }",
    ".vals tr.sel td { color: var(--ink); font-weight: 650; }",
    ".track { position: relative; height: 8px; background: var(--soft); border-radius: 4p"
    "x; margin: 0 8px; }",
    ".track i { position: absolute; top: 0; bottom: 0; border-radius: 4px; }",
    ".track b { position: absolute; top: -2px; bottom: -2px; width: 1px; background: #b9b"
    "6ad; }",
    ".preds { margin-top: 8px; }",
    ".pred { display: grid; grid-template-columns: 30px 1fr 50px; align-items: center; ga"
    "p: 8px; font-size: 13px; padding: 1px 0; }",
    ".pred .ch {",
    "  font: 600 13px/20px ui-monospace, Menlo, Consolas, monospace; text-align: center;",
    "  background: var(--soft); border-radius: 5px;",
    "}",
    ".pred.hit .ch { background: var(--accent); color: #fff; }",
    ".pred .pbar { height: 8px; background: var(--soft); border-radius: 4px; overflow: hi"
    "dden; }",
    ".pred .pbar i { display: block; height: 100%; background: #8a94a6; border-radius: 4p"
    "x; }",
    ".pred.hit .pbar i { background: var(--accent); }",
    ".pred .pc { text-align: right; font-family: ui-monospace, Menlo, Consolas, monospace"
    "; color: var(--muted); }",
    ".note { color: var(--muted); font-size: 12px; margin-top: 6px; }",
    "#picks { list-style: none; margin: 0; padding: 6px 8px 10px; }",
    ".pick {",
    "  display: grid; grid-template-columns: 1fr auto; gap: 2px 10px; width: 100%; text-a"
    "lign: left;",
    "  border: 0; background: transparent; padding: 6px 8px; border-radius: 8px; cursor: "
    "pointer;",
    "  font: inherit; color: var(--ink);",
    "}",
    ".pick:hover { background: var(--soft); }",
    ".pick[aria-current=\"true\"] { background: #e6f2f0; }",
    ".pick .feat { font-weight: 600; font-size: 13px; }",
    ".pick .who { color: var(--muted); font-size: 12px; grid-column: 1; }",
    ".pick .r { grid-row: 1 / span 2; grid-column: 2; align-self: center; font: 600 13px "
    "ui-monospace, Menlo, Consolas, monospace; }",
    ".sat { padding: 4px 16px 14px; }",
    ".sat .head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; padding"
    ": 8px 0 2px; }",
    ".sat svg { display: block; width: 100%; height: auto; margin-top: 4px; }",
    ".sat svg .pair { cursor: pointer; }",
    ".sat svg .pair:hover .bg { fill: #eceae3; }",
    ".sat svg .pair.on .bg { fill: rgba(15, 118, 110, 0.22); }",
    ".sat svg text { font: 10px system-ui, sans-serif; fill: var(--muted); }",
    ".sat svg text.ttl { font-weight: 650; fill: var(--ink); font-size: 11px; }",
    ".scatters { display: flex; gap: 18px; flex-wrap: wrap; padding-top: 6px; }",
    ".scatters figure { margin: 0; }",
    ".scatters figcaption { font-size: 12px; font-weight: 600; text-align: center; }",
    ".scatters svg { width: 190px; }",
    ".scatters circle { cursor: pointer; }",
    ".scatters circle.on { stroke: var(--ink); stroke-width: 2; }",
    ".swatch { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin"
    ": 0 4px 0 10px; }",
    ".keys { padding: 8px 16px 12px; font-size: 12px; color: var(--muted); line-height: 1"
    ".8; }",
    "kbd {",
    "  font: 600 11px ui-monospace, Menlo, Consolas, monospace; padding: 1px 5px; border-"
    "radius: 4px;",
    "  border: 1px solid var(--line); border-bottom-width: 2px; background: var(--panel);"
    " color: var(--ink);",
    "}",
    "@media (max-width: 980px) { main { grid-template-columns: 1fr; } .side { position: s"
    "tatic; } }",
    "</style>",
    "</head>",
    "<body>",
    "<header>",
    "  <h1>tapegrad gate viewer <small id=\"ttl\"></small></h1>",
    "  <div class=\"sub\" id=\"sub\"></div>",
    "</header>",
    "<div class=\"bar\" role=\"toolbar\" aria-label=\"what to colour the text by\">",
    "  <div class=\"group\"><span class=\"lbl\">Layer</span><div class=\"seg\" id=\"layer"
    "s\"></div></div>",
    "  <div class=\"group\"><span class=\"lbl\">Quantity</span><div class=\"seg\" id=\"qs"
    "\"></div></div>",
    "  <div class=\"group\"><span class=\"lbl\">Unit</span>",
    "    <div class=\"unit\">",
    "      <button id=\"prev\" title=\"previous unit (&larr;)\" aria-label=\"previous uni"
    "t\">&#8249;</button>",
    "      <input id=\"unit\" type=\"number\" min=\"0\" value=\"0\" aria-label=\"unit num"
    "ber\">",
    "      <button id=\"next\" title=\"next unit (&rarr;)\" aria-label=\"next unit\">&#82"
    "50;</button>",
    "    </div>",
    "    <span class=\"of\" id=\"of\"></span>",
    "  </div>",
    "  <div class=\"legend\"><span id=\"lmin\"></span><div class=\"ramp\" id=\"ramp\"></d"
    "iv><span id=\"lmax\"></span></div>",
    "</div>",
    "<main>",
    "  <div class=\"col\">",
    "    <section class=\"card\">",
    "      <h2>Text <span id=\"textinfo\"></span></h2>",
    "      <div id=\"text\" aria-label=\"the text, coloured by the selected unit\"></div>",
    "    </section>",
    "    <section class=\"card sat\" style=\"margin-top:18px\">",
    "      <div class=\"head\"><h2 style=\"padding:0\">Gate saturation</h2>",
    "        <div class=\"seg\" id=\"satqs\"></div><span class=\"note\" id=\"satnote\"></"
    "span></div>",
    "      <div id=\"charts\"></div>",
    "      <div class=\"head\" style=\"padding-top:14px\"><h2 style=\"padding:0\">Saturat"
    "ion plot</h2>",
    "        <span class=\"note\" id=\"layerkey\" style=\"margin:0\"></span></div>",
    "      <div class=\"note\" style=\"margin-top:2px\">each dot is a unit of a gate: how"
    " often it is",
    "        left-saturated (&lt; 0.1, across) and right-saturated (&gt; 0.9, up), as in "
    "Karpathy,",
    "        Johnson &amp; Fei-Fei (2015), Fig. 3; click one to select it</div>",
    "      <div class=\"scatters\" id=\"scatters\"></div>",
    "    </section>",
    "  </div>",
    "  <aside class=\"side\">",
    "    <section class=\"card\"><h2>Inspector</h2><div id=\"inspect\"></div></section>",
    "    <section class=\"card\"><h2>Most interpretable units</h2><ul id=\"picks\"></ul><"
    "/section>",
    "    <section class=\"card keys\"><kbd>&larr;</kbd> <kbd>&rarr;</kbd> unit &nbsp; <kb"
    "d>shift</kbd> &plusmn;10 &nbsp;",
    "      <kbd>&uarr;</kbd> <kbd>&darr;</kbd> layer &nbsp; <kbd>1</kbd>&hellip;<kbd>9</k"
    "bd> quantity<br>",
    "      <kbd>[</kbd> <kbd>]</kbd> previous / next character &nbsp; <kbd>u</kbd> type a"
    " unit<br>",
    "      click a character to pin it; the address (#layer=&hellip;&amp;unit=&hellip;&am"
    "p;q=&hellip;) keeps the view</section>",
    "  </aside>",
    "</main>",
    NULL, /* the data */
    "<script>",
    "\"use strict\";",
    "(function () {",
    "  var T0 = performance.now();",
    "  var M = JSON.parse(document.getElementById(\"tg-meta\").textContent);",
    "  var N = M.n, L = M.layers, H = M.hidden, Q = M.q.length, K = M.topk;",
    "  var $ = function (id) { return document.getElementById(id); };",
    "  var S = { layer: 0, q: 0, unit: 0, at: -1, pin: -1, satq: -1 };",
    "  var cache = {};",
    "",
    "  /* ---- data ---------------------------------------------------------------- */",
    "  function bytes(id) {",
    "    if (cache[id]) return cache[id];",
    "    var s = atob(document.getElementById(id).textContent), n = s.length;",
    "    var a = new Uint8Array(n);",
    "    for (var i = 0; i < n; i++) a[i] = s.charCodeAt(i);",
    "    return (cache[id] = a);",
    "  }",
    "  function block(l, q) { return bytes(\"tg-d-\" + l + \"-\" + q); }",
    "  var P = (function () { var b = bytes(\"tg-p\"); return new Uint16Array(b.buffer, 0"
    ", b.length >> 1); })();",
    "  function value(l, q, u, t) {",
    "    var b = block(l, q)[u * N + t], k = M.q[q].kind;",
    "    if (k === \"gate\") return b / 255;",
    "    var y = b / 127.5 - 1;",
    "    return k === \"free\" ? y * M.q[q].scale[l][u] : y;",
    "  }",
    "",
    "  /* ---- colours: blue (low) - paper (middle) - red (high) ----------------------- "
    "*/",
    "  var stops = [[0, 47, 95, 196], [0.25, 139, 172, 230], [0.5, 250, 249, 245],",
    "               [0.75, 242, 160, 118], [1, 200, 66, 59]];",
    "  function rgb(x) {",
    "    for (var i = 1; i < stops.length; i++) if (x <= stops[i][0]) break;",
    "    var a = stops[i - 1], b = stops[i], f = (x - a[0]) / (b[0] - a[0]);",
    "    return [0, 1, 2].map(function (c) { return Math.round(a[c + 1] + f * (b[c + 1] -"
    " a[c + 1])); });",
    "  }",
    "  /* one class per byte value: recolouring sets className, no style parsing per span"
    " */",
    "  var CL = [], NLCL = [], rules = [];",
    "  for (var b = 0; b < 256; b++) {",
    "    var c = rgb(b / 255), lum = (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255;",
    "    CL.push(\"c\" + b); NLCL.push(\"nl c\" + b);",
    "    rules.push(\"#text .c\" + b + \" { background-color: rgb(\" + c.join(\", \") + "
    "\")\" +",
    "               (lum < 0.5 ? \"; color: #fff\" : \"\") + \" }\");",
    "  }",
    "  var sheet = document.createElement(\"style\");",
    "  sheet.id = \"palette\"; sheet.textContent = rules.join(\"\\n\");",
    "  document.head.appendChild(sheet);",
    "  $(\"ramp\").style.background = \"linear-gradient(90deg,\" + [0, 0.25, 0.5, 0.75, 1"
    "].map(function (x) {",
    "    return \"rgb(\" + rgb(x).join(\",\") + \")\"; }).join(\",\") + \")\";",
    "",
    "  /* ---- the text -------------------------------------------------------------- */",
    "  function shown(ch) { return ch === \"\\n\" ? \"\\u21b5\" : ch === \" \" ? \"\\u242"
    "3\" : ch === \"\\t\" ? \"\\u21e5\" : ch; }",
    "  function esc(ch) { return ch === \"<\" ? \"&lt;\" : ch === \"&\" ? \"&amp;\" : ch "
    "=== \">\" ? \"&gt;\" : ch; }",
    "  var chars = Array.from(M.text), html = new Array(N);",
    "  for (var t = 0; t < N; t++) {",
    "    var ch = chars[t];",
    "    html[t] = ch === \"\\n\" ? '<span class=\"nl\">\\u21b5</span>\\n' : \"<span>\" +"
    " esc(ch) + \"</span>\";",
    "  }",
    "  var textEl = $(\"text\");",
    "  textEl.innerHTML = html.join(\"\");",
    "  var spans = Array.prototype.slice.call(textEl.children);",
    "  var lineOf = new Int32Array(N), colOf = new Int32Array(N);",
    "  var isNl = new Uint8Array(N);",
    "  for (var t2 = 0, ln = 1, col = 0; t2 < N; t2++) {",
    "    spans[t2].i = t2; lineOf[t2] = ln; colOf[t2] = col; isNl[t2] = chars[t2] === \""
    "\\n\";",
    "    if (chars[t2] === \"\\n\") { ln++; col = 0; } else col++;",
    "  }",
    "",
    "  /* ---- controls --------------------------------------------------------------- *"
    "/",
    "  function segButtons(el, labels, onpick, keys) {",
    "    el.innerHTML = \"\";",
    "    return labels.map(function (lab, i) {",
    "      var b = document.createElement(\"button\");",
    "      b.type = \"button\"; b.textContent = lab;",
    "      if (keys) { var k = document.createElement(\"kbd\"); k.textContent = i + 1; b."
    "appendChild(k); }",
    "      b.addEventListener(\"click\", function () { onpick(i); });",
    "      el.appendChild(b);",
    "      return b;",
    "    });",
    "  }",
    "  var layerBtns = segButtons($(\"layers\"), Array.from({ length: L }, function (_, l"
    ") { return String(l); }),",
    "                             function (l) { set({ layer: l }); });",
    "  var qBtns = segButtons($(\"qs\"), M.q.map(function (q) { return q.name; }),",
    "                         function (q) { set({ q: q }); }, Q <= 9);",
    "  var satQs = [];",
    "  M.q.forEach(function (q, i) { if (q.sat) satQs.push(i); });",
    "  var satBtns = segButtons($(\"satqs\"), satQs.map(function (i) { return M.q[i].name"
    "; }),",
    "                           function (k) { S.satq = satQs[k]; drawCharts(); });",
    "  $(\"unit\").max = H - 1;",
    "  $(\"of\").textContent = \"of \" + H;",
    "  $(\"ttl\").textContent = M.title;",
    "  $(\"sub\").textContent = M.cell.toUpperCase() + \" \\u00b7 \" + L + (L > 1 ? \" la"
    "yers\" : \" layer\") +",
    "    \" \\u00d7 \" + H + \" units \\u00b7 \" + M.vocab.length + \" characters \\u00b7"
    " trained \" + M.steps +",
    "    \" steps\" + (M.val_loss !== null ? \" \\u00b7 validation loss \" + M.val_loss.t"
    "oFixed(3) + \" nats/char\" +",
    "    (M.val_step !== M.steps ? \" (at step \" + M.val_step + \")\" : \"\") : \"\");",
    "  $(\"textinfo\").textContent = \"\\u2014 \" + N.toLocaleString(\"en\") + \" charact"
    "ers: \" + M.source;",
    "",
    "  /* ---- saturation charts --------------------------------------------------------"
    " */",
    "  var SVGNS = \"http://www.w3.org/2000/svg\";",
    "  function svgEl(name, attrs, parent) {",
    "    var e = document.createElementNS(SVGNS, name);",
    "    for (var a in attrs) e.setAttribute(a, attrs[a]);",
    "    if (parent) parent.appendChild(e);",
    "    return e;",
    "  }",
    "  var pairs = [];",
    "  function drawCharts() {",
    "    var box = $(\"charts\");",
    "    box.innerHTML = \"\"; pairs = [];",
    "    satBtns.forEach(function (b, k) { b.setAttribute(\"aria-pressed\", satQs[k] === "
    "S.satq); });",
    "    if (S.satq < 0) { $(\"satnote\").textContent = \"no bounded quantity to chart\";"
    " return; }",
    "    var q = M.q[S.satq], thr = q.thr;",
    "    $(\"satnote\").textContent = \"per unit: fraction of characters with \" + q.name"
    " + \" < \" + thr[0] +",
    "      \" (down) and > \" + thr[1] + \" (up)\";",
    "    var W = 900, pad = 46, h2 = 32, cw = (W - pad - 8) / H;",
    "    for (var l = 0; l < L; l++) {",
    "      var svg = svgEl(\"svg\", { viewBox: \"0 0 \" + W + \" \" + (2 * h2 + 26), \"cl"
    "ass\": \"chart\",",
    "        role: \"img\", \"aria-label\": \"layer \" + l + \" \" + q.name + \" saturati"
    "on\" }, box);",
    "      var y0 = 16 + h2;",
    "      svgEl(\"text\", { x: 0, y: 11, \"class\": \"ttl\" }, svg).textContent = \"laye"
    "r \" + l;",
    "      svgEl(\"text\", { x: pad - 6, y: 16 + 8, \"text-anchor\": \"end\" }, svg).text"
    "Content = \"100%\";",
    "      svgEl(\"text\", { x: pad - 6, y: y0 + 3, \"text-anchor\": \"end\" }, svg).text"
    "Content = \"0\";",
    "      svgEl(\"text\", { x: pad - 6, y: y0 + h2, \"text-anchor\": \"end\" }, svg).tex"
    "tContent = \"100%\";",
    "      var row = [];",
    "      for (var u = 0; u < H; u++) {",
    "        var lo = q.sat[l].lo[u], hi = q.sat[l].hi[u], x = pad + u * cw;",
    "        var g = svgEl(\"g\", { \"class\": \"pair\", \"data-layer\": l, \"data-unit\""
    ": u }, svg);",
    "        svgEl(\"rect\", { \"class\": \"bg\", x: x, y: 16, width: cw, height: 2 * h2,"
    " fill: \"transparent\" }, g);",
    "        svgEl(\"rect\", { \"class\": \"hi\", x: x + cw * 0.12, y: y0 - hi * h2, widt"
    "h: cw * 0.76,",
    "                        height: Math.max(hi * h2, 0), fill: \"#c8423b\", rx: Math.mi"
    "n(cw * 0.2, 2) }, g);",
    "        svgEl(\"rect\", { \"class\": \"lo\", x: x + cw * 0.12, y: y0, width: cw * 0."
    "76,",
    "                        height: Math.max(lo * h2, 0), fill: \"#2f5fc4\", rx: Math.mi"
    "n(cw * 0.2, 2) }, g);",
    "        svgEl(\"title\", {}, g).textContent = \"layer \" + l + \", unit \" + u + \":"
    " \" +",
    "          (100 * lo).toFixed(1) + \"% < \" + thr[0] + \", \" + (100 * hi).toFixed(1)"
    " + \"% > \" + thr[1];",
    "        g.addEventListener(\"click\", (function (ll, uu) { return function () { set("
    "{ layer: ll, unit: uu }); }; })(l, u));",
    "        row.push(g);",
    "      }",
    "      svgEl(\"line\", { x1: pad, x2: W - 8, y1: y0, y2: y0, stroke: \"#b9b6ad\", \"s"
    "troke-width\": 1 }, svg);",
    "      pairs.push(row);",
    "    }",
    "    markChart();",
    "  }",
    "  var LAYER_COLOURS = [\"#0f766e\", \"#d97706\", \"#7c3aed\", \"#db2777\", \"#2563eb"
    "\", \"#65a30d\"];",
    "  var dots = [];",
    "  function drawScatters() {",
    "    var box = $(\"scatters\"), gates = [];",
    "    M.q.forEach(function (q, i) { if (q.kind === \"gate\" && q.sat) gates.push(i); }"
    ");",
    "    if (!gates.length) { box.parentNode.removeChild(box); $(\"layerkey\").parentNode"
    ".style.display = \"none\"; return; }",
    "    var key = \"\";",
    "    for (var l = 0; l < L; l++)",
    "      key += '<span class=\"swatch\" style=\"background:' + LAYER_COLOURS[l % 6] + '"
    "\"></span>layer ' + l;",
    "    $(\"layerkey\").innerHTML = key;",
    "    var S0 = 170, pad = 22;",
    "    gates.forEach(function (qi) {",
    "      var q = M.q[qi], fig = document.createElement(\"figure\");",
    "      var svg = svgEl(\"svg\", { viewBox: \"0 0 \" + (S0 + pad + 6) + \" \" + (S0 + "
    "pad + 6), role: \"img\",",
    "        \"aria-label\": q.name + \" gate saturation plot\" }, fig);",
    "      svgEl(\"rect\", { x: pad, y: 6, width: S0, height: S0, fill: \"#faf9f5\", stro"
    "ke: \"#e3e1da\" }, svg);",
    "      svgEl(\"line\", { x1: pad, y1: 6 + S0, x2: pad + S0, y2: 6, stroke: \"#e3e1da"
    "\", \"stroke-dasharray\": \"3 3\" }, svg);",
    "      svgEl(\"text\", { x: pad, y: S0 + 18, \"text-anchor\": \"middle\" }, svg).text"
    "Content = \"0\";",
    "      svgEl(\"text\", { x: pad + S0, y: S0 + 18, \"text-anchor\": \"middle\" }, svg)"
    ".textContent = \"1\";",
    "      svgEl(\"text\", { x: pad + S0 / 2, y: S0 + 18, \"text-anchor\": \"middle\" }, "
    "svg).textContent =",
    "        \"left-saturated\";",
    "      svgEl(\"text\", { x: pad - 5, y: 10, \"text-anchor\": \"end\" }, svg).textCont"
    "ent = \"1\";",
    "      svgEl(\"text\", { x: 12, y: 6 + S0 / 2, \"text-anchor\": \"middle\",",
    "        transform: \"rotate(-90 12 \" + (6 + S0 / 2) + \")\" }, svg).textContent = "
    "\"right-saturated\";",
    "      for (var l = 0; l < L; l++)",
    "        for (var u = 0; u < H; u++) {",
    "          var c = svgEl(\"circle\", { cx: pad + q.sat[l].lo[u] * S0, cy: 6 + S0 - q."
    "sat[l].hi[u] * S0, r: 3,",
    "            fill: LAYER_COLOURS[l % 6], \"fill-opacity\": 0.62 }, svg);",
    "          svgEl(\"title\", {}, c).textContent = q.name + \", layer \" + l + \", unit"
    " \" + u;",
    "          c.addEventListener(\"click\", (function (ll, uu, qq) {",
    "            return function () { set({ layer: ll, unit: uu, q: qq }); }; })(l, u, qi"
    "));",
    "          dots.push([c, l, u]);",
    "        }",
    "      var cap = document.createElement(\"figcaption\");",
    "      cap.textContent = q.name + \" gate\";",
    "      fig.appendChild(cap);",
    "      box.appendChild(fig);",
    "    });",
    "  }",
    "  function markChart() {",
    "    dots.forEach(function (d) {",
    "      var on = d[1] === S.layer && d[2] === S.unit;",
    "      if (on !== d[0].classList.contains(\"on\")) {",
    "        d[0].classList.toggle(\"on\", on);",
    "        if (on) d[0].parentNode.appendChild(d[0]);",
    "      }",
    "    });",
    "    pairs.forEach(function (row, l) {",
    "      row.forEach(function (g, u) { g.setAttribute(\"class\", l === S.layer && u ==="
    " S.unit ? \"pair on\" : \"pair\"); });",
    "    });",
    "  }",
    "",
    "  /* ---- interpretable units --------------------------------------------------- */",
    "  var pickEls = M.top.map(function (p) {",
    "    var li = document.createElement(\"li\"), b = document.createElement(\"button\");",
    "    b.type = \"button\"; b.className = \"pick\";",
    "    b.innerHTML = '<span class=\"feat\"></span><span class=\"who\"></span><span clas"
    "s=\"r\"></span>';",
    "    b.children[0].textContent = M.features[p.f];",
    "    b.children[1].textContent = \"layer \" + p.layer + \" \\u00b7 \" + M.q[p.q].name"
    " + \" \\u00b7 unit \" + p.unit;",
    "    b.children[2].textContent = \"r \" + (p.r >= 0 ? \"+\" : \"\\u2212\") + Math.abs"
    "(p.r).toFixed(2);",
    "    b.children[2].style.color = p.r >= 0 ? \"var(--warm)\" : \"var(--cool)\";",
    "    b.addEventListener(\"click\", function () { set({ layer: p.layer, q: p.q, unit: "
    "p.unit }); });",
    "    li.appendChild(b); $(\"picks\").appendChild(li);",
    "    return b;",
    "  });",
    "  if (!M.top.length) $(\"picks\").innerHTML = '<li class=\"note\" style=\"padding:4p"
    "x 8px\">no text feature varies in this text</li>';",
    "",
    "  /* ---- the inspector ------------------------------------------------------------"
    " */",
    "  function fmt(x) { return (x < 0 ? \"\\u2212\" : \"\") + Math.abs(x).toFixed(Math.a"
    "bs(x) >= 10 ? 1 : 3); }",
    "  function track(x, kind, scale) {",
    "    var lo = kind === \"gate\" ? 0 : -scale, hi = kind === \"gate\" ? 1 : scale;",
    "    var mid = kind === \"gate\" ? 0 : 0, f = function (v) { return 100 * (v - lo) / "
    "(hi - lo); };",
    "    var a = Math.min(f(x), f(mid)), b2 = Math.max(f(x), f(mid)), c = rgb(Math.max(0,"
    " Math.min(1, (x - lo) / (hi - lo))));",
    "    return '<div class=\"track\"><b style=\"left:' + f(mid) + '%\"></b><i style=\"le"
    "ft:' + a + '%;width:' +",
    "      Math.max(b2 - a, 1.5) + '%;background:rgb(' + c.join(\",\") + ')\"></i></div>'"
    ";",
    "  }",
    "  function inspect() {",
    "    var t = S.at, el = $(\"inspect\");",
    "    if (t < 0) { el.innerHTML = '<p class=\"note\">Hover over a character (click to "
    "pin it, or press <kbd>]</kbd>) to see its values and the model\\u2019s next-characte"
    "r predictions.</p>'; return; }",
    "    var rows = \"\";",
    "    for (var q = 0; q < Q; q++) {",
    "      var v = value(S.layer, q, S.unit, t), k = M.q[q].kind;",
    "      var sc = k === \"free\" ? M.q[q].scale[S.layer][S.unit] : 1;",
    "      rows += '<tr class=\"' + (q === S.q ? \"sel\" : \"\") + '\"><td>' + M.q[q].nam"
    "e + \"</td><td>\" +",
    "        track(v, k, sc) + '</td><td class=\"num\">' + fmt(v) + \"</td></tr>\";",
    "    }",
    "    var preds = \"\", next = t + 1 < N ? chars[t + 1] : null, o = t * (2 * K + 1);",
    "    for (var j = 0; j < K; j++) {",
    "      var id = P[o + j], p = P[o + K + j] / 65535;",
    "      if (p <= 0) continue;",
    "      var ch = M.vocab[id], hit = ch === next;",
    "      preds += '<div class=\"pred' + (hit ? \" hit\" : \"\") + '\"><span class=\"ch"
    "\">' + esc(shown(ch)) +",
    "        '</span><span class=\"pbar\"><i style=\"width:' + (100 * p).toFixed(1) + '%"
    "\"></i></span><span class=\"pc\">' +",
    "        (100 * p).toFixed(1) + \"%</span></div>\";",
    "    }",
    "    var pn = P[o + 2 * K];",
    "    el.innerHTML = '<div><span class=\"glyph\">' + esc(shown(chars[t])) + '</span><s"
    "pan class=\"where\">character ' +",
    "      t + \" \\u00b7 line \" + lineOf[t] + \", column \" + colOf[t] + '</span></div>"
    "<table class=\"vals\">' + rows +",
    "      '</table><div class=\"note\">layer ' + S.layer + \", unit \" + S.unit + '</div"
    "><div class=\"preds\"><div class=\"lbl\" style=\"margin:10px 0 4px\">Next character<"
    "/div>' +",
    "      preds + \"</div>\" + (next !== null ? '<div class=\"note\">actual next: <b>' +"
    " esc(shown(next)) + \"</b>, p = \" +",
    "      (100 * pn / 65535).toFixed(1) + \"%</div>\" : \"\");",
    "  }",
    "  function at(t) {",
    "    if (S.at >= 0) spans[S.at].removeAttribute(\"data-at\");",
    "    S.at = Math.max(-1, Math.min(N - 1, t));",
    "    if (S.at >= 0) spans[S.at].setAttribute(\"data-at\", \"\");",
    "    inspect();",
    "  }",
    "  function pin(t, scroll) {",
    "    S.pin = Math.max(-1, Math.min(N - 1, t));",
    "    at(S.pin);",
    "    if (scroll && S.pin >= 0) spans[S.pin].scrollIntoView({ block: \"nearest\" });",
    "    writeHash();",
    "  }",
    "  textEl.addEventListener(\"mouseover\", function (e) {",
    "    var s = e.target;",
    "    if (s.parentNode === textEl && s.i !== undefined && s.i !== S.at) at(s.i);",
    "  });",
    "  textEl.addEventListener(\"mouseleave\", function () { if (S.at !== S.pin) at(S.pin"
    "); });",
    "  textEl.addEventListener(\"click\", function (e) {",
    "    var s = e.target;",
    "    if (s.parentNode === textEl && s.i !== undefined) pin(s.i === S.pin ? -1 : s.i, "
    "false);",
    "  });",
    "",
    "  /* ---- state, rendering and the URL fragment ------------------------------------"
    "-- */",
    "  function render() {",
    "    var d = block(S.layer, S.q), base = S.unit * N;",
    "    for (var t = 0; t < N; t++) spans[t].className = (isNl[t] ? NLCL : CL)[d[base + "
    "t]];",
    "    layerBtns.forEach(function (b, l) { b.setAttribute(\"aria-pressed\", l === S.lay"
    "er); });",
    "    qBtns.forEach(function (b, q) { b.setAttribute(\"aria-pressed\", q === S.q); });",
    "    $(\"unit\").value = S.unit;",
    "    var q = M.q[S.q];",
    "    if (q.kind === \"gate\") { $(\"lmin\").textContent = \"0\"; $(\"lmax\").textCont"
    "ent = \"1\"; }",
    "    else if (q.kind === \"tanh\") { $(\"lmin\").textContent = \"\\u22121\"; $(\"lmax"
    "\").textContent = \"+1\"; }",
    "    else { var s = q.scale[S.layer][S.unit]; $(\"lmin\").textContent = fmt(-s); $(\""
    "lmax\").textContent = \"+\" + fmt(s); }",
    "    if (q.sat && S.satq !== S.q) { S.satq = S.q; drawCharts(); } else markChart();",
    "    pickEls.forEach(function (b, i) {",
    "      var p = M.top[i];",
    "      b.setAttribute(\"aria-current\", p.layer === S.layer && p.q === S.q && p.unit "
    "=== S.unit);",
    "    });",
    "    document.title = \"layer \" + S.layer + \" \" + q.name + \" unit \" + S.unit + "
    "\" \\u2014 tapegrad gate viewer\";",
    "    inspect();",
    "  }",
    "  function set(c, fromHash) {",
    "    var t0 = performance.now();",
    "    if (c.layer !== undefined) S.layer = Math.max(0, Math.min(L - 1, c.layer | 0));",
    "    if (c.q !== undefined) S.q = Math.max(0, Math.min(Q - 1, c.q | 0));",
    "    if (c.unit !== undefined) S.unit = ((c.unit | 0) % H + H) % H;",
    "    render();",
    "    document.documentElement.setAttribute(\"data-render-ms\", (performance.now() - t"
    "0).toFixed(1));",
    "    if (c.at !== undefined && c.at !== S.pin) {",
    "      S.pin = Math.min(N - 1, c.at); at(S.pin);",
    "      var r = spans[S.pin].getBoundingClientRect(), box = textEl.getBoundingClientRe"
    "ct();",
    "      if (r.top < box.top || r.bottom > box.bottom)",
    "        textEl.scrollTop += r.top - box.top - box.height / 3;",
    "    }",
    "    if (!fromHash) writeHash();",
    "  }",
    "  function writeHash() {",
    "    var h = \"#layer=\" + S.layer + \"&unit=\" + S.unit + \"&q=\" + encodeURICompone"
    "nt(M.q[S.q].name) +",
    "      (S.pin >= 0 ? \"&at=\" + S.pin : \"\");",
    "    if (location.hash !== h) history.replaceState(null, \"\", h);",
    "  }",
    "  function fromHash() {",
    "    var c = {}, h = location.hash.replace(/^#/, \"\");",
    "    h.split(\"&\").forEach(function (kv) {",
    "      var p = kv.split(\"=\"), k = p[0], v = decodeURIComponent(p[1] || \"\");",
    "      if (k === \"layer\" && /^\\d+$/.test(v)) c.layer = +v;",
    "      if (k === \"unit\" && /^\\d+$/.test(v)) c.unit = +v;",
    "      if (k === \"at\" && /^\\d+$/.test(v)) c.at = +v;",
    "      if (k === \"q\") M.q.forEach(function (q, i) { if (q.name === v) c.q = i; });",
    "    });",
    "    return c;",
    "  }",
    "  window.addEventListener(\"hashchange\", function () { set(fromHash(), true); });",
    "",
    "  $(\"prev\").addEventListener(\"click\", function () { set({ unit: S.unit - 1 }); }"
    ");",
    "  $(\"next\").addEventListener(\"click\", function () { set({ unit: S.unit + 1 }); }"
    ");",
    "  $(\"unit\").addEventListener(\"change\", function () {",
    "    var v = parseInt(this.value, 10);",
    "    if (!isNaN(v)) set({ unit: Math.max(0, Math.min(H - 1, v)) }); else this.value ="
    " S.unit;",
    "  });",
    "  document.addEventListener(\"keydown\", function (e) {",
    "    if (e.target.tagName === \"INPUT\" || e.ctrlKey || e.metaKey || e.altKey) {",
    "      if (e.key === \"Escape\") e.target.blur();",
    "      return;",
    "    }",
    "    var step = e.shiftKey ? 10 : 1;",
    "    switch (e.key) {",
    "    case \"ArrowLeft\": set({ unit: S.unit - step }); break;",
    "    case \"ArrowRight\": set({ unit: S.unit + step }); break;",
    "    case \"ArrowUp\": set({ layer: S.layer - 1 }); break;",
    "    case \"ArrowDown\": set({ layer: S.layer + 1 }); break;",
    "    case \"[\": pin(S.pin < 0 ? 0 : S.pin - 1, true); break;",
    "    case \"]\": pin(S.pin + 1, true); break;",
    "    case \"Escape\": pin(-1, false); break;",
    "    case \"u\": $(\"unit\").focus(); $(\"unit\").select(); break;",
    "    default:",
    "      if (/^[1-9]$/.test(e.key) && +e.key <= Q) { set({ q: +e.key - 1 }); break; }",
    "      return;",
    "    }",
    "    e.preventDefault();",
    "  });",
    "",
    "  S.satq = satQs.length ? satQs[0] : -1;",
    "  drawScatters();",
    "  drawCharts();",
    "  var start = fromHash();",
    "  if (start.layer === undefined && start.unit === undefined && start.q === undefined"
    " && M.top.length)",
    "    start = { layer: M.top[0].layer, q: M.top[0].q, unit: M.top[0].unit };",
    "  set(start, true);",
    "  var de = document.documentElement;",
    "  de.setAttribute(\"data-script-ms\", (performance.now() - T0).toFixed(1));",
    "  de.setAttribute(\"data-ready-ms\", performance.now().toFixed(1));",
    "})();",
    "</script>",
    "</body>",
    "</html>",
};

int viz_page_write(FILE *f, int (*data)(FILE *f, void *user), void *user)
{
    for (size_t i = 0; i < sizeof page / sizeof page[0]; i++) {
        if (!page[i]) {
            int rc = data(f, user);
            if (rc < 0)
                return rc;
            continue;
        }
        fputs(page[i], f);
        fputc('\n', f);
    }
    return 0;
}
