"""Cells of the notebook from seed 004: "Parallel Computing with IPython" (TACC training slides)."""

from . import md, code, start, STOP

TACC = [
    md("""
# Parallel computing with IPython (TACC slides)

Adapted from *Parallel Computing with IPython*, Python in HPC tutorial by Andy R. Terrel and
Yaakoub El Khamra, TACC training, Oct. 15 2012 (seed 004, CC BY 3.0): sections 1.7-1.12,
the direct view, `map`, remote functions, `apply`, moving objects around, and the
parallel magics.

Adaptations: `import cpar as ipp` / `from cpar import Client` instead of
`IPython.parallel`, Python 3 syntax; the waits of 2 s and 10 s are 1 s and 3 s, and
`ar.get(1)` on the unfinished task is shown raising its `TimeoutError` (the slides show
the result a later run printed). The architecture sections (1.1-1.6) are text only, and
the notebook starts its engines itself instead of `ipcluster start --engines=MPI -n 4`.
Section 1.12 goes on a little past the slides with `%pxconfig`, `%pxresult`, `%autopx`
and `activate`, which the slides only mention.
"""),
    md("## 1.7 The DirectView"),
    code("""
import numpy as np

import cpar as ipp
from cpar import Client
"""),
    start(4, "nb-tacc-slides", how="client"),
    code("""
# check the id's of the engines
print(rc.ids)
# Create a DirectView object that will use all of the available engines
direct_view = rc[:]
""", tag="ids"),
    md("## 1.8 The map() function\n\nThe DirectView's `map` does no dynamic load balancing."),
    code("""
# serial version run on the controller
serial_result = list(map(lambda x:x**10, range(32)))
# parallel version run on the engines
parallel_result = direct_view.map_sync(lambda x: x**10, range(32))
# make sure they are equal
serial_result==parallel_result
""", tag="map-compare"),
    md("## 1.9 Remote function decorators"),
    code("""
@direct_view.remote(block=True)
def getpid():
    import os
    return os.getpid()
"""),
    code("getpid()", tag="remote-getpid"),
    md("`@parallel` splits element-wise operations over the engines and joins the result:"),
    code("""
A = np.random.random((64,48))

@direct_view.parallel(block=True)
def pmul(A,B):
    return A*B

C_local = A*A

C_remote = pmul(A,A)

(C_local == C_remote).all()
""", tag="pmul"),
    md("## 1.10 Calling Python functions"),
    code("""
# Setup a blocking view
blocking_direct_view = rc[:]
blocking_direct_view.block = True

# Set the values of a and b on all engines
blocking_direct_view['a'] = 10
blocking_direct_view['b'] = 12

# Apply a function
blocking_direct_view.apply(lambda x: a+b+x, 5)  # noqa: F821 (a, b: on the engines)
""", tag="apply-5"),
    md("Code as strings, on chosen engines:"),
    code("""
# execute on 0 and 2
rc[::2].execute('c=a+b')
# execute on 1 and 3
rc[1::2].execute('c=a-b')
# retrieve c from the engines
blocking_direct_view['c']
""", tag="pull-c"),
    md("In non-blocking mode `apply` returns an AsyncResult at once:"),
    code("""
non_blocking_direct_view = rc[:]
non_blocking_direct_view.block = False

# create a dummy wait function
def wait(t):
    import time
    tic = time.time()
    time.sleep(t)
    return time.time()-tic

# in non-blocking mode
ar = non_blocking_direct_view.apply_async(wait,1)
# now block for the result
ar.get()
"""),
    code("ar = non_blocking_direct_view.apply_async(wait,3)"),
    code("""
# poll to see if the result is ready
ar.ready()
""", tag="ready"),
    code("""
# Ask for the result but wait for a maximum of 1 second:
try:
    ar.get(1)
except ipp.TimeoutError as exc:
    print("TimeoutError:", exc)
""", tag="get-timeout"),
    code("ar.get()"),
    md("## 1.11 Moving objects around"),
    code("blocking_direct_view.push(dict(a=1.03234,b=3453))"),
    code("blocking_direct_view.pull('a')", tag="pull-a"),
    code("blocking_direct_view.pull('b', targets=0)", tag="pull-b0"),
    code("blocking_direct_view.pull(('a','b'))", tag="pull-ab"),
    code("blocking_direct_view.push(dict(c='speed'))"),
    md("In non-blocking mode `push` and `pull` return AsyncResults:"),
    code("""
ar = non_blocking_direct_view.pull('a')
ar.get()
"""),
    md("""
## 1.12 Parallel magic commands

The magics are available as soon as a client is created:
"""),
    code("rc = Client(cluster_id='nb-tacc-slides')"),
    code("""
# Import numpy everywhere, including controller
with rc[:].sync_imports():
    import numpy  # noqa: F401 (used by the %px cells below)
""", tag="sync-imports"),
    md("`%px` runs one command on the engines of the active view:"),
    code("""
%px a = numpy.random.rand(2,2)
# to see the result:
%px print(a)
""", tag="px-print-a"),
    md("An expression's value is shown per engine, as `Out[engine:count]`:"),
    code("%px a.shape", tag="px-out"),
    code("""
%%px --targets ::2
print("I am even")
""", tag="px-even"),
    code("""
%%px --targets 1
print("I am number 1")
""", tag="px-one"),
    md("""
Magic notes from the slides:

- A non-blocking `%px` shows no output; `%pxresult` shows the outputs of the latest
  command, as a blocking `%px` would. `%pxconfig` changes the active view's blocking mode
  (and targets):
"""),
    code("""
%pxconfig --noblock
%px import time; time.sleep(0.5); print("done without blocking")
"""),
    code("%pxresult", tag="pxresult"),
    code("%pxconfig --block"),
    md("- `%autopx` switches to a mode where every cell runs on the engines, until `%autopx` "
       "again:"),
    code("%autopx", tag="autopx-on"),
    code("""
import os
print("autopx on", os.getpid())
""", tag="autopx-cell"),
    code("%autopx", tag="autopx-off"),
    md("- The active view changes with a view's `activate` method: here the odd engines,"),
    code("""
odd = rc[1::2]
odd.block = True
odd.activate()
%px print("odd engine")
""", tag="activate-odd"),
    md("with a suffix, a second set of magics (`%px_even`, `%%px_even`, ...) is bound to "
       "another view,"),
    code("""
even = rc[::2]
even.block = True
even.activate("_even")
%px_even print("even engine")
""", tag="activate-even"),
    md("and `rc.activate()` makes a blocking view on all the engines the active one again:"),
    code("""
rc.activate()
%px print('all engines')
""", tag="activate-all"),
    STOP,
]
