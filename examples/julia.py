"""Seed 000's Julia workload four ways: serial numpy, cpar with numpy on the engines, and
cpar.kernels (C) serially and on the engines. Prints the times and checks all results
agree pixel for pixel.

    python examples/julia.py [--size 1024] [--tmax 256] [--engines N]
"""

import argparse
import os
import time

import numpy as np

import cpar
from cpar import kernels

C = -0.065 + 0.66j

# The seed's algorithm (Python 3), defined on the engines too.
ENGINE_CODE = """
import numpy as np

def julia_numpy(Z, c, tmax):
    Z = np.copy(Z)
    J = np.ones(Z.shape) * tmax
    for t in range(tmax):
        mask = np.abs(Z) <= 2.
        Z[mask] = Z[mask] ** 2 + c
        J[~mask] -= 1
    return J
"""
namespace = {}
exec(ENGINE_CODE, namespace)
julia_numpy = namespace["julia_numpy"]


def grid(n):
    xs = np.linspace(-1.3, 1.3, n)
    X, Y = np.meshgrid(xs, xs)
    return X + 1j * Y


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tmax", type=int, default=256)
    p.add_argument("--engines", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    Z = grid(args.size)

    J, t_numpy = timed(lambda: julia_numpy(Z, C, args.tmax))
    K, t_kernel = timed(lambda: kernels.julia(Z, C, args.tmax))
    rows = [("serial numpy", t_numpy, J), (f"serial cpar.kernels ({kernels.implementation()})",
                                            t_kernel, K)]
    with cpar.Cluster(n=args.engines, cluster_id="example-julia") as rc:
        view = rc[:]
        view.block = True
        view.execute(ENGINE_CODE)

        def on_engines(code):
            view.scatter("Z", Z)
            view.execute(code)
            return view.gather("J")

        PJ, t_pn = timed(lambda: on_engines(f"J = julia_numpy(Z, {C!r}, {args.tmax})"))
        view.execute("from cpar import kernels")
        PK, t_pk = timed(lambda: on_engines(f"J = kernels.julia(Z, {C!r}, {args.tmax})"))
        n = len(rc.ids)
        rows += [(f"cpar, numpy on {n} engines", t_pn, PJ),
                 (f"cpar, cpar.kernels on {n} engines", t_pk, PK)]
    ok = all(np.array_equal(J, r[2]) for r in rows)
    print(f"Julia set {args.size}x{args.size}, tmax {args.tmax}")
    for name, t, _ in rows:
        print(f"  {name:<40} {t:8.3f} s   {t_numpy / t:7.1f}x serial numpy")
    print(f"all results equal: {ok}")
    if not ok:
        raise SystemExit("results differ")


if __name__ == "__main__":
    main()
