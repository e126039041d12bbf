"""Checks that the files of a C folder call each other in layers: finds every function a
``.c`` file defines without ``static`` and every call to it from another file of the folder,
and fails when that file-level call graph has a cycle or when a file calls up into the loop
(the file that drives the others, given with --top).

    python tools/check_calls.py                       # cext/controller, top controller.c
    python tools/check_calls.py DIR --top FILE.c      # another folder
    python tools/check_calls.py --graph               # also print the graph

Exit status 1 and one line per violation. Run by ``make lint``. A regular-expression
reader, not a C parser: comments, strings and preprocessor lines are blanked first, a
definition is a name followed by a parameter list and a ``{`` at brace depth 0, a call is
a defined name followed by ``(`` anywhere else (a function pointer taken without a call,
``&f`` or ``f`` as an argument, counts too: it is still a dependency).
"""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENT = re.compile(r"\b([A-Za-z_]\w*)\b")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case"}


def strip(text):
    """Blanks comments, string and char literals and preprocessor lines (keeps newlines)."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        ch = text[i]
        if at_line_start and ch == "#":
            # A preprocessor line, with its continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(c if c == "\n" else " " for c in text[i:j]))
            i = j
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(ch + " " * max(0, j - i - 1) + ch)
            i = j + 1
            continue
        if ch == "\n":
            at_line_start = True
        elif not ch.isspace():
            at_line_start = False
        out.append(ch)
        i += 1
    return "".join(out)


def top_level(text):
    """The text at brace depth 0 and the bodies at depth >= 1, as (outside, inside)."""
    outside, inside, depth = [], [], 0
    for ch in text:
        if ch == "{":
            depth += 1
            (outside if depth == 1 else inside).append(ch)
            continue
        if ch == "}":
            depth -= 1
            (outside if depth == 0 else inside).append(ch)
            continue
        (outside if depth == 0 else inside).append(ch)
    return "".join(outside), "".join(inside)


DEFINITION = re.compile(r"([A-Za-z_]\w*)\s*\([^;{}]*\)\s*(?:__attribute__\s*\(\(.*?\)\)\s*)*\{", re.S)


def definitions(text):
    """Names of the non-static functions a file defines (text already stripped)."""
    outside, _ = top_level(text)
    names = set()
    for m in DEFINITION.finditer(outside):
        name = m.group(1)
        if name in KEYWORDS:
            continue
        # The declaration starts after the previous top-level ';' or '}'.
        start = max(outside.rfind(";", 0, m.start()), outside.rfind("}", 0, m.start())) + 1
        decl = outside[start : m.start()]
        if re.search(r"\bstatic\b", decl):
            continue
        names.add(name)
    return names


def build(folder):
    files = sorted(f for f in os.listdir(folder) if f.endswith(".c"))
    texts = {}
    for f in files:
        with open(os.path.join(folder, f)) as fh:
            texts[f] = strip(fh.read())
    owner = {}
    for f in files:
        for name in definitions(texts[f]):
            owner[name] = f
    graph = {f: {} for f in files}  # caller -> callee file -> sorted names
    for f in files:
        _, bodies = top_level(texts[f])
        for name in set(IDENT.findall(bodies)):
            callee = owner.get(name)
            if callee is not None and callee != f:
                graph[f].setdefault(callee, set()).add(name)
    return graph


def cycles(graph):
    """The strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default=os.path.join(ROOT, "cext/controller"))
    ap.add_argument("--top", default="controller.c", help="the loop: nothing may call it")
    ap.add_argument("--graph", action="store_true", help="print the file-level call graph")
    args = ap.parse_args(argv)
    graph = build(args.folder)
    rel = os.path.relpath(args.folder, ROOT)
    if args.graph:
        for f in sorted(graph):
            for g in sorted(graph[f]):
                print(f"{f} -> {g}: {', '.join(sorted(graph[f][g]))}")
    problems = []
    for comp in cycles(graph):
        edges = [
            f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})"
            for a in comp
            for b in sorted(graph[a])
            if b in comp
        ]
        problems.append(f"{rel}: call cycle among {', '.join(comp)}: " + "; ".join(edges))
    for f in sorted(graph):
        if f != args.top and args.top in graph[f]:
            names = ", ".join(sorted(graph[f][args.top]))
            problems.append(f"{rel}/{f}: calls up into the loop {args.top}: {names}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
