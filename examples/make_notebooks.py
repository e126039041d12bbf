"""Writes the example notebooks (examples/0*.ipynb): the five seed tutorials in
../shared/seeds/, adapted to Python 3 and cpar, without outputs.

    python examples/make_notebooks.py

Each notebook starts its own local cluster in its first code cells
(``ipp.Cluster(n=..., cluster_id="nb-...")``) and stops it in its last cell. Cells whose
outputs tests/test_notebooks.py asserts on carry a tag (``metadata.tags``); keep the tags
when editing a cell. The adaptations (Python 3 syntax, ``import cpar as ipp``, smaller
sizes, left-out cells) are listed in each notebook's first markdown cell.
"""

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))


def md(text):
    return ("md", text.strip("\n"), None)


def code(text, tag=None):
    return ("code", text.strip("\n"), tag)


def start(n, cid, client_name="rc", how="connect", client_class="Client"):
    """The cell that starts the notebook's own cluster."""
    if how == "connect":
        body = f"{client_name} = cluster.start_and_connect_sync()"
    else:  # start, then connect a Client the way the seed does (``Client()``)
        body = ("cluster.start_cluster_sync()\n"
                f"{client_name} = {client_class}(cluster_id={cid!r})\n"
                f"{client_name}.wait_for_engines({n}, timeout=60)")
    return code(
        f"# This notebook starts its own cluster of {n} engines; its last cell stops it.\n"
        f"cluster = ipp.Cluster(n={n}, cluster_id={cid!r})\n{body}",
        tag="start",
    )


STOP = code("cluster.stop_cluster_sync()", tag="stop")


# ---------------------------------------------------------------------------------------
# seed 000: "IPython parallel and Julia sets" (blog post)

JULIA = [
    md("""
# Parallel computing and Julia sets

Adapted from the blog post *IPython parallel and Julia sets* (seed 000): how to run
computations on several engines from a notebook, with direct views, load-balanced views
and the `%px` magics, and a parallel computation of a Julia fractal.

Adaptations: `import cpar as ipp` instead of `IPython.parallel`, Python 3 syntax
(`print(...)`, `range`, `J[~mask]`), `%matplotlib inline` and explicit imports instead of
`%pylab inline`, and a 400x400 grid instead of 1024x1024 so the notebook runs in seconds
(set `m = n = 1024` for the seed's size). `res.result` is the method `res.result()`.
"""),
    code("""
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import cpar as ipp

%matplotlib inline
"""),
    md("""
## The client and its views

The client is a handle on all the engines of a cluster.
"""),
    start(2, "nb-julia-sets", client_name="client"),
    code("""
client.block = True  # Computations run synchronously.
print(client.ids)
""", tag="ids"),
    md("""
### Direct views

A direct view runs a task on every engine of the view at once.
"""),
    code("dview = client.direct_view()"),
    code("""
def f(x):
    return x

dview.apply(f, "Hello World")
""", tag="apply-hello"),
    md("A subset of the engines is selected by slicing the client:"),
    code("""
even_dview = client[::2]
even_dview.apply(f, "Hello World")
""", tag="apply-even"),
    md("""
### Load-balanced views

A load-balanced view runs each task on one engine, chosen by the scheduler.
"""),
    code("""
bview = client.load_balanced_view()

bview.apply(f, "Hello World")
""", tag="bview-hello"),
    md("""
## How do we execute code?

Each engine returns its process id. Locally that would be:
"""),
    code("""
import os
print(os.getpid())
"""),
    md("Applying a function to the view returns one result per engine:"),
    code("dview.apply(os.getpid)", tag="apply-getpid"),
    md("A function decorated with `@dview.remote()` runs on the engines when called:"),
    code("""
@dview.remote()
def getpid():
    import os
    return os.getpid()

getpid()
""", tag="remote-getpid"),
    md("The `%%px` cell magic (and the `%px` line magic) runs code on the view's engines:"),
    code("""
%%px
import os
print(os.getpid())
""", tag="px-getpid"),
    md("Most fundamentally, `execute` runs a string of code:"),
    code("""
res = dview.execute('print(os.getpid())')
res.display_outputs()
""", tag="execute-getpid"),
    md("""
## Imports and environments

Three ways of importing a module on the engines:
"""),
    code("dview.execute('import numpy')"),
    code("%px import numpy"),
    code("""
with dview.sync_imports():
    import numpy  # noqa: F401
""", tag="sync-imports"),
    md("All engines can run the same script (the seed's `hello.py`, in a temporary directory):"),
    code("""
tmp = tempfile.TemporaryDirectory()  # removed when the kernel exits
workdir = tmp.name
"""),
    code("""
%%writefile {workdir}/hello.py

def hello_world():
    print("Hello World")
"""),
    code("""
dview.run(os.path.join(workdir, "hello.py"))
dview.execute("hello_world()").display_outputs()
""", tag="run-hello"),
    md("""
The engines run cells through IPython, so magics work on them, inline plotting
included: the figure drawn on each engine is shown here.
"""),
    code("%px %matplotlib inline"),
    code("""
%%px
import numpy as np
z = np.random.random(10)
"""),
    code("""
%%px
import matplotlib.pyplot as plt
plt.figure(figsize=(4, 2.5))
plt.plot(z, "o-")
plt.title(f"z on process {os.getpid()}")
plt.show()
""", tag="engine-plot"),
    md("""
## Accessing and setting data

The view reads and writes the engines' namespaces like a dictionary:
"""),
    code("""
dview['a'] = 5
dview['b'] = 10
print(dview['a'])
print(dview['os.getpid'])
""", tag="dict-access"),
    md("`push` and `pull` do the same:"),
    code("""
dview.push(dict(a=1, b=2))
dview.pull(('a', 'b'))
""", tag="push-pull"),
    md("`scatter` distributes an array evenly over the engines:"),
    code("""
a = np.arange(32)
dview.scatter('a', a)
%px print(a)
""", tag="scatter-print"),
    md("and `gather` pieces the parts computed on each engine back together:"),
    code("""
%px a = a**2
dview.gather('a')
""", tag="gather"),
    md("""
## Load-balanced views

For tasks of unknown duration. This function sleeps for a random time, then returns the
process id of its engine and a random number times its argument.
"""),
    code("""
def random_number(factor):
    import os
    import random
    import time
    r = random.random()
    time.sleep(r / 5)
    return os.getpid(), factor*r
"""),
    code("bview.apply(random_number, 1)", tag="bview-random"),
    md("With `bview.block = False`, `map` returns an AsyncResult at once:"),
    code("""
bview.block = False
res = bview.map(random_number, range(10))
"""),
    code("res.ready()"),
    md("After waiting, the whole result is there:"),
    code("""
res.wait()
print(res.ready())
print(res.result())
""", tag="bview-map"),
    md("The result of `map` is also iterable, item by item as they come:"),
    code("""
for result in bview.map(random_number, range(10)):
    print(result)
""", tag="bview-iter"),
    md(r"""
## Parallel computing for fractals (Julia sets)

We iterate $f(z) = z^2 + c$ on a grid of the complex plane and count, for each starting
point, the iterations before $|z|$ exceeds 2: the escape set, whose boundary is the
Julia set.
"""),
    code("""
def f(z, c=-.065+.66j):
    return z**2 + c
"""),
    md("The grid: the seed uses 1024x1024 points."),
    code("""
m = n = 400  # the seed: 1024
zmin = -1.3 - 1j * 1.3
zmax = 1.3 + 1j * 1.3

xs = np.linspace(zmin.real, zmax.real, n)
ys = np.linspace(zmin.imag, zmax.imag, m)
X, Y = np.meshgrid(xs, ys)
Z = X + 1j * Y
"""),
    code("print(Z[:2,:2])", tag="grid-corner"),
    code("""
def julia(f, Z, tmax=256):
    J = np.ones(Z.shape) * tmax
    for t in range(tmax):
        mask = np.abs(Z) <= 2.
        Z[ mask] = f(Z[mask])
        J[~mask] -= 1
    return J
"""),
    md("`julia` changes its array in place, so it is given a copy:"),
    code("""
ZZ = np.copy(Z)
J = julia(f, ZZ)
"""),
    code("""
plt.imshow(J, cmap="magma")
plt.axis("off");
"""),
    md("In parallel: first the functions are defined on every engine,"),
    code("""
%%px
import numpy as np

def f(z, c=-.065+.66j):
    return z**2 + c

def julia_parallel(f,Z,tmax=256):
    J = np.ones(Z.shape) * tmax
    for t in range(tmax):
        mask = np.abs(Z) <= 2.
        Z[mask] = f(Z[mask])
        J[~mask] -= 1
    return J
"""),
    md("then the grid is scattered, each engine computes its rows, and the parts are gathered:"),
    code("""
dview.scatter('Z', Z)
%px ZZ = np.copy(Z)
%px J = julia_parallel(f,ZZ)
PJ = dview.gather('J')
"""),
    code("""
plt.imshow(PJ, cmap="magma")
plt.axis("off");
"""),
    md("### So did we speed it up?"),
    code("Z = X + 1j * Y"),
    code("""
%%time
J = julia(f, Z)
""", tag="time-serial"),
    code("Z = X + 1j * Y"),
    code("""
%%time
dview.scatter('Z', Z)
%px ZZ = np.copy(Z)
%px J = julia_parallel(f,ZZ)
PJ = dview.gather('J')
""", tag="time-parallel"),
    md("""
At this small size the overhead weighs; at 1024x1024 the parallel time is close to the
serial time divided by the number of engines. And the answers agree:
"""),
    code("print((J == PJ).all())", tag="julia-compare"),
    STOP,
]


# ---------------------------------------------------------------------------------------
# seed 001: "An IPython Notebook as an Interactive Parallel Computing Tutorial" (gist)

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


# ---------------------------------------------------------------------------------------
# seed 002: IPython Cookbook, "Distributing Python code across multiple cores"

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


# ---------------------------------------------------------------------------------------
# seed 003: "IPython parallel Computing" (blog post)

BLOG = [
    md("""
# IPython parallel computing: direct views, load-balanced views, Monte Carlo $\\pi$

Adapted from the blog post *IPython parallel Computing* (seed 003): the client and its two
kinds of views, blocking and non-blocking calls, imports, scripts, scatter/gather, and a
Monte Carlo estimate of $\\pi$, serial and parallel.

Adaptations: `import cpar as ipp` instead of `from IPython import parallel`, Python 3
syntax (`range`, `//` for the number of samples per engine, `res.result()`). The post's
placeholders are made concrete: `some_function` doubles its argument after a short
sleep, `sleep_and_return` sleeps less for larger arguments, `myscript.py` sets `a` and
`b`. The Monte Carlo estimate uses 1,000,000 samples.
"""),
    md("## Basic concepts"),
    code("""
import os
import tempfile

import numpy as np

import cpar as ipp
"""),
    start(4, "nb-parallel-computing", client_name="clients", how="client",
          client_class="ipp.Client"),
    code("""
dview = clients.direct_view()
lview = clients.load_balanced_view()
"""),
    md("""
## Direct view

Blocking (synchronous) execution, two ways:
"""),
    code("""
## one way
dview.block = True
dview.apply(os.getpid)
""", tag="apply-block"),
    code("""
## another way
dview.apply_sync(os.getpid)
"""),
    md("Non-blocking (asynchronous) execution returns an AsyncResult:"),
    code("""
dview.block = False
res = dview.apply(os.getpid)
res
"""),
    code("res.get()"),
    code("res.ready()", tag="ready"),
    md("Modules used on the engines are imported there:"),
    code("dview.execute('import numpy')"),
    code("""
with dview.sync_imports():
    import numpy  # noqa: F401
"""),
    md("or, in a notebook, with the `%px` magic:"),
    code("%px import numpy"),
    md("`run()` runs a script on the engines (`myscript.py`, written to a temporary directory):"),
    code("""
tmp = tempfile.TemporaryDirectory()  # removed when the kernel exits
workdir = tmp.name
"""),
    code("""
%%writefile {workdir}/myscript.py
a = 20
b = 22
"""),
    code("dview.run(os.path.join(workdir, 'myscript.py')).get()"),
    code("""
print(dview['a'])
print(dview['b'])
## execute code c=a+b
dview.execute('c=a+b').get()
print(dview['c'])
""", tag="execute-c"),
    md("`scatter()` and `gather()` split data over the engines and join it back:"),
    code("""
dview.scatter('a', np.arange(24)).get()
dview.gather('a').get()
""", tag="gather"),
    md("## Load-balanced views"),
    code("""
def some_function(par):
    import time
    time.sleep(0.05)
    return par * 2

def sleep_and_return(x):
    import time
    time.sleep(0.01 * (10 - x))
    return x
"""),
    code("""
lview.block = True
lview.apply(some_function, 21)
""", tag="lview-apply"),
    code("""
## We use block=False so the results come asynchronously.
lview.block = False
res = lview.map(some_function, list(range(40)))
## how many of the jobs have been completed
res.progress
"""),
    code("""
## get the result
print(res.result())
""", tag="lview-result"),
    code("""
## another way to get the result
for result in lview.map(sleep_and_return, range(10)):
    print(result)
""", tag="lview-iter"),
    md("## Example: Monte Carlo $\\pi$\n\nWithout parallelism:"),
    code("""
from random import random
from math import pi

def mcpi(nsamples):
    s = 0
    for i in range(nsamples):
        x = random()
        y = random()
        if x*x + y*y <= 1:
            s+=1
    return 4.*s/nsamples
"""),
    code("""
%%time
serial_pi = mcpi(1_000_000)
print(serial_pi)
""", tag="mcpi-serial"),
    md("In parallel: each engine estimates $\\pi$ from its share of the samples."),
    code("""
def mcpi(nsamples):
    from random import random
    s = 0
    for i in range(nsamples):
        x = random()
        y = random()
        if x*x + y*y <= 1:
            s+=1
    return 4.*s/nsamples

def multi_mcpi(view, nsamples):
    p = len(view.targets)
    if nsamples % p:
        # ensure even divisibility
        nsamples += p - (nsamples%p)
    subsamples = nsamples//p
    ar = view.apply_async(mcpi, subsamples)
    return sum(ar)/p
"""),
    code("""
%%time
parallel_pi = multi_mcpi(clients[:], 1_000_000)
print(parallel_pi)
""", tag="mcpi-parallel"),
    code("print(f'pi ~ {parallel_pi:.5f}, error {abs(parallel_pi - pi):.5f}')", tag="mcpi-error"),
    md("The post found the parallel run almost 4 times faster on 4 cores."),
    STOP,
]


# ---------------------------------------------------------------------------------------
# seed 004: "Parallel Computing with IPython" (TACC training slides)

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


NOTEBOOKS = {
    "00_julia_sets.ipynb": JULIA,
    "01_interactive_tutorial.ipynb": TUTORIAL,
    "02_distributing_code.ipynb": COOKBOOK,
    "03_parallel_computing_blog.ipynb": BLOG,
    "04_tacc_slides.ipynb": TACC,
}


def build(cells):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, text, tag) in enumerate(cells):
        cell = new_markdown_cell(text) if kind == "md" else new_code_cell(text)
        cell["id"] = f"cell-{i:02d}" if tag is None else tag
        if tag is not None:
            cell.metadata["tags"] = [tag]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main():
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, name)
        nbformat.write(build(cells), path)
        print("wrote", os.path.relpath(path))


if __name__ == "__main__":
    main()
