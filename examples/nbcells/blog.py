"""Cells of the notebook from seed 003: "IPython parallel Computing" (blog post)."""

from . import md, code, start, STOP

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
