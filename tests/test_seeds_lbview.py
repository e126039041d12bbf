"""The load-balanced-view code of the seeds (../shared/seeds/), on a real cluster.

Adapted as for tests/test_seeds_directview.py: Python 3 (``print(...)``, ``range`` for
``xrange``, ``//`` where an int is meant), ``import cpar as ipp`` instead of
IPython.parallel. Where a seed reads ``res.result`` (an attribute in the IPython of the
time) it is ``res.result()`` here (``AsyncResult`` is a ``concurrent.futures.Future``).

- seed 000: ``bview = client.load_balanced_view()``, ``bview.apply(f, "Hello World")``,
  ``random_number`` applied once and mapped with ``block=False`` (``ready()``, the
  result, iteration). The seed's prose says the function sleeps a random time, but the
  sleep was lost from its code; it sleeps ``r / 5`` s here so that ``ready()`` is False
  at first, as the seed shows.
- seed 002: "require tasks B and C to finish before task A starts" with
  ``temp_flags(after=[arB, arC])``, and the functional dependencies it mentions
  (``@require``, ``@depend``; an impossible one raises ``ImpossibleDependency``).
- seed 003: ``lview.block = True; lview.apply(...)``, ``lview.map`` with ``block=False``,
  ``res.progress``, the result, ``for result in lview.map(sleep_and_return, range(10))``;
  and the Monte Carlo pi on the load-balanced view: ``multi_mcpi`` needs one sample per
  engine, so ``p`` is the number of engines (``lview.targets`` is None: any engine) and
  the ``p`` sub-runs are a ``map``.
- seed 004: §1.6/1.8, the LoadBalancedView next to the DirectView's ``map``.
"""

import math
import os
import time

import pytest

import cpar as ipp
from cpar import error

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(rc):
    return rc


# ---------------------------------------------------------------------------------------
# seed 000


def test_seed_000_load_balanced_view(client):
    def f(x):
        return x

    bview = client.load_balanced_view()
    bview.block = True  # the seed's bview.apply returns the value itself
    assert bview.apply(f, "Hello World") == "Hello World"

    def random_number(factor):
        import os
        import random
        import time

        r = random.random()
        time.sleep(r / 5)
        return os.getpid(), factor * r

    pids = set(client[:].apply_sync(os.getpid))
    pid, value = bview.apply(random_number, 1)
    assert pid in pids and 0 <= value < 1

    bview.block = False
    res = bview.map(random_number, range(10))
    assert res.ready() is False
    result = res.result()
    assert res.ready() is True
    assert len(result) == 10
    for factor, (pid, value) in enumerate(result):
        assert pid in pids
        assert 0 <= value <= factor
    assert res.progress == 10
    assert len({pid for pid, _ in result}) > 1  # spread over engines

    printed = []
    for result in bview.map(random_number, range(10)):
        printed.append(result)
    assert [len(r) for r in printed] == [2] * 10
    assert printed[0][1] == 0.0  # factor 0, as in the seed's first line


# ---------------------------------------------------------------------------------------
# seed 002


def test_seed_002_dependencies(client):
    view = client.load_balanced_view()

    def f():
        return "A"

    arB = view.apply_async(time.sleep, 0.3)
    arC = view.apply_async(time.sleep, 0.1)
    with view.temp_flags(after=[arB, arC]):
        arA = view.apply_async(f)
    assert arA.get(30) == "A"
    assert arA.metadata.started >= arB.metadata.completed
    assert arA.metadata.started >= arC.metadata.completed

    @ipp.require("os")
    def engine_pid():
        return os.getpid()

    assert view.apply_sync(engine_pid) in set(client[:].apply_sync(os.getpid))

    @ipp.depend(lambda: False)
    def nowhere():
        return 1

    with pytest.raises(error.ImpossibleDependency):
        view.apply_sync(nowhere)


# ---------------------------------------------------------------------------------------
# seed 003


def test_seed_003_load_balanced_view(client, capsys):
    lview = client.load_balanced_view()

    def some_function(par):
        import time

        time.sleep(0.05)
        return par * 2

    def sleep_and_return(x):
        import time

        time.sleep(0.01 * (10 - x))
        return x

    par = 21
    list_of_pars = list(range(40))

    lview.block = True
    assert lview.apply(some_function, par) == 42
    lview.block = False
    res = lview.map(some_function, list_of_pars)
    seen = []
    while not res.ready():
        seen.append(res.progress)  # check how many of the jobs have been completed
        print(res.progress)
        time.sleep(0.02)
    assert seen and 0 <= min(seen) and max(seen) <= len(list_of_pars)
    assert seen == sorted(seen)
    assert res.progress == len(list_of_pars)
    assert res.result() == [p * 2 for p in list_of_pars]
    printed = capsys.readouterr().out.split()
    assert printed == [str(s) for s in seen]

    for result in lview.map(sleep_and_return, range(10)):
        print(result)
    assert capsys.readouterr().out == "".join(f"{i}\n" for i in range(10))


def test_seed_003_monte_carlo_pi(client):
    def mcpi(nsamples):
        from random import random

        s = 0
        for i in range(nsamples):
            x = random()
            y = random()
            if x * x + y * y <= 1:
                s += 1
        return 4.0 * s / nsamples

    def multi_mcpi(view, nsamples):
        p = len(view.client.ids)  # lview.targets is None: any engine
        if nsamples % p:
            # ensure even divisibility
            nsamples += p - (nsamples % p)
        subsamples = nsamples // p
        ar = view.map_async(mcpi, [subsamples] * p)
        return sum(ar) / p

    lview = client.load_balanced_view()
    estimate = multi_mcpi(lview, 2_000_000)
    assert abs(estimate - math.pi) < 0.01


# ---------------------------------------------------------------------------------------
# seed 004


def test_seed_004_load_balanced_next_to_direct(client):
    direct_view = client[:]
    load_balanced = client.load_balanced_view()
    serial_result = list(map(lambda x: x ** 10, range(32)))
    parallel_result = direct_view.map_sync(lambda x: x ** 10, range(32))
    balanced_result = load_balanced.map_sync(lambda x: x ** 10, range(32))
    assert serial_result == parallel_result == balanced_result


# ---------------------------------------------------------------------------------------
# examples/seeds_lbview.py: the same examples as one script, with its own cluster


def test_seeds_lbview_script():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, os.path.join(root, "examples", "seeds_lbview.py")],
        capture_output=True, text=True, timeout=100, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for expected in ["'Hello World'", "False", "True", "A",
                     "A started after B and C ended: True", "5.0", "42",
                     str([2 * p for p in range(40)])] + [str(i) for i in range(10)]:
        assert expected in lines, (expected, out.stdout)
    assert any(line.startswith("ImpossibleDependency:") for line in lines)
    assert any(line.startswith("progress ") for line in lines)
    pi_line = next(line for line in lines if line.startswith("pi ~ "))
    assert abs(float(pi_line.split()[2]) - math.pi) < 0.01
