"""What the task database costs (docs/taskdb.md): load-balanced tasks per second with the
database on (``--db sqlite``, the default, a file) and off (``--db none``), alternately on
the same machine; then, with the database on and bounded as configured, the controller's
RSS and the database file's size as 1,000,000 tasks pass.

    python -m bench.taskdb [--tasks 10000] [--rounds 5] [--total 1000000]

Writes bench/results/taskdb-<date>.json and prints a table. The target (issue 16): on
within 15% of off.
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

from . import procs
from .measure import stats
from .report import write_json
from .systems import Cpar

HERE = os.path.dirname(os.path.abspath(__file__))


def _start(db, workers, cluster_id, **kw):
    system = Cpar(cluster_id=cluster_id, db=db, **kw)
    system.start(workers)
    return system


def _rate(system, n):
    """Individual apply_async calls per second, each waited for."""
    t0 = time.perf_counter()
    system.submit_many(n)
    return n / (time.perf_counter() - t0)


def on_off(args):
    """Rates with the database on and off, one cluster each, measured alternately."""
    systems = {db: _start(db, args.workers, f"bench-db-{db}") for db in ("sqlite", "none")}
    rates = {db: [] for db in systems}
    try:
        for system in systems.values():
            _rate(system, 2000)  # warm
        for _ in range(args.rounds):
            for db, system in systems.items():
                rates[db].append(_rate(system, args.tasks))
    finally:
        for system in systems.values():
            system.stop()
    return {db: stats(r) for db, r in rates.items()}


def growth(args, dbdir):
    """Controller RSS and database size, sampled as args.total tasks pass (database on)."""
    dbfile = os.path.join(dbdir, "bench.sqlite")
    system = _start("sqlite", args.workers, "bench-db-growth", db_file=dbfile,
                    db_max_records=args.max_records)
    rc = system.rc
    samples = []
    try:
        ctrl = system.controller_pid()
        done, step = 0, args.total // 10
        t0 = time.perf_counter()
        while done < args.total:
            system.map(step, 1)
            done += step
            busy_mb = procs.rss_mb(ctrl)
            # A query is answered after every write queued before it: the database has
            # caught up with the burst, and its thread has returned what it freed.
            rc.db_query({"msg_id": "0" * 32}, keys=["msg_id"])
            time.sleep(0.2)
            size = sum(os.path.getsize(os.path.join(dbdir, f)) for f in os.listdir(dbdir))
            samples.append({"tasks": done, "rss_mb": procs.rss_mb(ctrl), "busy_rss_mb": busy_mb,
                            "db_mb": size / 1e6, "seconds": time.perf_counter() - t0})
            print(f"  {done:>9,} tasks: controller RSS {samples[-1]['rss_mb']:.1f} MB (at the "
                  f"map's end {busy_mb:.1f} MB), "
                  f"database {samples[-1]['db_mb']:.1f} MB", file=sys.stderr, flush=True)
        records = len(rc.hub_history())
    finally:
        system.stop()
    return {"samples": samples, "records_kept": records, "max_records": args.max_records}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.taskdb", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=10_000, help="apply_async calls per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--total", type=int, default=1_000_000, help="tasks of the growth run")
    p.add_argument("--max-records", type=int, default=100_000,
                   help="the growth run's --db-max-records")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cpar-bench-db-") as tmp:
        os.environ.setdefault("CPAR_DIR", tmp)
        rates = on_off(args)
        grow = growth(args, tmp) if args.total else None
    on, off = rates["sqlite"]["median"], rates["none"]["median"]
    head = f"load-balanced apply_async, {args.tasks:,} per round"
    print(f"{head:48} {'median':>10} {'min':>10} {'max':>10}")
    for db, label in (("sqlite", "database on (sqlite file)"), ("none", "database off")):
        s = rates[db]
        print(f"  {label:46} {s['median']:10,.0f} {s['min']:10,.0f} {s['max']:10,.0f}  /s")
    print(f"  on / off: {on / off:.3f} (target >= 0.85: {'met' if on / off >= 0.85 else 'NOT met'})")
    if grow:
        first, last = grow["samples"][0], grow["samples"][-1]
        print(f"growth over {last['tasks']:,} tasks (max_records {grow['max_records']:,}): "
              f"controller RSS {first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB, database "
              f"{first['db_mb']:.1f} -> {last['db_mb']:.1f} MB, {grow['records_kept']:,} "
              f"records kept")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    path = os.path.join(HERE, "results", f"taskdb-{stamp}.json")
    write_json(path, {"date": stamp, "machine": platform.machine(), "cpus": os.cpu_count(),
                      "args": vars(args), "rates": rates, "on_over_off": on / off,
                      "growth": grow})
    print(f"written {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
