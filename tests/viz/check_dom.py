#!/usr/bin/env python3
"""tests/viz/check_dom.py: assertions on a gate-viewer page as Chromium dumped its DOM.

    check_dom.py DOM.html TEXT_FILE FROM CHARS [--q NAME --layer L --unit U] [--other DOM2.html]

Prints one 'ok - ...' or 'not ok - ...' line per assertion and exits 1 if any failed.
"""
import argparse
import base64
import json
import re
import sys

results = []


def check(ok, what):
    results.append(bool(ok))
    print(("ok - " if ok else "not ok - ") + what)


def text_spans(dom):
    """The spans of the #text element, as (attrs, content) pairs."""
    m = re.search(r'<div id="text"[^>]*>(.*?)</div>', dom, re.S)
    if not m:
        return None
    return re.findall(r"<span([^>]*)>(.*?)</span>", m.group(1), re.S)


def unescape(s):
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


PALETTE = {}


def colour(attrs):
    """The background colour a span's class gives it (from the page's palette sheet)."""
    m = re.search(r'class="[^"]*\b(c\d+)\b', attrs)
    return PALETTE.get(m.group(1)) if m else None


def read_palette(dom):
    m = re.search(r'<style id="palette">(.*?)</style>', dom, re.S)
    rule = r"#text \.(c\d+) \{ background-color: rgb\((\d+), (\d+), (\d+)\)"
    for cls, r, g, b in re.findall(rule, m.group(1) if m else ""):
        PALETTE[cls] = (int(r), int(g), int(b))
    return len(PALETTE)


def block(dom, layer, q):
    m = re.search(r'<script id="tg-d-%d-%d" type="application/octet-stream">([^<]*)</script>'
                  % (layer, q), dom)
    return base64.b64decode(m.group(1)) if m else None


def meta_of(dom):
    m = re.search(r'<script id="tg-meta" type="application/json">(.*?)</script>', dom, re.S)
    return json.loads(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dom")
    ap.add_argument("text")
    ap.add_argument("start", type=int)
    ap.add_argument("chars", type=int)
    ap.add_argument("--q")
    ap.add_argument("--layer", type=int)
    ap.add_argument("--unit", type=int)
    ap.add_argument("--other", help="a dump of the same page under another fragment")
    ap.add_argument("--cell-names", help="the quantities expected, comma-separated")
    a = ap.parse_args()
    dom = open(a.dom, encoding="utf-8").read()
    name = a.dom.split("/")[-1]
    meta = meta_of(dom)
    check(meta is not None, "%s: the page carries its data (tg-meta)" % name)
    if meta is None:
        return 1
    if a.text == "-":
        want = meta["text"]
    else:
        want = open(a.text, encoding="utf-8").read()[a.start:a.start + a.chars]
    n, L, H = meta["n"], meta["layers"], meta["hidden"]
    check(n == len(want), "%s: %d characters recorded" % (name, len(want)))
    check(read_palette(dom) == 256, "%s: a palette of 256 colours" % name)
    spans = text_spans(dom)
    check(spans is not None and len(spans) == len(want),
          "%s: one span per character (%d)" % (name, len(spans or [])))
    shown = "".join("\n" if c == "\u21b5" else unescape(c) for _, c in spans or [])
    check(shown == want, "%s: the spans spell the text exactly" % name)
    cols = [colour(at) for at, _ in spans or []]
    check(all(cols), "%s: every character span is coloured" % name)

    qnames = [q["name"] for q in meta["q"]]
    if a.cell_names:
        check(qnames == a.cell_names.split(","), "%s: quantities %s" % (name, ",".join(qnames)))
    charts = re.findall(r'<svg[^>]*class="chart".*?</svg>', dom, re.S)
    check(len(charts) == L, "%s: one saturation chart per layer (%d)" % (name, len(charts)))
    for i, svg in enumerate(charts):
        pairs = re.findall(r'<g class="pair[^"]*"[^>]*>(.*?)</g>', svg, re.S)
        full = [p for p in pairs if 'class="hi"' in p and 'class="lo"' in p]
        check(len(pairs) == H and len(full) == H,
              "%s: layer %d chart has one bar pair per unit (%d of %d)" % (name, i, len(full), H))
    check(not re.search(r'(src|href)\s*=\s*"(https?:)?//', dom) and "<link" not in dom,
          "%s: self-contained (no external resources)" % name)

    if a.q is not None:
        q = qnames.index(a.q) if a.q in qnames else -1
        check(q >= 0, "%s: quantity %s exists" % (name, a.q))
        def pressed(seg):
            m = re.search(r'<div class="seg" id="%s">(.*?)</div>' % seg, dom, re.S)
            button = r'<button[^>]*aria-pressed="true"[^>]*>([^<]*)'
            return re.findall(button, m.group(1) if m else "")
        check(pressed("layers") == [str(a.layer)] and pressed("qs") == [a.q],
              "%s: the fragment selected layer %d and %s (pressed: %s, %s)"
              % (name, a.layer, a.q, pressed("layers"), pressed("qs")))
        m = re.search(r'<title>([^<]*)</title>', dom)
        check(m and ("unit %d " % a.unit) in m.group(1),
              "%s: the page's title names unit %d (%s)" % (name, a.unit, m and m.group(1)))
        data = block(dom, a.layer, q) if q >= 0 else None
        check(data is not None and len(data) == H * n, "%s: data block %d-%d" % (name, a.layer, q))
        if data is not None and all(cols):
            run = data[a.unit * n:(a.unit + 1) * n]
            by_byte = {}
            for b, c in zip(run, cols):
                by_byte.setdefault(b, set()).add(c)
            check(all(len(s) == 1 for s in by_byte.values()),
                  "%s: each value has one colour (the text shows unit %d)" % (name, a.unit))
            # blue (low) to red (high): red minus blue never falls as the value grows
            # (but for the rounding of each channel to an integer)
            warmth = [next(iter(by_byte[b]))[0] - next(iter(by_byte[b]))[2]
                      for b in sorted(by_byte)]
            check(all(x <= y + 2 for x, y in zip(warmth, warmth[1:])) and
                  (len(warmth) < 2 or warmth[0] < warmth[-1]),
                  "%s: colours run from blue (low) to red (high) over %d values"
                  % (name, len(warmth)))
    if a.other:
        other = open(a.other, encoding="utf-8").read()
        ocols = [colour(at) for at, _ in text_spans(other) or []]
        diff = sum(1 for x, y in zip(cols, ocols) if x != y)
        check(len(ocols) == len(cols) and diff > len(cols) // 10,
              "%s vs %s: another fragment recolours the text (%d of %d spans differ)"
              % (name, a.other.split("/")[-1], diff, len(cols)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
