"""Checks that cpar's C folders are layers (docs/architecture.md): every ``#include "..."``
of a file names a header of its own folder or of a folder below it, no header include
chain is a cycle, and the pure-C layers never include Python.h or NumPy.

    python tools/check_layers.py        # exit status 1 and one line per violation

Run by ``make lint``.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> the folders whose headers it may include (itself always).
ALLOWED = {
    "cext/core": set(),
    "cext/controller": {"cext/core"},
    "cext/pyglue": {"cext/core"},
    "cext/module": {"cext/core", "cext/controller", "cext/pyglue"},
    "engine": {"cext/core", "cext/pyglue"},
    # The kernels stand alone; they share only the error codes of core.
    "cext/kernels": {"cext/core/errors.h"},
}
PURE_C = {"cext/core", "cext/controller"}
INCLUDE = re.compile(r'^\s*#\s*include\s+(["<])([^">]+)[">]', re.M)


def sources():
    for folder in ALLOWED:
        path = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                yield folder, name


def main():
    where = {}  # header name -> its folder
    for folder, name in sources():
        if name.endswith(".h"):
            if name in where:
                print(f"{folder}/{name}: header name also in {where[name]}")
                return 1
            where[name] = folder
    problems = []
    graph = {}
    for folder, name in sources():
        rel = f"{folder}/{name}"
        with open(os.path.join(ROOT, rel)) as f:
            text = f.read()
        deps = []
        for kind, inc in INCLUDE.findall(text):
            if kind == "<":
                if folder in PURE_C and (inc == "Python.h" or inc.startswith("numpy/")):
                    problems.append(f"{rel}: {folder} is pure C but includes <{inc}>")
                continue
            home = where.get(inc)
            if home is None:
                problems.append(f"{rel}: includes \"{inc}\", which is no project header")
                continue
            target = f"{home}/{inc}"
            allowed = ALLOWED[folder]
            if home != folder and home not in allowed and target not in allowed:
                problems.append(f"{rel}: includes {target}: {folder} may not reach "
                                f"{home}")
            deps.append(target)
        graph[rel] = deps
    # Cycles among headers (a .c file is never included).
    state = {}

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep] if dep in stack else [node, dep]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node.endswith(".h") and node not in state:
            visit(node, [node])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
