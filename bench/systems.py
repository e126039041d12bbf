"""One adapter per system measured by the benchmark: start, the same operations, stop.

The work is the builtin ``int`` (called with no argument it returns 0): a no-op that
pickles by reference everywhere, so every system measures only its own overhead.
"""

import multiprocessing
import os


def descendants_rss_mb():
    """Resident memory of every process below this one, in MB (from /proc)."""
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
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _chunks(n, size):
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _count(r):
    return [int() for _ in r]


class Cpar:
    name = "cpar"
    has_all = True
    note = "tasks and map: a load-balanced view (hwm auto), as for ipyparallel"

    def start(self, n):
        import cpar

        self.cluster = cpar.Cluster(n=n, cluster_id="bench")
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(n)
        self.one = self.rc[self.rc.ids[0]]
        self.all = self.rc[:]
        self.lb = self.rc.load_balanced_view()

    def apply_one(self):
        return self.one.apply_sync(int)

    def apply_all(self):
        return self.all.apply_sync(int)

    def submit_many(self, n):
        ars = [self.lb.apply_async(int) for _ in range(n)]
        for ar in ars:
            ar.get()

    def map_chunked(self, n):
        return self.lb.map_sync(int, range(n), chunksize=max(1, n // 100))

    def stop(self):
        self.cluster.stop_cluster_sync()


class IPyParallel:
    name = "ipyparallel"
    has_all = True

    def start(self, n):
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=n, log_level=40)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(n)
        self.one = self.rc[0]
        self.all = self.rc[:]
        self.lb = self.rc.load_balanced_view()

    def apply_one(self):
        return self.one.apply_sync(int)

    def apply_all(self):
        return self.all.apply_sync(int)

    def submit_many(self, n):
        ars = [self.lb.apply_async(int) for _ in range(n)]
        for ar in ars:
            ar.get()

    def map_chunked(self, n):
        return self.lb.map_sync(int, range(n), chunksize=max(1, n // 100))

    def stop(self):
        self.rc.close()
        self.cluster.stop_cluster_sync()


class Dask:
    name = "dask"
    has_all = False

    def start(self, n):
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        self.client = Client(self.cluster)

    def apply_one(self):
        return self.client.submit(int, pure=False).result()

    def submit_many(self, n):
        futs = [self.client.submit(int, pure=False) for _ in range(n)]
        self.client.gather(futs)

    def map_chunked(self, n):
        futs = self.client.map(_count, _chunks(n, max(1, n // 100)), pure=False)
        return self.client.gather(futs)

    def stop(self):
        self.client.close()
        self.cluster.close()


class Pool:
    name = "multiprocessing"
    has_all = False

    def start(self, n):
        self.pool = multiprocessing.get_context("fork").Pool(n)

    def apply_one(self):
        return self.pool.apply(int)

    def submit_many(self, n):
        ars = [self.pool.apply_async(int) for _ in range(n)]
        for ar in ars:
            ar.get()

    def map_chunked(self, n):
        return self.pool.map(int, range(n), chunksize=max(1, n // 100))

    def stop(self):
        self.pool.terminate()
        self.pool.join()


_SYSTEMS = {"cpar": (Cpar, "cpar"), "ipyparallel": (IPyParallel, "ipyparallel"),
            "dask": (Dask, "distributed"), "multiprocessing": (Pool, "multiprocessing")}


def make(name):
    """The adapter for ``name``, or None when its package is not installed."""
    cls, module = _SYSTEMS[name]
    try:
        __import__(module)
    except ImportError:
        return None
    return cls()
