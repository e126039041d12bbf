"""One adapter per system measured by the benchmark: start, the same operations, stop.

The work is the builtin ``int`` (called with no argument it returns 0): a no-op that
pickles by reference everywhere, so every system measures only its own overhead. Arrays
are float64 numpy arrays; ``pull`` and ``gather`` return what ``push`` and ``scatter``
left on the workers (or, for multiprocessing.Pool, which keeps no namespace, an array of
the same size a worker holds).
"""

import multiprocessing
import os
import time
import warnings

import numpy as np


def _chunks(n, size):
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _count(r):
    return [int() for _ in r]


class Cpar:
    name = "cpar"
    has_all = True
    keeps_data = True  # pull/gather return what push/scatter left
    note = "tasks and map: a load-balanced view (hwm auto), as for ipyparallel"

    def __init__(self, cluster_id=None, **cluster_options):
        """``cluster_id`` (default ``bench<n>``) and more ``cpar.Cluster`` keywords (e.g.
        ``db="none"``, for bench/taskdb.py)."""
        self.cluster_id = cluster_id
        self.cluster_options = cluster_options

    def start(self, n):
        import cpar

        self.cluster = cpar.Cluster(n=n, cluster_id=self.cluster_id or f"bench{n}",
                                    **self.cluster_options)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(n)
        self.one = self.rc[self.rc.ids[0]]
        self.all = self.rc[:]
        self.lb = self.rc.load_balanced_view()

    def controller_pid(self):
        from cpar import paths

        return paths.read_json(self.rc.url_file)["controller_pid"]

    def engine_pids(self):
        return list(self.all.apply_sync(os.getpid))

    def apply_one(self):
        return self.one.apply_sync(int)

    def settle(self):
        """Waits until the controller's task database has written what came before (a
        query is answered after every write queued ahead of it) and has returned what it
        freed: the controller's RSS is then its resting size, not a burst's."""
        self.rc.db_query({"msg_id": "0" * 32}, keys=["msg_id"])
        time.sleep(0.2)

    def apply_all(self):
        return self.all.apply_sync(int)

    def submit_many(self, n):
        ars = [self.lb.apply_async(int) for _ in range(n)]
        for ar in ars:
            ar.get()

    def map(self, n, chunksize):
        return self.lb.map_sync(int, range(n), chunksize=chunksize)

    def push(self, a):
        self.one.push({"a": a}, block=True)

    def pull(self):
        return self.one.pull("a", block=True)

    def scatter(self, a):
        self.all.scatter("s", a, block=True)

    def gather(self):
        return self.all.gather("s", block=True)

    def drop(self):
        self.all.execute("a = s = None", block=True)

    def stop(self):
        self.cluster.stop_cluster_sync()  # shuts down through its own client, rc


class IPyParallel(Cpar):
    name = "ipyparallel"
    note = None

    def settle(self):
        time.sleep(0.2)  # the controller's resting size (no database to wait for here)

    def start(self, n):
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=n, log_level=40)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(n)
        self.one = self.rc[0]
        self.all = self.rc[:]
        self.lb = self.rc.load_balanced_view()

    def controller_pid(self):
        return self.cluster.controller.process.pid

    def stop(self):
        # The client keeps every result (pulled arrays too) until it is gone.
        self.rc.results.clear()
        self.rc.metadata.clear()
        self.rc.close()
        self.cluster.stop_cluster_sync()


class Dask:
    name = "dask"
    keeps_data = True
    has_all = True  # one task per worker, through the scheduler
    note = ("a SubprocessCluster (scheduler in its own process, as cpar's controller); "
            "push/pull: Client.scatter to one worker and Client.gather; 'all workers': one "
            "task pinned to each worker (Client.submit(workers=[w])), through the scheduler")

    def settle(self):
        time.sleep(0.2)  # the controller's resting size (no database to wait for here)

    def start(self, n):
        from dask.distributed import Client

        try:
            from distributed.deploy.subprocess import SubprocessCluster
        except ImportError:  # older distributed: the scheduler runs in this process
            from dask.distributed import LocalCluster as SubprocessCluster
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.cluster = SubprocessCluster(n_workers=n, threads_per_worker=1,
                                             dashboard_address=None)
        self.client = Client(self.cluster)
        self.client.wait_for_workers(n)
        self.workers = sorted(self.client.scheduler_info()["workers"])
        self.held = []

    def controller_pid(self):
        pid = self.client.run_on_scheduler(os.getpid)
        return None if pid == os.getpid() else pid

    def engine_pids(self):
        return list(self.client.run(os.getpid).values())

    def apply_one(self):
        return self.client.submit(int, pure=False).result()

    def apply_all(self):
        # Through the scheduler, as cpar's and ipyparallel's go through their controller
        # (Client.run would bypass it and talk to the workers directly).
        futs = [self.client.submit(int, pure=False, workers=[w], allow_other_workers=False)
                for w in self.workers]
        return self.client.gather(futs)

    def submit_many(self, n):
        futs = [self.client.submit(int, pure=False) for _ in range(n)]
        self.client.gather(futs)

    def map(self, n, chunksize):
        if chunksize == 1:
            return self.client.gather(self.client.map(int, range(n), pure=False))
        futs = self.client.map(_count, _chunks(n, chunksize), pure=False)
        return self.client.gather(futs)

    def push(self, a):
        self.drop()
        self.held = [self.client.scatter(a, workers=self.workers[:1], hash=False)]

    def pull(self):
        return self.client.gather(self.held[0])

    def scatter(self, a):
        self.drop()
        parts = np.array_split(a, len(self.workers))
        self.held = self.client.scatter(parts, hash=False)

    def gather(self):
        return np.concatenate(self.client.gather(self.held))

    def drop(self):
        for f in self.held:
            f.release()
        self.held = []

    def stop(self):
        self.drop()
        self.client.close()
        self.cluster.close()


# multiprocessing.Pool workers keep arrays here (a pool has no namespace of its own).
_held = {}


def _hold(a):
    _held[a.nbytes] = a


def _give(nbytes):
    if nbytes not in _held:
        _held[nbytes] = np.ones(nbytes // 8)
    return _held[nbytes]


def _drop():
    _held.clear()


class Pool:
    name = "multiprocessing"
    has_all = False
    keeps_data = False
    note = "push/pull: Pool.apply with the array as argument / result"

    def start(self, n):
        self.n = n
        self.pool = multiprocessing.get_context("fork").Pool(n)

    def controller_pid(self):
        return None

    def engine_pids(self):
        return [p.pid for p in self.pool._pool]

    def apply_one(self):
        return self.pool.apply(int)

    def submit_many(self, n):
        ars = [self.pool.apply_async(int) for _ in range(n)]
        for ar in ars:
            ar.get()

    def map(self, n, chunksize):
        return self.pool.map(int, range(n), chunksize=chunksize)

    def push(self, a):
        self.nbytes = a.nbytes
        self.pool.apply(_hold, (a,))

    def pull(self):
        return self.pool.apply(_give, (self.nbytes,))

    def scatter(self, a):
        parts = np.array_split(a, self.n)
        self.sizes = [p.nbytes for p in parts]
        self.pool.map(_hold, parts, chunksize=1)

    def gather(self):
        return np.concatenate(self.pool.map(_give, self.sizes, chunksize=1))

    def drop(self):
        for _ in range(2 * self.n):  # most likely every worker
            self.pool.apply(_drop)

    def stop(self):
        self.pool.terminate()
        self.pool.join()


_SYSTEMS = {"cpar": (Cpar, "cpar"), "ipyparallel": (IPyParallel, "ipyparallel"),
            "dask": (Dask, "distributed"), "multiprocessing": (Pool, "multiprocessing")}
NAMES = list(_SYSTEMS)


def make(name):
    """The adapter for ``name``, or None when its package is not installed."""
    if name not in _SYSTEMS:
        print(f"{name}: unknown system (known: {', '.join(NAMES)}), skipped", flush=True)
        return None
    cls, module = _SYSTEMS[name]
    try:
        __import__(module)
    except ImportError:
        return None
    return cls()
