"""Resident memory of processes, from /proc."""

import os
import time


def rss_mb(pid):
    """VmRSS of one process in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(root=None):
    """Every process below ``root`` (this process by default)."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    found, todo = set(), list(children.get(root or os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def total_rss_mb(extra=()):
    """RSS summed over this process's descendants and the pids in ``extra`` (processes a
    system may have detached), each counted once."""
    return sum(rss_mb(pid) for pid in descendants() | set(extra))


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of one process, all its threads (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def switches(pid):
    """Context switches (voluntary and not) of one process so far, summed over its live
    threads (0 when it is gone): each is a thread going to sleep or being preempted."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches:" in line:  # voluntary_..., nonvoluntary_...
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


def machine_busy_s():
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def cpu_split(fn, count, engines, extra=()):
    """Runs ``fn`` once and splits the CPU it cost per unit of ``count`` (µs): this process
    (the client), the ``engines``, and every other process of the system (its controller
    or scheduler: this process's other descendants and ``extra``, each counted once). Also
    the wall time, how busy the machine's cores were meanwhile (0..1), and the context
    switches per unit of each group (``<group>_switches``) and in all (``switches``)."""
    engines = set(engines)
    others = (descendants() | set(extra)) - engines - {os.getpid()}
    groups = {"client": [os.getpid()], "engines": sorted(engines), "others": sorted(others)}
    before = {k: sum(cpu_s(p) for p in v) for k, v in groups.items()}
    sw_before = {k: sum(switches(p) for p in v) for k, v in groups.items()}
    busy0, total0 = machine_busy_s()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    busy1, total1 = machine_busy_s()
    out = {f"{k}_us": (sum(cpu_s(p) for p in v) - before[k]) / count * 1e6
           for k, v in groups.items()}
    out["sum_us"] = sum(out.values())
    for k, v in groups.items():
        out[f"{k}_switches"] = (sum(switches(p) for p in v) - sw_before[k]) / count
    out["switches"] = sum(out[f"{k}_switches"] for k in groups)
    out["wall_us"] = wall / count * 1e6
    out["cores_busy"] = (busy1 - busy0) / max(total1 - total0, 1e-9)
    out["cores"] = os.cpu_count()
    return out
