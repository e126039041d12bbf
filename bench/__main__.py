"""cpar beside its peers, in one run: `python -m bench` (or `make bench`).

Each system starts fresh with the same number of workers, runs the same measurements
(bench/measure.py) and stops; then cpar and ipyparallel start 16 engines; the floor
(bench/floor.c: raw libzmq relay and memcpy) runs on the same machine. Prints one table
with cpar's ratio to each peer and to the floor beside DESIGN §8's targets, and writes
bench/results/<date>.json and <date>.png. Peers: ipyparallel, dask.distributed and
multiprocessing.Pool (those installed; `make bench` installs them).
"""

import argparse
import datetime
import gc
import os
import platform
import sys
import tempfile
import time

from . import ctlfeed, floor, measure, procs, report, systems

HERE = os.path.dirname(os.path.abspath(__file__))


def _versions():
    out = {"python": platform.python_version()}
    for mod in ("cpar", "ipyparallel", "dask", "distributed", "numpy", "zmq"):
        try:
            out[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            pass
    return out


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="repeats of each measurement")
    p.add_argument("--samples", type=int, default=10,
                   help="samples of the noisy figures (round trips, task and map rates, 1 MB "
                        "transfers) for a system fast enough to take them within --budget")
    p.add_argument("--roundtrips", type=int, default=200, help="apply calls per repeat")
    p.add_argument("--tasks", type=int, default=10_000, help="apply_async calls per repeat")
    p.add_argument("--map-items", type=int, default=100_000)
    p.add_argument("--controller-tasks", type=int, default=200_000,
                   help="tasks run before measuring the controller's RSS again")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds per repeat a slow system gets for the unchunked map and "
                        "the controller's tasks (it then runs fewer; the table says so)")
    p.add_argument("--sizes", default="1,100,1000", help="push/pull sizes in MB")
    p.add_argument("--no-1gb", action="store_true", help="skip the 1 GB push/pull")
    p.add_argument("--scatter-mb", type=int, default=100)
    p.add_argument("--julia-size", type=int, default=1024)
    p.add_argument("--many", type=int, default=16, help="engines of the many-engine run")
    p.add_argument("--many-systems", default="cpar,ipyparallel")
    # multiprocessing.Pool right after cpar: its forked workers' RSS includes this
    # process's pages, which grow with each system measured before.
    p.add_argument("--systems", default="cpar,multiprocessing,ipyparallel,dask")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if not (args.no_1gb and s == "1000")]
    os.environ.setdefault("CPAR_DIR", tempfile.mkdtemp(prefix="cpar-bench-"))

    t_run = time.perf_counter()
    results, info, notes = {}, {}, []
    _log("floor: raw libzmq relay and memcpy ...")
    results["floor"] = floor.measure(max(args.repeat + 2, args.samples))

    _log("the seed's Julia workload, serial numpy ...")
    serial, reference = measure.julia_serial(args)
    for name in args.systems.split(","):
        system = systems.make(name)
        if system is None:
            print(f"{name}: not installed, skipped", flush=True)
            continue
        _log(f"measuring {name} ({args.workers} workers) ...")
        info[name] = {}
        during = measure.julia_on_cpar(reference, args, info[name]) if name == "cpar" else None
        try:
            results[name] = measure.measure(system, args, info[name], during)
        except Exception as e:  # one broken peer must not lose the others' results
            print(f"{name}: failed ({type(e).__name__}: {e}), skipped", flush=True)
            continue
        if system.note:
            notes.append(f"{name}: {system.note}")
        system = None
        gc.collect()  # forked workers of the next system inherit this process's pages
        _log(f"  (this process's RSS now {procs.rss_mb(os.getpid()):.0f} MB)")
    results.setdefault("cpar", {}).update(serial)
    if "cpar" in args.systems.split(",") and "cpar" in results:
        _log("cpar's socket path (CPAR_SHM=0): the transfers again ...")
        try:
            results["cpar"].update(measure.socket_path(systems.Cpar("bench-socket"), args,
                                                       info["cpar"]))
        except Exception as e:
            print(f"cpar socket path: failed ({type(e).__name__}: {e})", flush=True)
    if "cpar" in args.systems.split(","):
        _log("the controller alone, fed from C (bench/ctlfeed.c) ...")
        alone = ctlfeed.measure(batches=args.samples)
        if alone:
            results["cpar"]["controller_alone_per_s"] = alone["controller_alone_per_s"]
            info.setdefault("cpar", {})["controller_alone"] = {
                k: v for k, v in alone.items() if k != "controller_alone_per_s"}
            notes.append(f"cpar: the controller alone: {alone['tasks']:,} no-op tasks per "
                         f"sample, at most {alone['window']:,} unanswered, {alone['engines']} "
                         f"C engines answering at once, task database {alone['db']}")
    for name in args.many_systems.split(","):
        system = systems.make(name)
        if system is None or name not in results:
            continue
        _log(f"measuring {name} with {args.many} engines ...")
        try:
            results[name].update(measure.measure_many(system, args.many, args))
        except Exception as e:
            print(f"{name}, {args.many} engines: failed ({type(e).__name__}: {e})", flush=True)

    elapsed = time.perf_counter() - t_run
    title = (f"cpar vs peers, {args.workers} workers, {os.cpu_count()} cores, "
             f"{datetime.date.today()}")
    print()
    print(report.table(results, args.many))
    print(report.legend())
    for name, inf in info.items():
        if "map_unchunked_items" in inf and inf["map_unchunked_items"] < args.map_items:
            notes.append(f"{name}: the chunksize-1 map ran {inf['map_unchunked_items']:,} "
                         "items per repeat (time budget)")
        if "controller_tasks" in inf:
            notes.append(f"{name}: controller RSS measured after a 10,000-task warm-up and "
                         f"{inf['controller_tasks']:,} more tasks")
        rt = inf.get("per_roundtrip")
        if rt:
            notes.append(f"{name}: per no-op round trip to one engine: {rt['switches']:.1f} "
                         f"context switches (client {rt['client_switches']:.1f}, engines "
                         f"{rt['engines_switches']:.1f}, the rest {rt['others_switches']:.1f}), "
                         f"{rt['sum_us']:.0f} us of CPU, {rt['wall_us']:.0f} us of wall time")
        cpu = inf.get("cpu_per_task")
        if cpu:
            notes.append(f"{name}: CPU per load-balanced no-op task: client {cpu['client_us']:.0f} "
                         f"us, engines {cpu['engines_us']:.0f}, the rest (controller, "
                         f"scheduler) {cpu['others_us']:.0f}; sum {cpu['sum_us']:.0f} us "
                         f"against {cpu['wall_us']:.0f} us of wall time per task on "
                         f"{cpu['cores']} cores {cpu['cores_busy']:.0%} busy")
        for err in inf.get("errors", []):
            notes.append(f"{name}: ERROR {err}")
    fl = results.get("floor") or {}
    if "relay_switches_per_roundtrip" in fl:
        note = ("floor: the libzmq relay's three processes switch context "
                f"{fl['relay_switches_per_roundtrip']['median']:.1f} times per round trip")
        if "relay_cpu_per_roundtrip" in fl:
            note += f" and spend {fl['relay_cpu_per_roundtrip']['median'] * 1e6:.0f} us of CPU"
        notes.append(note)
    for run, ph in info.get("cpar", {}).get("julia_phases", {}).items():
        notes.append(f"Julia, {run.replace('_', ' on ')} engine(s), medians: scatter "
                     f"{ph['scatter'] * 1e3:.3g} ms, execute {ph['execute'] * 1e3:.3g} ms, "
                     f"gather {ph['gather'] * 1e3:.3g} ms")
    if "julia_results_equal" in info.get("cpar", {}):
        notes.append("Julia: every cpar image equals the serial numpy one: "
                     f"{info['cpar']['julia_results_equal']}")
    print("(*) notes:")
    for note in notes:
        print(f"  {note}")
    print(f"whole run: {elapsed:.0f} s")

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    out = os.path.join(HERE, "results", stamp)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    report.write_json(out + ".json", {
        "date": stamp, "machine": platform.platform(), "cpus": os.cpu_count(),
        "versions": _versions(), "args": vars(args), "elapsed_s": elapsed,
        "results": results, "info": info, "notes": notes})
    try:
        report.chart(results, out + ".png", title, args.many)
        print(f"\nwritten {os.path.relpath(out)}.json and .png")
    except ImportError:
        print(f"\nwritten {os.path.relpath(out)}.json (no matplotlib: no chart)")


if __name__ == "__main__":
    main()
