"""Push/pull bandwidth of large numpy arrays between a client and engines on one host.

Prints one table: for each size, push and pull to one engine and push to all engines, in
GB/s and as a ratio to this machine's memcpy bandwidth (the reference of DESIGN §8).

    python -m bench.transfer [--sizes 100,1000] [--engines 4] [--repeat 3]

Set CPAR_SHM=0 to measure the TCP path (the shared-memory path is the default).
"""

import argparse
import os
import tempfile
import time

import numpy as np


def memcpy_gbps(nbytes=256 << 20, repeat=5):
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def times(fn, repeat):
    """(first, best) wall time of `repeat` calls: the first one includes the kernel's cost
    of memory a process touches for the first time; the best is the steady state."""
    first, best = None, float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        first = dt if first is None else first
        best = min(best, dt)
    return first, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000", help="array sizes in MB, comma separated")
    ap.add_argument("--engines", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()

    os.environ.setdefault("CPAR_DIR", tempfile.mkdtemp(prefix="cpar-bench-"))
    import cpar

    ref = memcpy_gbps()
    mode = "tcp (CPAR_SHM=0)" if os.environ.get("CPAR_SHM", "1") == "0" else "shm"
    rows = []
    with cpar.Cluster(n=args.engines, cluster_id="bench-transfer") as rc:
        rc.wait_for_engines(args.engines, timeout=60)
        one = rc[0]
        one.block = True
        allv = rc[:]
        allv.block = True
        for mb in (int(s) for s in args.sizes.split(",")):
            nbytes = mb * 1000 * 1000
            a = np.ones(nbytes // 8, dtype=np.float64)
            n = len(rc.ids)
            push = times(lambda: one.push({"a": a}), args.repeat)  # leaves `a` for pull
            pull = times(lambda: one.pull("a"), args.repeat)
            one.execute("a = None")
            push_all = times(lambda: allv.push({"b": a}), args.repeat)
            allv.execute("b = None")
            a = None  # free the array before the next size
            rows.append((f"{mb} MB", "push, 1 engine", nbytes, push))
            rows.append((f"{mb} MB", "pull, 1 engine", nbytes, pull))
            rows.append((f"{mb} MB", f"push, {n} engines", n * nbytes, push_all))
    print(f"\ncpar transfer bandwidth, path: {mode}; memcpy reference {ref:.2f} GB/s")
    print("(GB/s of the best of the repeats; 'first' is the first, cold, transfer)\n")
    print(f"{'size':>8}  {'operation':<18} {'GB/s':>7} {'/ memcpy':>9} {'first GB/s':>11}")
    for size, op, nbytes, (first, best) in rows:
        gbps = nbytes / best / 1e9
        print(f"{size:>8}  {op:<18} {gbps:7.2f} {gbps / ref:9.2f} {nbytes / first / 1e9:11.2f}")


if __name__ == "__main__":
    main()
