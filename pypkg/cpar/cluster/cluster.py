"""Cluster: start, find and stop a controller and its engines, from Python or the CLI.

State lives in the cluster file (``cpar.paths.cluster_file``): which processes belong to
the cluster and where their logs are, so that ``cpar cluster stop`` works from any
process. A cluster started by a Python process (not ``--daemonize``) is stopped when that
process exits.
"""

import asyncio
import atexit
import os
import time
import weakref

from .. import paths
from .launcher import (
    LocalProcessLauncher,
    controller_argv,
    engine_argv,
    launcher_from_dict,
    pid_alive,
    tail,
)


class ClusterError(RuntimeError):
    """A cluster could not be started or stopped; the message says why."""


_live_clusters = weakref.WeakSet()


@atexit.register
def _stop_live_clusters():
    for c in list(_live_clusters):
        try:
            c.stop_cluster_sync()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def running_cluster_info(profile="default", cluster_id=""):
    """The cluster file's content when that cluster's controller is alive, else None."""
    path = paths.cluster_file(profile, cluster_id)
    try:
        info = paths.read_json(path)
    except (OSError, ValueError):
        return None
    pids = info.get("controller", {}).get("pids", [])
    if pids and all(pid_alive(p) for p in pids):
        return info
    return None


def list_clusters():
    """Every cluster file under $CPAR_DIR, with whether its controller is running."""
    out = []
    root = paths.cpar_dir()
    for d in sorted(os.listdir(root)):
        if not d.startswith("profile_"):
            continue
        sec = os.path.join(root, d, "security")
        if not os.path.isdir(sec):
            continue
        for f in sorted(os.listdir(sec)):
            if f.startswith("cluster-") and f.endswith(".json"):
                try:
                    info = paths.read_json(os.path.join(sec, f))
                except (OSError, ValueError):
                    continue
                pids = info.get("controller", {}).get("pids", [])
                info["running"] = bool(pids) and all(pid_alive(p) for p in pids)
                info["engines_running"] = sum(
                    pid_alive(p) for p in info.get("engines", {}).get("pids", [])
                )
                out.append(info)
    return out


class Cluster:
    """A controller and ``n`` engines on this machine.

    ``with Cluster(n=4) as rc:`` starts them, gives a connected Client, and stops
    everything at the end of the block.
    """

    def __init__(
        self,
        n=None,
        profile="default",
        cluster_id="",
        engines="local",
        controller_args=(),
        engine_args=(),
        daemonize=False,
        hb_timeout_ms=3000,
        start_timeout=60.0,
    ):
        if engines != "local":
            raise ValueError(f"unknown engine launcher {engines!r}; available: 'local'")
        self.n = n if n is not None else (os.cpu_count() or 1)
        if not isinstance(self.n, int) or self.n < 0:
            raise ValueError(f"n must be a non-negative int, not {n!r}")
        self.profile = profile
        self.cluster_id = cluster_id or ""
        self.controller_args = list(controller_args)
        self.engine_args = list(engine_args)
        self.daemonize = daemonize
        self.hb_timeout_ms = hb_timeout_ms
        self.start_timeout = start_timeout
        self.controller = None
        self.engines = None
        self._client = None

    # -- files ---------------------------------------------------------------------
    @property
    def connection_file(self):
        return paths.connection_file(self.profile, self.cluster_id)

    @property
    def cluster_file(self):
        return paths.cluster_file(self.profile, self.cluster_id)

    def _log(self, name):
        cid = self.cluster_id or "default"
        return os.path.join(paths.log_dir(self.profile), f"{name}-{cid}.log")

    def _save(self):
        paths.write_private_json(
            self.cluster_file,
            {
                "profile": self.profile,
                "cluster_id": self.cluster_id,
                "n": self.n,
                "connection_file": self.connection_file,
                "controller": self.controller.to_dict(),
                "engines": self.engines.to_dict(),
                "created": time.time(),
                "daemonized": self.daemonize,
            },
        )

    # -- start ---------------------------------------------------------------------
    def start_controller_sync(self):
        if running_cluster_info(self.profile, self.cluster_id):
            raise ClusterError(
                f"a cluster is already running for profile {self.profile!r}, cluster id "
                f"{self.cluster_id or 'default'!r}; use it, or stop it with "
                f"`cpar cluster stop --profile {self.profile}"
                + (f" --cluster-id {self.cluster_id}`" if self.cluster_id else "`")
            )
        for stale in (self.connection_file, self.cluster_file):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        log = self._log("controller")
        extra = ["--hb-timeout-ms", str(self.hb_timeout_ms), *self.controller_args]
        self.controller = LocalProcessLauncher(
            [controller_argv(self.profile, self.cluster_id, log, extra)],
            [log],
            tie_to_parent=not self.daemonize,
        )
        self.controller.start()
        self.engines = LocalProcessLauncher(tie_to_parent=not self.daemonize)
        self._save()
        _live_clusters.add(self)
        try:
            self._wait_for_connection_file(log)
        except BaseException:
            self.stop_cluster_sync()
            raise

    def _wait_for_connection_file(self, log):
        pid = self.controller.pids[0]
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if paths.read_json(self.connection_file).get("controller_pid") == pid:
                    return
            except (OSError, ValueError):
                pass
            if self.controller.exited():
                raise ClusterError(
                    f"the controller exited during start-up; its log {log}:\n{tail(log)}"
                )
            if time.monotonic() > deadline:
                raise ClusterError(f"the controller did not start within "
                                   f"{self.start_timeout:.0f} s; its log {log}:\n{tail(log)}")
            time.sleep(0.01)

    def start_engines_sync(self, n=None):
        n = self.n if n is None else n
        base = len(self.engines.argvs)
        new = LocalProcessLauncher(tie_to_parent=not self.daemonize)
        for i in range(base, base + n):
            log = self._log(f"engine-{i}")
            new.argvs.append(engine_argv(self.connection_file, log, self.engine_args))
            new.log_paths.append(log)
        new.start()
        self.engines.argvs += new.argvs
        self.engines.log_paths += new.log_paths
        self.engines.procs += new.procs
        self.engines.pids += new.pids
        self._save()

    def wait_for_engines(self, n=None, timeout=None):
        """Waits until ``n`` engines (default: all started) are registered. An engine
        process that exits meanwhile raises ClusterError with its log."""
        n = len(self.engines.pids) if n is None else n
        timeout = self.start_timeout if timeout is None else timeout
        rc = self.connect_client_sync()
        deadline = time.monotonic() + timeout
        while len(rc.ids) < n:
            dead = self.engines.exited()
            if dead:
                pid, code, log = dead[0]
                raise ClusterError(
                    f"engine process {pid} exited with status {code} before registering; "
                    f"its log {log}:\n{tail(log)}"
                )
            if self.controller.exited():
                raise ClusterError("the controller exited; its log:\n"
                                   + self.controller.get_output())
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"only {len(rc.ids)} of {n} engines registered within {timeout:.0f} s; "
                    f"engine logs:\n{self.engines.get_output()}"
                )
            time.sleep(0.02)
        return rc

    def start_cluster_sync(self, n=None):
        self.start_controller_sync()  # refuses, touching nothing, if one already runs
        try:
            self.start_engines_sync(n)
            self.wait_for_engines()
        except BaseException:
            self.stop_cluster_sync()
            raise
        return self

    def connect_client_sync(self, **kwargs):
        if self._client is None:
            from ..client import Client

            self._client = Client(self.connection_file, **kwargs)
        return self._client

    def start_and_connect_sync(self, n=None):
        self.start_cluster_sync(n)
        return self.connect_client_sync()

    # -- stop ----------------------------------------------------------------------
    def stop_engines_sync(self):
        if self.engines is not None:
            self.engines.stop()

    def stop_cluster_sync(self):
        """Shuts everything down (politely, then by signal) and removes the files."""
        _live_clusters.discard(self)
        if self._client is None and self.controller is not None and self.controller.running:
            try:
                self.connect_client_sync(timeout=2)
            except Exception:  # noqa: BLE001 - unreachable: fall back to signals below
                pass
        if self._client is not None:
            try:
                self._client.shutdown(hub=True, block=True)
            except Exception:  # noqa: BLE001 - fall back to signals below
                pass
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                pass
            self._client = None
        for launcher in (self.engines, self.controller):
            if launcher is not None:
                if not launcher.wait(2.0):
                    launcher.stop()
        for path in (self.cluster_file, self.connection_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @classmethod
    def from_file(cls, profile="default", cluster_id=""):
        """The cluster described by an existing cluster file (to stop it)."""
        info = paths.read_json(paths.cluster_file(profile, cluster_id))
        c = cls(n=info.get("n", 0), profile=profile, cluster_id=cluster_id, daemonize=True)
        c.controller = launcher_from_dict(info["controller"])
        c.engines = launcher_from_dict(info["engines"])
        return c

    # -- asyncio forms (ipyparallel's Cluster methods are coroutines) ---------------
    async def start_controller(self):
        return await asyncio.to_thread(self.start_controller_sync)

    async def start_engines(self, n=None):
        """Starts ``n`` more engines (default: the cluster's ``n``); they register and
        take work (load-balanced tasks included) as soon as they are up."""
        return await asyncio.to_thread(self.start_engines_sync, n)

    async def start_cluster(self, n=None):
        return await asyncio.to_thread(self.start_cluster_sync, n)

    async def start_and_connect(self, n=None):
        return await asyncio.to_thread(self.start_and_connect_sync, n)

    async def stop_engines(self):
        return await asyncio.to_thread(self.stop_engines_sync)

    async def stop_cluster(self):
        return await asyncio.to_thread(self.stop_cluster_sync)

    async def __aenter__(self):
        return await self.start_and_connect()

    async def __aexit__(self, *exc):
        await self.stop_cluster()

    # -- context manager -------------------------------------------------------------
    def __enter__(self):
        return self.start_and_connect_sync()

    def __exit__(self, *exc):
        self.stop_cluster_sync()

    def __repr__(self):
        running = len(self.engines.running) if self.engines else 0
        return (f"<Cluster profile={self.profile!r} cluster_id={self.cluster_id!r} "
                f"n={self.n} engines_running={running}>")
