"""Cells of the notebook from seed 000: "IPython parallel and Julia sets" (blog post)."""

from . import md, code, start, STOP

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
