"""The measurements: each runs one system through the same operations and returns
{key: {min, median, max, n}} in seconds, rates (per s), GB/s or MB."""

import os
import statistics
import time

import numpy as np

from . import julia, procs


def stats(samples):
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "n": len(samples)}


def timed(fn, repeat):
    """Wall times of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rates(fn, count, repeat):
    """``count`` / wall time of each of ``repeat`` calls."""
    return stats([count / t for t in timed(fn, repeat)])


def sampled(fn, repeat, samples, budget_s):
    """Wall times of calls of ``fn``: at least ``repeat``, then more up to ``samples`` while
    the calls so far took under ``budget_s`` in all (a noisy figure gets >= 10 samples
    where the system is fast enough; a slow one stops at ``repeat``)."""
    out = timed(fn, repeat)
    while len(out) < samples and sum(out) + out[-1] <= budget_s:
        out += timed(fn, 1)
    return out


def sampled_rates(fn, count, args):
    """``count`` / wall time of each call of ``fn``, sampled as ``sampled`` does."""
    return stats([count / t for t in sampled(fn, args.repeat, args.samples, args.budget)])


def memory(system, res):
    """Idle RSS: per engine (mean), of the controller, of every process. Returns the
    controller's pid (None for a system without one)."""
    engines = system.engine_pids()
    ctrl = system.controller_pid()
    res["rss_engine_mb"] = stats([statistics.mean(procs.rss_mb(p) for p in engines)])
    if ctrl:
        res["rss_controller_mb"] = stats([procs.rss_mb(ctrl)])
    res["rss_total_mb"] = stats([procs.total_rss_mb(engines + [ctrl] if ctrl else engines)])
    return ctrl


def budgeted(count, rate, budget_s):
    """``count``, or fewer for a slow system: what runs in ``budget_s`` at ``rate``/s."""
    return max(1000, min(count, int(rate * budget_s) // 1000 * 1000))


def transfers(system, args, res, info):
    """push/pull of each size to one worker, then scatter/gather over all of them."""
    for mb in args.sizes:
        nbytes = mb * 1000 * 1000
        a = np.ones(nbytes // 8)
        repeat = args.repeat if mb >= 100 else max(3 * args.repeat, args.samples)
        # The first transfers into a process are slower (the kernel's first touch of the
        # pages; a receiver holds the old and the new array): timed apart, as "cold".
        res[f"push_{mb}MB_cold"] = rates(lambda: system.push(a), nbytes / 1e9, 1)
        system.push(a)
        res[f"push_{mb}MB"] = rates(lambda: system.push(a), nbytes / 1e9, repeat)
        res[f"pull_{mb}MB"] = rates(lambda: system.pull(), nbytes / 1e9, repeat)
        b = system.pull()
        if b.shape != a.shape or b[-1] != a[-1]:
            info.setdefault("errors", []).append(f"pull of {mb} MB returned another array")
        b = None
        system.drop()
    nbytes = args.scatter_mb * 1000 * 1000
    a = np.arange(nbytes // 8, dtype=np.float64)
    res[f"scatter_{args.scatter_mb}MB"] = rates(lambda: system.scatter(a), nbytes / 1e9,
                                                args.repeat)
    res[f"gather_{args.scatter_mb}MB"] = rates(lambda: system.gather(), nbytes / 1e9,
                                               args.repeat)
    if system.keeps_data and not np.array_equal(system.gather(), a):
        info.setdefault("errors", []).append("gather did not return the scattered array")
    system.drop()


def socket_path(system, args, info):
    """The transfers again on cpar's own socket path: ``system`` (a cpar adapter) started
    with ``CPAR_SHM=0`` in its engines' environment, so no frame goes by shared memory.
    Returns {<transfer key>_socket: stats}; the cold rows are compared with these."""
    old = os.environ.get("CPAR_SHM")
    os.environ["CPAR_SHM"] = "0"  # read by the engines this starts
    try:
        system.start(args.workers)
    finally:
        if old is None:
            del os.environ["CPAR_SHM"]
        else:
            os.environ["CPAR_SHM"] = old
    res = {}
    try:
        transfers(system, args, res, info)
    finally:
        system.stop()
    return {f"{key}_socket": v for key, v in res.items()}


def measure(system, args, info, during=None):
    """Every measurement of one system with ``args.workers`` workers. ``info`` receives
    the counts used where a slow system ran fewer than asked; ``during(system, res)`` runs
    before the stop (cpar's Julia workload)."""
    res = {}
    t0 = time.perf_counter()
    system.start(args.workers)
    res["start"] = stats([time.perf_counter() - t0])
    try:
        system.apply_one()  # warm up
        if system.has_all:
            system.apply_all()
        ctrl = memory(system, res)
        n = args.roundtrips
        res["roundtrip_one"] = stats([t / n for t in sampled(
            lambda: [system.apply_one() for _ in range(n)], 5, args.samples, args.budget)])
        # Where one round trip's time goes: CPU and context switches (wake-ups) of each
        # process, against the relay's switches (bench/floor.c).
        k = max(100, int(1.0 / res["roundtrip_one"]["median"]))
        info["per_roundtrip"] = procs.cpu_split(lambda: [system.apply_one() for _ in range(k)],
                                                k, system.engine_pids(),
                                                [ctrl] if ctrl else [])
        if system.has_all:
            res["roundtrip_all"] = stats([t / n for t in sampled(
                lambda: [system.apply_all() for _ in range(n)], 5, args.samples, args.budget)])
        res["tasks_per_s"] = sampled_rates(lambda: system.submit_many(args.tasks), args.tasks,
                                           args)
        rate = res["tasks_per_s"]["median"]
        # Where the CPU of one such run goes, per task: what bounds the rate on this
        # machine's cores (docs/performance-notes.md).
        count = budgeted(args.tasks, rate, 5)
        info["cpu_per_task"] = procs.cpu_split(lambda: system.submit_many(count), count,
                                               system.engine_pids(), [ctrl] if ctrl else [])
        items = budgeted(args.map_items, 2 * rate, args.budget)
        info["map_unchunked_items"] = items
        res["map_unchunked_per_s"] = sampled_rates(lambda: system.map(items, 1), items, args)
        items = args.map_items
        res["map_chunked_per_s"] = sampled_rates(
            lambda: system.map(items, max(1, items // 100)), items, args)
        if ctrl:
            total = budgeted(args.controller_tasks, rate, args.budget)
            batch = min(total, 10_000)
            system.submit_many(batch)  # warm-up: the controller's tables reach their size
            system.settle()
            warm = procs.rss_mb(ctrl)
            for _ in range(total // batch):
                system.submit_many(batch)
            info["controller_tasks"] = total // batch * batch
            system.settle()
            after = procs.rss_mb(ctrl)
            res["rss_controller_after_mb"] = stats([after])
            res["rss_controller_growth_mb"] = stats([after - warm])
        transfers(system, args, res, info)
        if during:
            during(system, res)
    finally:
        t0 = time.perf_counter()
        system.stop()
        stops = [time.perf_counter() - t0]
    starts = [res["start"]["min"]]
    for _ in range(args.repeat - 1):  # more start/stop cycles, for min/median/max
        t0 = time.perf_counter()
        system.start(args.workers)
        system.apply_one()
        starts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        system.stop()
        stops.append(time.perf_counter() - t0)
    res["start"], res["stop"] = stats(starts), stats(stops)
    return res


def measure_many(system, n, args):
    """Start time, total RSS and a no-op apply on all of ``n`` engines."""
    res = {}
    t0 = time.perf_counter()
    system.start(n)
    res["start_many"] = stats([time.perf_counter() - t0])
    try:
        system.apply_all()
        pids = system.engine_pids() + [system.controller_pid()]
        res["rss_total_mb_many"] = stats([procs.total_rss_mb(p for p in pids if p)])
        k = max(10, args.roundtrips // 4)
        res["roundtrip_all_many"] = stats([t / k for t in timed(
            lambda: [system.apply_all() for _ in range(k)], 5)])
    finally:
        system.stop()
    return res


def julia_serial(args):
    """The seed's serial numpy Julia workload: {julia_numpy_serial: stats}, the image."""
    Z = julia.grid(args.julia_size)
    J = None

    def run():
        nonlocal J
        J = julia.julia_numpy(Z, julia.C, julia.TMAX)

    return {"julia_numpy_serial": stats(sampled(run, args.repeat, args.samples, args.budget))}, J


def interleaved(fns, args, samples):
    """{key: wall times} of the calls in ``fns`` ({key: fn}), taken in rounds that call
    each once (so a slow stretch of the machine falls on every key alike): at least
    ``args.repeat`` rounds, then more up to ``samples`` while all of them took under
    ``args.budget`` per key."""
    out = {key: [] for key in fns}

    def spent():
        return sum(sum(t) for t in out.values())

    while True:
        for key, fn in fns.items():
            out[key] += timed(fn, 1)
        rounds = len(out[next(iter(fns))])
        if rounds >= samples or (rounds >= args.repeat and
                                      spent() * (rounds + 1) / rounds > args.budget * len(fns)):
            return out


def julia_on_cpar(reference, args, info):
    """``during`` hook for cpar: the Julia workload with numpy and with cpar.kernels on 1
    and 2 engines (scatter rows, compute, gather); checks every image equals ``reference``."""

    def during(system, res):
        Z = julia.grid(args.julia_size)
        ids = system.rc.ids
        system.all.execute(julia.ENGINE_CODE, block=True)
        images, phases = {}, {}

        def on(engines, kind):
            """One run on ``engines`` with the ``kind`` ("numpy", "kernels") of Julia code;
            its phases go to phases[f"{kind}_{engines}"]."""
            view = system.rc[ids[:engines]]
            fn = {"numpy": "julia_numpy", "kernels": "kernels.julia"}[kind]
            times = phases.setdefault(f"{kind}_{engines}", [])

            def run():
                t0 = time.perf_counter()
                view.scatter("Z", Z, block=True)
                t1 = time.perf_counter()
                view.execute(f"J = {fn}(Z, {julia.C!r}, {julia.TMAX})", block=True)
                t2 = time.perf_counter()
                images[engines, kind] = view.gather("J", block=True)
                times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
            return run

        # 1 and 2 engines interleaved, and the kernels' rows with the machine's own floor
        # beside them: the whole image in this process, its halves in two plain
        # processes at once.
        for key, times in interleaved({f"julia_numpy_{n}": on(n, "numpy")
                                       for n in (1, 2)}, args, args.samples).items():
            res[key] = stats(times)
        from cpar import kernels

        def local():
            kernels.julia(Z, julia.C, julia.TMAX)

        with julia.LocalParts(args.julia_size, 2) as halves:
            fns = {"julia_kernels_1": on(1, "kernels"), "julia_kernels_2": on(2, "kernels"),
                   "julia_kernels_local": local, "julia_kernels_local_2proc": halves.run}
            for fn in fns.values():  # once each before the clock
                fn()
            for n in (1, 2):
                phases[f"kernels_{n}"].clear()
            # 3x the usual samples: a round takes ~0.1 s, and the ratio of two medians
            # is the figure
            for key, times in interleaved(fns, args, 3 * args.samples).items():
                res[key] = stats(times)
        # Where each run's time went: medians of scatter, execute and gather, in seconds.
        info["julia_phases"] = {
            run: dict(zip(("scatter", "execute", "gather"),
                          (statistics.median(t[i] for t in times) for i in range(3))))
            for run, times in phases.items()}
        equal = reference is not None and all(np.array_equal(J, reference)
                                              for J in images.values())
        system.all.execute("Z = J = None", block=True)
        info["julia_results_equal"] = bool(equal)

    return during
