"""cpar beside its peers, in one run: `python -m bench` (or `make bench`).

Each system starts fresh with the same number of workers, runs the same measurements,
and stops; the table prints cpar's ratio to each peer. Peers: ipyparallel,
dask.distributed and multiprocessing.Pool (those installed; `make bench` installs them).
Writes bench/results/<date>.json.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

from . import systems

HERE = os.path.dirname(os.path.abspath(__file__))


def stats(samples):
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "n": len(samples)}


def timed(fn, repeat):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure(system, args):
    """Every measurement of one system, as {name: stats} (seconds or rates)."""
    res = {}
    t0 = time.perf_counter()
    system.start(args.workers)
    res["start"] = stats([time.perf_counter() - t0])
    try:
        res["rss_idle_mb"] = stats([systems.descendants_rss_mb()])
        system.apply_one()  # warm up
        n = args.roundtrips
        res["roundtrip_one"] = stats([t / n for t in timed(lambda: [system.apply_one()
                                                                     for _ in range(n)], 5)])
        if system.has_all:
            res["roundtrip_all"] = stats([t / n for t in timed(lambda: [system.apply_all()
                                                                         for _ in range(n)], 5)])
        tasks = args.tasks
        res["tasks_per_s"] = stats([tasks / t for t in timed(lambda: system.submit_many(tasks),
                                                             3)])
        items = args.map_items
        res["map_items_per_s"] = stats([items / t for t in timed(lambda: system.map_chunked(items),
                                                                 3)])
    finally:
        t0 = time.perf_counter()
        system.stop()
        res["stop"] = stats([time.perf_counter() - t0])
    return res


ROWS = [
    # key, label, unit, better ("low" or "high"), scale
    ("start", "cluster start until ready", "s", "low", 1),
    ("stop", "cluster stop", "s", "low", 1),
    ("rss_idle_mb", "RSS of all processes, idle", "MB", "low", 1),
    ("roundtrip_one", "no-op round trip, one worker", "ms", "low", 1e3),
    ("roundtrip_all", "no-op round trip, all workers", "ms", "low", 1e3),
    ("tasks_per_s", "individually submitted no-op tasks", "/s", "high", 1),
    ("map_items_per_s", "chunked map of no-op items", "/s", "high", 1),
]


def table(results):
    names = list(results)
    peers = [n for n in names if n != "cpar"]
    head = f"{'measurement (median)':<38}" + "".join(f"{n:>17}" for n in names)
    head += "".join(f"{'vs ' + p:>19}" for p in peers)
    lines = [head, "-" * len(head)]
    for key, label, unit, better, scale in ROWS:
        cells, vals = [], {}
        for n in names:
            r = results[n].get(key)
            vals[n] = r["median"] * scale if r else None
            cells.append(f"{vals[n]:>14.4g}{unit:>3}" if r else f"{'n/a':>17}")
        ratios = []
        for p in peers:
            a, b = vals.get("cpar"), vals.get(p)
            if a and b:
                # Ratio as "times better": >1 means cpar wins.
                ratios.append(f"{(b / a if better == 'low' else a / b):>18.1f}x")
            else:
                ratios.append(f"{'n/a':>19}")
        lines.append(f"{label:<38}" + "".join(cells) + "".join(ratios))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--roundtrips", type=int, default=200)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--map-items", type=int, default=100_000)
    p.add_argument("--systems", default="cpar,ipyparallel,dask,multiprocessing")
    args = p.parse_args(argv)

    results = {}
    for name in args.systems.split(","):
        system = systems.make(name)
        if system is None:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results[name] = measure(system, args)

    print(table(results))
    print("ratios: how many times better cpar is (above 1: cpar wins)")
    for name in results:
        note = getattr(systems.make(name), "note", None)
        if note:
            print(f"note ({name}): {note}")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    path = os.path.join(HERE, "results", f"{stamp}.json")
    with open(path, "w") as f:
        json.dump({"machine": platform.platform(), "cpus": os.cpu_count(), "args": vars(args),
                   "results": results}, f, indent=1)
    print(f"\nwritten {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
