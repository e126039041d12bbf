"""Seed 003's Monte Carlo estimate of pi, three ways: serial numpy, cpar with numpy on
every engine (the seed's ``multi_mcpi``), and cpar.kernels' counter-based streams split
across the engines — which give exactly the count one process gets.

    python examples/mcpi.py [--samples 20000000] [--engines N]
"""

import argparse
import math
import os
import time

import numpy as np

import cpar
from cpar import kernels


def mcpi_numpy(nsamples):
    """The seed's ``mcpi`` (numpy's global generator, so not reproducible across splits)."""
    import numpy as np

    x = np.random.rand(nsamples)
    y = np.random.rand(nsamples)
    return 4.0 * ((x * x + y * y) < 1.0).sum() / nsamples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=20_000_000)
    p.add_argument("--engines", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    n = args.samples

    t0 = time.perf_counter()
    serial = mcpi_numpy(n)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    hits_one = kernels.pi_hits(n, args.seed)
    t_kernel = time.perf_counter() - t0

    with cpar.Cluster(n=args.engines, cluster_id="example-mcpi") as rc:
        view = rc[:]
        p_engines = len(rc.ids)
        t0 = time.perf_counter()
        parts = view.apply_sync(mcpi_numpy, n // p_engines)
        multi = float(np.mean(parts))
        t_multi = time.perf_counter() - t0

        # Engine k counts points [lo_k, hi_k) of the same stream: the union is exactly
        # the points one process counts.
        bounds = np.linspace(0, n, p_engines + 1).astype(int)
        t0 = time.perf_counter()
        ars = [rc[e].apply_async(kernels.pi_hits, int(hi - lo), args.seed, 0, int(lo))
               for e, lo, hi in zip(rc.ids, bounds[:-1], bounds[1:])]
        hits_split = sum(ar.get() for ar in ars)
        t_split = time.perf_counter() - t0

    print(f"Monte Carlo pi, {n:,} samples")
    rows = [("serial numpy", serial, t_serial),
            (f"cpar, numpy on {p_engines} engines", multi, t_multi),
            ("serial cpar.kernels", 4 * hits_one / n, t_kernel),
            (f"cpar, cpar.kernels on {p_engines} engines", 4 * hits_split / n, t_split)]
    for name, est, t in rows:
        print(f"  {name:<36} pi ~ {est:.6f}  (error {abs(est - math.pi):.1e})  {t:7.3f} s")
    same = hits_split == hits_one
    print(f"split across engines counts exactly what one process counts: {same}")
    if not same:
        raise SystemExit("the split count differs")


if __name__ == "__main__":
    main()
