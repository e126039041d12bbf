"""Resident memory of processes, from /proc."""

import os


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
