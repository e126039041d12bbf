"""Cells of the notebook from seed 002: IPython Cookbook, "Distributing Python code across multiple cores"."""

from . import md, code, start, STOP

COOKBOOK = [
    md("""
# Distributing Python code across multiple cores

Adapted from the IPython Cookbook recipe *Distributing Python code across multiple cores
with IPython* (seed 002, by Cyrille Rossant): the `%px` and `%%px` magics, targets,
non-blocking cells with `%pxresult`, a parallel `map`, and task dependencies.

Adaptations: `from cpar import Client` instead of `ipyparallel`; the notebook starts its
four engines itself instead of `ipcluster start -n 4`; the non-blocking cell sleeps 2 s;
the dependency example of "There's more..." is made runnable (`f`, `arB` and `arC` are
not defined in the recipe).
"""),
    md("""
## How to do it

1. Launch four engines, 2. create a client connected to them:
"""),
    code("""
import cpar as ipp
from cpar import Client
"""),
    start(4, "nb-distributing-code", how="client"),
    md("3. The running engines:"),
    code("rc.ids", tag="ids"),
    md("4. `%px` and `%%px` run code on every engine:"),
    code("""
%%px
import os
print(f"Process {os.getpid():d}.")
""", tag="px-process"),
    md("5. `--targets` (or `-t`) chooses the engines:"),
    code("""
%%px -t 1,2
# The os module has already been imported in
# the previous cell.
print(f"Process {os.getpid():d}.")
""", tag="px-targets"),
    md("""
6. `--noblock` (or `-a`) returns at once, with an AsyncResult as the cell's value:
"""),
    code("""
%%px -a
import time
time.sleep(2)
""", tag="px-noblock"),
    md("7. The AsyncResult, `_`, tells how long the task has run and whether it is done:"),
    code("print(_.elapsed, _.ready())  # noqa: F821 (_: the last output)", tag="elapsed-running"),
    md("8. `%pxresult` blocks until the task finishes:"),
    code("%pxresult", tag="pxresult"),
    code("print(_.elapsed, _.ready())  # noqa: F821", tag="elapsed-done"),
    md("9. A parallel `map`:"),
    code("""
v = rc[:]
res = v.map(lambda x: x * x, range(10))
"""),
    code("print(res.get())", tag="map"),
    md("""
## There's more: dependencies

With a load-balanced view, task A can be made to start only after tasks B and C have
finished:
"""),
    code("""
import time

view = rc.load_balanced_view()
arB = view.apply_async(time.sleep, 0.5)
arC = view.apply_async(time.sleep, 0.2)

def f():
    return "A"

with view.temp_flags(after=[arB, arC]):
    arA = view.apply_async(f)

print(arA.get())
print("A started after B and C ended:",
      arA.metadata.started >= max(arB.metadata.completed, arC.metadata.completed))
""", tag="after"),
    md("`@require` makes a task need modules on its engine; one that no engine can meet fails "
       "with `ImpossibleDependency`:"),
    code("""
import math

@ipp.require("math")
def hypot(x, y):
    return math.hypot(x, y)

print(view.apply_sync(hypot, 3, 4))

@ipp.require("no_such_module")
def g():
    pass

try:
    view.apply_sync(g)
except ipp.ImpossibleDependency as exc:
    print("ImpossibleDependency:", exc)
""", tag="require"),
    STOP,
]
