#!/usr/bin/env python3
"""tests/viz/gen_page.py: turns examples/charlm/viz_page.html (the gate viewer's page
template) into examples/charlm/viz_page.c, an array of C string literals.

    python3 tests/viz/gen_page.py            # rewrite viz_page.c
    python3 tests/viz/gen_page.py --check    # exit 1 if viz_page.c is out of date
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "examples", "charlm", "viz_page.html")
OUT = os.path.join(ROOT, "examples", "charlm", "viz_page.c")
MARKER = "<!--TG-DATA-->"
CHUNK = 84


def c_literal(s):
    out = []
    prev = ""
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "?" and prev == "?":
            out.append("\\?")  # no trigraphs
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            raise SystemExit("viz_page.html: only printable ASCII is allowed: %r" % ch)
        else:
            out.append(ch)
        prev = ch
    return out


def render():
    with open(SRC, encoding="ascii") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines.count(MARKER) != 1:
        raise SystemExit("viz_page.html: the marker %s must stand alone on one line" % MARKER)
    body = []
    for line in lines:
        if line == MARKER:
            body.append("    NULL, /* the data */")
            continue
        parts = c_literal(line)
        chunks, cur = [], ""
        for p in parts:
            if len(cur) + len(p) > CHUNK:
                chunks.append(cur)
                cur = ""
            cur += p
        chunks.append(cur)
        for i, c in enumerate(chunks):
            body.append('    "%s"%s' % (c, "," if i == len(chunks) - 1 else ""))
    return ("/* examples/charlm/viz_page.c: the gate viewer's HTML/CSS/JS page template, made\n"
            "   from viz_page.html by tests/viz/gen_page.py (edit the .html, then run it). */\n"
            "#include <stddef.h>\n"
            "#include <stdio.h>\n"
            "\n"
            "#include \"examples/charlm/viz.h\"\n"
            "\n"
            "/* One line each; NULL marks where the data go. */\n"
            "static const char *const page[] = {\n" + "\n".join(body) + "\n};\n"
            "\n"
            "int viz_page_write(FILE *f, int (*data)(FILE *f, void *user), void *user)\n"
            "{\n"
            "    for (size_t i = 0; i < sizeof page / sizeof page[0]; i++) {\n"
            "        if (!page[i]) {\n"
            "            int rc = data(f, user);\n"
            "            if (rc < 0)\n"
            "                return rc;\n"
            "            continue;\n"
            "        }\n"
            "        fputs(page[i], f);\n"
            "        fputc('\\n', f);\n"
            "    }\n"
            "    return 0;\n"
            "}\n")


def main():
    text = render()
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        with open(OUT, encoding="ascii") as f:
            if f.read() != text:
                print("examples/charlm/viz_page.c is out of date: run tests/viz/gen_page.py")
                return 1
        return 0
    with open(OUT, "w", encoding="ascii") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
