"""The Julia set of seed 000, computed serially and on a local cpar cluster.

Starts one engine per core, scatters the 1024x1024 grid, runs the seed's numpy escape-time
algorithm on every engine, gathers the result, checks it equals the serial one, prints
both times, and stops the cluster.
"""

import os
import time

import numpy as np

import cpar

# The seed's algorithm, serial and engine-side, is shared with the seeds' example script.
from seeds_directview import JULIA_ENGINE_CODE as CODE
from seeds_directview import julia
from seeds_directview import julia_f as f


def grid(m=1024, n=1024):
    zmin = -1.3 - 1j * 1.3
    zmax = 1.3 + 1j * 1.3
    xs = np.linspace(zmin.real, zmax.real, n)
    ys = np.linspace(zmin.imag, zmax.imag, m)
    X, Y = np.meshgrid(xs, ys)
    return X + 1j * Y


def main():
    n = int(os.environ.get("CPAR_DEMO_ENGINES", os.cpu_count() or 1))
    print(f"starting a local cluster with {n} engines")
    with cpar.Cluster(n=n) as rc:
        dview = rc[:]
        dview.block = True
        dview.execute(CODE)

        size = int(os.environ.get("CPAR_DEMO_GRID", "1024"))
        Z = grid(size, size)
        t0 = time.perf_counter()
        J = julia(f, np.copy(Z))
        serial = time.perf_counter() - t0

        t0 = time.perf_counter()
        dview.scatter("Z", Z)
        dview.execute("ZZ = np.copy(Z)")
        dview.execute("J = julia_parallel(f, ZZ)")
        PJ = dview.gather("J")
        parallel = time.perf_counter() - t0

        same = bool(np.array_equal(J, PJ))
        print(f"serial numpy:          {serial:7.3f} s")
        print(f"cpar on {n} engines:    {parallel:7.3f} s  (speed-up {serial / parallel:.2f}x)")
        print(f"results equal: {same}")
    print("cluster stopped")
    if not same:
        raise SystemExit("the parallel result differs from the serial one")


if __name__ == "__main__":
    main()
