"""Many engines on one machine: start N idle engines at once (a registration storm), time
until all are registered, run ``rc[:].apply_sync`` over all of them, and sum the RSS of
every process. ``python -m bench.scale [-n 256]``; writes bench/results/scale-<date>.json
(README's performance section cites the newest)."""

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import cpar
from cpar import paths

from . import procs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=256)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cluster = cpar.Cluster(n=args.n, cluster_id="bench-scale", start_timeout=600)
    rc = cluster.start_and_connect_sync()
    try:
        started = time.perf_counter() - t0
        rc.wait_for_engines(args.n, timeout=600)
        ids = rc.ids
        t1 = time.perf_counter()
        pids = rc[:].apply_sync(os.getpid)
        first = time.perf_counter() - t1
        times = []
        for _ in range(10):
            t1 = time.perf_counter()
            rc[:].apply_sync(int)
            times.append(time.perf_counter() - t1)
        ctl = paths.read_json(rc.url_file)["controller_pid"]
        total = sum(procs.rss_mb(p) for p in list(pids) + [ctl])
        print(f"{len(ids)} engines registered (ids {ids[0]}..{ids[-1]}, all distinct: "
              f"{len(set(ids)) == len(ids)}) in {started:.1f} s")
        print(f"rc[:].apply_sync(os.getpid) over {len(pids)} engines: {first * 1e3:.0f} ms; "
              f"no-op apply on all: median {statistics.median(times) * 1e3:.1f} ms")
        print(f"RSS of the controller and all engines: {total:.0f} MB "
              f"({total / len(pids):.1f} MB per engine)")
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           f"scale-{stamp}.json")
        with open(out, "w") as f:
            json.dump({"date": stamp, "machine": platform.platform(), "cpus": os.cpu_count(),
                       "args": {"n": args.n},
                       "results": {"registered_s": started, "engines": len(ids),
                                   "ids_distinct": len(set(ids)) == len(ids),
                                   "first_apply_s": first,
                                   "apply_all_s": {"min": min(times),
                                                   "median": statistics.median(times),
                                                   "max": max(times), "n": len(times)},
                                   "rss_total_mb": total,
                                   "rss_per_engine_mb": total / len(pids)}}, f, indent=1)
        print(f"written {os.path.relpath(out)}")
    finally:
        cluster.stop_cluster_sync()


if __name__ == "__main__":
    main()
