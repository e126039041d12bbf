"""The direct-view examples of the seeds (../shared/seeds/ 000-004), as one script.

Starts its own local cluster of four engines, runs every DirectView example of the seeds
in order, in Python 3 syntax with ``import cpar as ipp``, and prints what the seeds print
(process ids, random numbers and times differ, of course). ``%px code`` is written
``px(code)``: ``dview.execute(code)`` followed by ``display_outputs()``, which is what the
magic shows. Load-balanced views, ``%pylab`` and plots are left out.

    python examples/seeds_directview.py          # seed 000's Julia set at 1024x1024
    CPAR_SEEDS_GRID=256 python examples/seeds_directview.py
"""

import math
import os
import random
import tempfile
import time

import numpy as np

import cpar as ipp

GRID = int(os.environ.get("CPAR_SEEDS_GRID", "1024"))


def px(view, code):
    """``%px code`` on the view's targets: run it, wait, show what the engines printed."""
    ar = view.execute(code, block=False)
    ar.get()
    ar.display_outputs()
    return ar


def section(title):
    print(f"\n=== {title} ===")


# ---------------------------------------------------------------------------------------
# seed 000: "IPython parallel and Julia sets"


def f(x):
    return x


@ipp.interactive
def getpid_remote():
    import os

    return os.getpid()


def julia_f(z, c=-0.065 + 0.66j):
    return z**2 + c


def julia(f, Z, tmax=256):
    J = np.ones(Z.shape) * tmax
    for t in range(tmax):
        mask = np.abs(Z) <= 2.0
        Z[mask] = f(Z[mask])
        J[~mask] -= 1
    return J


JULIA_ENGINE_CODE = """
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
"""


def seed_000(client, workdir):
    section("seed 000: direct views")
    client.block = True  # Computations run synchronously.
    print(client.ids)

    dview = client.direct_view()
    print(dview.apply(ipp.interactive(f), "Hello World"))
    even_dview = client[::2]
    print(even_dview.apply(ipp.interactive(f), "Hello World"))

    print(os.getpid())
    print(dview.apply(os.getpid))

    getpid = dview.remote()(getpid_remote)
    print(getpid())

    px(dview, "import os\nprint(os.getpid())")  # %%px
    res = dview.execute("print(os.getpid())")
    res.display_outputs()

    dview.execute("import numpy")
    px(dview, "import numpy")
    with dview.sync_imports():
        import numpy  # noqa: F401

    script = os.path.join(workdir, "hello.py")
    with open(script, "w") as fh:
        fh.write('def hello_world():\n    print("Hello World")\n\nhello_world()\n')
    dview.run(script).display_outputs()

    px(dview, "import numpy as np\nz = np.random.random(10)")
    dview["a"] = 5
    dview["b"] = 10
    print(dview["a"])
    print(dview["os.getpid"])

    dview.push(dict(a=1, b=2))
    print(dview.pull(("a", "b")))

    a = np.arange(32)
    dview.scatter("a", a)
    px(dview, "print(a)")
    px(dview, "a = a**2")
    print(repr(dview.gather("a")))

    section(f"seed 000: Julia set ({GRID}x{GRID}, tmax 256)")
    m = n = GRID
    zmin = -1.3 - 1j * 1.3
    zmax = 1.3 + 1j * 1.3
    xs = np.linspace(zmin.real, zmax.real, n)
    ys = np.linspace(zmin.imag, zmax.imag, m)
    X, Y = np.meshgrid(xs, ys)
    Z = X + 1j * Y
    print(Z[:2, :2])

    t0 = time.perf_counter()
    ZZ = np.copy(Z)
    J = julia(julia_f, ZZ)
    serial = time.perf_counter() - t0

    px(dview, JULIA_ENGINE_CODE)  # %%px
    t0 = time.perf_counter()
    dview.scatter("Z", Z)
    px(dview, "ZZ = np.copy(Z)")
    px(dview, "J = julia_parallel(f,ZZ)")
    PJ = dview.gather("J")
    parallel = time.perf_counter() - t0
    print(f"serial: {serial:.2f} s, {len(client.ids)} engines: {parallel:.2f} s")
    print((J == PJ).all())


# ---------------------------------------------------------------------------------------
# seed 001: "An IPython Notebook as an Interactive Parallel Computing Tutorial"


def seed_001(rc):
    section("seed 001: interactive parallel computing tutorial")
    print(rc.ids)
    dview = rc[:]
    px(dview, "print('ciao')")
    px(dview, "import os")
    px(dview, "print(os.getpid())")
    px(dview, "from numpy.random import randint, rand")
    px(dview, "a = rand(5)")
    px(dview, "print(a)")
    print(dview["a"])
    dview["b"] = 3

    parallel_result = dview.map_sync(lambda x: x**10, np.arange(32))
    serial_result = list(map(lambda x: x**10, np.arange(32)))
    print(parallel_result == serial_result)

    dview.block = True
    dview["a"] = 5
    dview["b"] = 10
    print(dview.apply(lambda x: a + b + x, 27))  # noqa: F821
    ar = dview.apply_async(lambda x: a + b + x, 33)  # noqa: F821
    print(ar.get())

    dview.targets = 0
    ar0 = dview.apply_async(lambda x: a + b + x, 27)  # noqa: F821
    dview.targets = 1
    ar1 = dview.apply_async(lambda x: a + b + x, 33)  # noqa: F821
    print(ar0.get(), ar1.get())

    dview.targets = [0, 1]
    dview.scatter("a", np.arange(16))
    print(repr(dview.gather("a")))
    print(dview["a"])


# ---------------------------------------------------------------------------------------
# seed 002: IPython Cookbook, "Distributing Python code across multiple cores"


def seed_002(rc):
    section("seed 002: distributing code across cores")
    print(rc.ids)
    px(rc[:], 'import os\nprint(f"Process {os.getpid():d}.")')
    px(rc[[1, 2]], '# The os module has already been imported in\n'
                   '# the previous cell.\nprint(f"Process {os.getpid():d}.")')
    ar = rc[:].execute("import time\ntime.sleep(1)", block=False)  # %%px -a
    print(ar)
    print(ar.elapsed, ar.ready())
    ar.get()  # %pxresult
    print(ar.elapsed, ar.ready())
    v = rc[:]
    res = v.map(lambda x: x * x, range(10))
    print(res.get())


# ---------------------------------------------------------------------------------------
# seed 003: "IPython parallel Computing" (blog post)


@ipp.interactive
def mcpi(nsamples):
    from random import random

    s = 0
    for i in range(nsamples):
        x = random()
        y = random()
        if x * x + y * y <= 1:
            s += 1
    return 4.0 * s / nsamples


def mcpi_serial(nsamples):
    s = 0
    for i in range(nsamples):
        x = random.random()
        y = random.random()
        if x * x + y * y <= 1:
            s += 1
    return 4.0 * s / nsamples


def multi_mcpi(view, nsamples):
    p = len(view.targets)
    if nsamples % p:
        # ensure even divisibility
        nsamples += p - (nsamples % p)
    subsamples = nsamples // p
    ar = view.apply_async(mcpi, subsamples)
    return sum(ar) / p


def seed_003(clients, workdir):
    section("seed 003: direct view and Monte Carlo pi")
    dview = clients.direct_view()
    dview.block = True
    print(dview.apply(os.getpid))
    print(dview.apply_sync(os.getpid))
    dview.block = False
    res = dview.apply(os.getpid)
    print(res)
    print(res.get())
    print(res.ready())
    dview.execute("import numpy")
    with dview.sync_imports():
        import numpy  # noqa: F401
    script = os.path.join(workdir, "myscript.py")
    with open(script, "w") as fh:
        fh.write("a = 20\nb = 22\n")
    dview.run(script).get()
    print(dview["a"])
    print(dview["b"])
    dview.execute("c=a+b").get()
    print(dview["c"])
    dview.scatter("a", np.arange(24)).get()
    print(repr(dview.gather("a").get()))

    n = 1_000_000
    t0 = time.perf_counter()
    serial = mcpi_serial(n)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    parallel = multi_mcpi(clients[:], n)
    t_parallel = time.perf_counter() - t0
    print(f"pi serial {serial:.4f} in {t_serial:.2f} s, parallel {parallel:.4f} in "
          f"{t_parallel:.2f} s (pi = {math.pi:.4f})")


# ---------------------------------------------------------------------------------------
# seed 004: "Parallel Computing with IPython" (TACC), sections 1.7-1.11


def seed_004(rc):
    section("seed 004: 1.7 the DirectView")
    print(rc.ids)
    direct_view = rc[:]

    section("seed 004: 1.8 the map() function")
    serial_result = list(map(lambda x: x**10, range(32)))
    parallel_result = direct_view.map_sync(lambda x: x**10, range(32))
    print(serial_result == parallel_result)

    section("seed 004: 1.9 remote function decorators")

    @direct_view.remote(block=True)
    def getpid():
        import os

        return os.getpid()

    print(getpid())

    A = np.random.random((64, 48))

    @direct_view.parallel(block=True)
    def pmul(A, B):
        return A * B

    C_local = A * A
    C_remote = pmul(A, A)
    print((C_local == C_remote).all())

    section("seed 004: 1.10 calling Python functions")
    blocking_direct_view = rc[:]
    blocking_direct_view.block = True
    blocking_direct_view["a"] = 10
    blocking_direct_view["b"] = 12
    print(blocking_direct_view.apply(lambda x: a + b + x, 5))  # noqa: F821
    rc[::2].execute("c=a+b")
    rc[1::2].execute("c=a-b")
    print(blocking_direct_view["c"])

    non_blocking_direct_view = rc[:]
    non_blocking_direct_view.block = False

    def wait(t):
        import time

        tic = time.time()
        time.sleep(t)
        return time.time() - tic

    ar = non_blocking_direct_view.apply_async(wait, 2)
    print(ar.get())
    ar = non_blocking_direct_view.apply_async(wait, 3)
    print(ar.ready())
    try:
        print(ar.get(1))
    except ipp.TimeoutError as exc:
        print(f"TimeoutError: {exc}")
    print(ar.get())

    section("seed 004: 1.11 moving objects around")
    print(blocking_direct_view.push(dict(a=1.03234, b=3453)))
    print(blocking_direct_view.pull("a"))
    print(blocking_direct_view.pull("b", targets=0))
    print(blocking_direct_view.pull(("a", "b")))
    print(blocking_direct_view.push(dict(c="speed")))
    ar = non_blocking_direct_view.pull("a")
    print(ar.get())


def main():
    with tempfile.TemporaryDirectory() as workdir, ipp.Cluster(n=4) as rc:
        seed_000(rc, workdir)
        rc.block = False
        seed_001(rc)
        seed_002(rc)
        seed_003(rc, workdir)
        seed_004(rc)
    print("\ncluster stopped")


if __name__ == "__main__":
    main()
