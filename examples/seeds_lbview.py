"""The load-balanced examples of the seeds (../shared/seeds/ 000, 002, 003), as one script.

Starts its own local cluster of four engines, runs every LoadBalancedView example of the
seeds in order, in Python 3 syntax with ``import cpar as ipp``, and prints what the seeds
print (process ids, random numbers and times differ, of course). ``res.result`` (an
attribute in the IPython of the seeds) is ``res.result()``.

    python examples/seeds_lbview.py
"""

import math
import os
import time

import cpar as ipp


def section(title):
    print(f"\n=== {title} ===")


def f(x):
    return x


def random_number(factor):
    import os
    import random
    import time

    r = random.random()
    time.sleep(r / 5)  # "sleeps for a random amount of time" (lost from the seed's code)
    return os.getpid(), factor * r


def some_function(par):
    import time

    time.sleep(0.05)
    return par * 2


def sleep_and_return(x):
    import time

    time.sleep(0.01 * (10 - x))
    return x


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
    p = len(view.client.ids)  # a load-balanced view's targets are None: any engine
    if nsamples % p:
        # ensure even divisibility
        nsamples += p - (nsamples % p)
    subsamples = nsamples // p
    ar = view.map_async(mcpi, [subsamples] * p)
    return sum(ar) / p


def main():
    with ipp.Cluster(n=4, cluster_id="seeds-lbview") as client:
        client.wait_for_engines(4, timeout=60)

        section("seed 000: IPython parallel and Julia sets (load-balanced views)")
        bview = client.load_balanced_view()
        bview.block = True
        print(repr(bview.apply(f, "Hello World")))
        print(bview.apply(random_number, 1))
        bview.block = False
        res = bview.map(random_number, range(10))
        print(res.ready())
        res.wait()
        print(res.ready())
        print(res.result())
        for result in bview.map(random_number, range(10)):
            print(result)

        section("seed 002: dependencies (temp_flags(after=[arB, arC]))")
        view = client.load_balanced_view()
        arB = view.apply_async(time.sleep, 0.3)
        arC = view.apply_async(time.sleep, 0.1)
        with view.temp_flags(after=[arB, arC]):
            arA = view.apply_async(lambda: "A")
        print(arA.get())
        print("A started after B and C ended:",
              arA.metadata.started >= max(arB.metadata.completed, arC.metadata.completed))

        @ipp.require("math")
        def hypot(x, y):
            return math.hypot(x, y)

        print(view.apply_sync(hypot, 3, 4))
        try:
            view.apply_sync(ipp.require("no_such_module_xyz")(f), 1)
        except ipp.ImpossibleDependency as exc:
            print("ImpossibleDependency:", exc)

        section("seed 003: load-balanced views")
        lview = client.load_balanced_view()
        lview.block = True
        print(lview.apply(some_function, 21))
        lview.block = False
        res = lview.map(some_function, list(range(40)))
        while not res.ready():
            print("progress", res.progress)
            time.sleep(0.1)
        print(res.result())
        for result in lview.map(sleep_and_return, range(10)):
            print(result)
        t0 = time.perf_counter()
        estimate = multi_mcpi(lview, 4_000_000)
        print(f"pi ~ {estimate:.4f} (error {abs(estimate - math.pi):.4f}) "
              f"in {time.perf_counter() - t0:.2f} s on {len(client.ids)} engines")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
