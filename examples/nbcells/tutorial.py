"""Cells of the notebook from seed 001: "An IPython Notebook as an Interactive Parallel Computing Tutorial" (gist)."""

from . import md, code, start, STOP

TUTORIAL = [
    md("""
# Interactive parallel computing tutorial

Adapted from the notebook *Interactive IPython Parallel Computing Tutorial* (seed 001,
a gist by tritemio): connect to engines, run code on them with `%px`, move data, and
call functions with `map` and `apply`.

Adaptations: `import cpar as ipp` / `from cpar import Client` instead of
`IPython.parallel`, Python 3 syntax, and `numpy` imported explicitly (the seed ran with
`--pylab`, which put `arange` and `rand` in every namespace). Cells of the seed whose code
was lost (only their outputs survived) are reconstructed from those outputs. The seed's
view returns results directly, so it is made blocking (`dview.block = True`).
"""),
    md("""
## Starting the cluster and a parallel session

The seed started the engines from the notebook dashboard, then connected with
`rc = Client()`. Here the notebook starts them itself:
"""),
    code("""
import cpar as ipp
from cpar import Client
from numpy import arange
"""),
    start(2, "nb-interactive-tutorial", how="client"),
    md("`rc.ids` lists the engines:"),
    code("rc.ids", tag="ids"),
    md("Indexing or slicing `rc` selects engines: all of them here."),
    code("""
dview = rc[:]
dview.block = True
"""),
    md("""
## Execute code on the engines

The `%px` magic runs a command on all the engines:
"""),
    code("%px print('ciao')", tag="px-ciao"),
    code("""
%px import os
%px print(os.getpid())
""", tag="px-getpid"),
    code("""
%px from numpy.random import randint, rand
%px a = rand(5)
%px print(a)
""", tag="px-rand"),
    md("""
Under the hood `%px` calls `dview.execute()`, which returns an AsyncResult; the magic
shows its output right away.

## Transferring data: push/pull

`a` now exists on every engine. Dictionary syntax pulls it:
"""),
    code("dview['a']", tag="pull-a"),
    md("and pushes:"),
    code("dview['b'] = 3"),
    md("`dview.push()` and `dview.pull()` do the same."),
    md("""
## Parallel map

`map_sync` scatters the sequence, applies the function to each part on its engine, and
gathers the results in a list.
"""),
    code("parallel_result = dview.map_sync(lambda x: x**10, arange(32))"),
    code("serial_result = list(map(lambda x:x**10, arange(32)))"),
    code("(parallel_result == serial_result)", tag="map-compare"),
    md("""
## Execute functions on the engines: apply

This calls the same function on all the engines:
"""),
    code("""
dview['a'] = 5
dview['b'] = 10
dview.apply(lambda x: a+b+x, 27)  # noqa: F821 (a, b: on the engines)
""", tag="apply-27"),
    code("ar = dview.apply_async(lambda x: a+b+x, 33)  # noqa: F821"),
    code("ar.get()", tag="apply-33"),
    md("Different functions go to different engines through the view's `targets`:"),
    code("""
dview.targets = 0
ar0 = dview.apply_async(lambda x: a+b+x, 27)  # noqa: F821
dview.targets = 1
ar1 = dview.apply_async(lambda x: a+b+x, 33)  # noqa: F821
"""),
    code("print(ar0.get(), ar1.get())", tag="targets"),
    md("(Alternatively, slice `rc` into several views.) Scatter and gather:"),
    code("""
dview.targets = [0,1]
dview.scatter('a', arange(16))
"""),
    code("dview.gather('a')", tag="gather"),
    code("dview['a']", tag="scattered"),
    STOP,
]
