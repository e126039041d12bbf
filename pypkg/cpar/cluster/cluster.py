"""Cluster: start, find and stop a controller and its engines, from Python or the CLI.

State lives in the cluster file (``cpar.paths.cluster_file``): which processes belong to
the cluster and where their logs are, so that ``cpar cluster stop`` works from any
process. A cluster started by a Python process (not ``--daemonize``) is stopped when that
process exits.
"""

import asyncio
import atexit
import os
import secrets
import subprocess
import time
import weakref

from .. import paths
from .manager import launcher_name
from .launcher import (
    EngineSet,
    LocalProcessLauncher,
    controller_launchers,
    controller_argv,
    engine_launchers,
    launcher_from_dict,
    pid_alive,
    tail,
)



def _fresh_cluster_id():
    """A cluster id no other cluster of the profile is likely to have: the start time
    and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"

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


def controller_alive(info):
    """Whether the controller of a cluster file's content runs, as its launcher sees it:
    its local process for the local, mpi and ssh launchers; for a batch job, the
    controller's pid on this host or the scheduler's word."""
    try:
        return bool(launcher_from_dict(info.get("controller") or {}).running)
    except ValueError:
        return False


def running_cluster_info(profile="default", cluster_id=""):
    """The cluster file's content when that cluster's controller is alive, else None."""
    path = paths.cluster_file(profile, cluster_id)
    try:
        info = paths.read_json(path)
    except (OSError, ValueError):
        return None
    return info if controller_alive(info) else None


def _engines_running(info):
    """Local engines whose process is alive; for mpiexec, ssh and batch launchers (whose
    engines are not local processes), their count while the controller runs."""
    engines = info.get("engines", {})
    sets = engines.get("sets") if engines.get("launcher") == "set" else [engines]
    count = 0
    for s in sets or ():
        if s.get("launcher", "local") == "local":
            count += sum(pid_alive(p) for p in s.get("pids", []))
        elif info.get("running"):
            count += s.get("n", 0)
    return count


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
                info["running"] = controller_alive(info)
                info["engines_running"] = _engines_running(info)
                out.append(info)
    return out


def _looks_like_path(s):
    s = os.fspath(s)
    return os.sep in s or s.endswith(".json") or os.path.exists(s)


class Cluster:
    """A controller and ``n`` engines.

    ``with Cluster(n=4) as rc:`` starts them, gives a connected Client, and stops
    everything at the end of the block.

    ``cluster_id``: by default a fresh one (as ipyparallel's), so clusters started from
    Python run side by side; ``cluster_id=""`` is the profile's default cluster, the one
    ``cpar cluster start`` starts and a bare ``Client()`` connects to.

    ``engines`` picks how the engines start: ``'local'`` (default), ``'mpi'``,
    ``'ssh'``, ``'slurm'``, ``'pbs'``, ``'sge'`` or ``'batch'``; the launcher's options
    come as keywords (``mpi_args=``, ``ssh_hosts=``, ``queue=``, ...) or as
    ``engine_options={...}``. See ``cpar.cluster.launcher`` and its modules.

    ``db``, ``db_file``, ``db_max_records``, ``db_max_bytes``, ``db_keep_bytes``: the
    controller's task database (``cpar controller --db ...``; docs/taskdb.md); None keeps
    its default (a SQLite file in the profile's ``db/`` folder).

    ``recover_grace``: seconds engines and clients wait for a controller that died
    (default 60); ``recover_sync()`` / ``await recover()`` starts a new one in its place
    from the task database (docs/recovery.md).
    """

    def __init__(
        self,
        n=None,
        profile="default",
        cluster_id=None,
        engines="local",
        controller_args=(),
        engine_args=(),
        daemonize=False,
        hb_timeout_ms=3000,
        start_timeout=60.0,
        controller="local",
        engine_options=None,
        controller_options=None,
        db=None,
        db_file=None,
        db_max_records=None,
        db_max_bytes=None,
        db_keep_bytes=None,
        recover_grace=None,
        log_level=None,
        **launcher_options,
    ):
        # case-insensitive, and ipyparallel's spellings ('MPI', 'MPIEngineSetLauncher')
        engines = launcher_name(engines, engine_launchers(), "engine")
        controller = launcher_name(controller, controller_launchers(), "controller")
        self.engine_launcher = engines
        self.controller_launcher = controller
        self.controller_options = dict(controller_options or {})
        self.engine_options = {**(engine_options or {}), **launcher_options}
        if n is None and engines == "ssh" and self.engine_options.get("ssh_hosts"):
            from .ssh import parse_hosts

            n = sum(parse_hosts(self.engine_options["ssh_hosts"]).values())
        self.n = n if n is not None else (os.cpu_count() or 1)
        if not isinstance(self.n, int) or self.n < 0:
            raise ValueError(f"n must be a non-negative int, not {n!r}")
        self.profile = profile
        # As ipyparallel's Cluster: a fresh id of its own unless one is given, so that
        # several clusters of one profile run side by side. "" is the profile's default
        # cluster (`cpar cluster start`'s), the one a bare Client() finds.
        self.cluster_id = _fresh_cluster_id() if cluster_id is None else (cluster_id or "")
        self.controller_args = list(controller_args)
        # ipyparallel's log verbosity of its processes: accepted, and not used (cpar's
        # controller and engines log what they log).
        self.log_level = log_level
        # The task database (docs/taskdb.md): `cpar controller --db ...`; None: its default.
        for opt, value in (("--db", db), ("--db-file", db_file),
                           ("--db-max-records", db_max_records),
                           ("--db-max-bytes", db_max_bytes),
                           ("--db-keep-bytes", db_keep_bytes)):
            if value is not None:
                self.controller_args += [opt, os.fspath(value) if opt == "--db-file"
                                         else str(value)]
        # Recovery from a dead controller (docs/recovery.md): how long engines and clients
        # wait for it; None: the controller's default ($CPAR_RECOVER_GRACE or 60 s).
        if recover_grace is not None:
            self.controller_args += ["--recover-grace", str(recover_grace)]
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
                "engine_launcher": self.engine_launcher,
                "engine_options": self.engine_options,
                "engine_args": self.engine_args,
                "controller_launcher": self.controller_launcher,
                # what `cpar controller` was given, for recover_sync
                "controller_args": self._controller_extra(),
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
        self._launch_controller(self._controller_extra())

    def _controller_extra(self):
        return ["--hb-timeout-ms", str(self.hb_timeout_ms), *self.controller_args]

    def _launch_controller(self, extra):
        """Starts the controller with `cpar controller` arguments ``extra`` and waits for
        its connection file (stopping everything if it does not come)."""
        log = self._log("controller")
        if self.controller_launcher == "local":
            self.controller = LocalProcessLauncher(
                [controller_argv(self.profile, self.cluster_id, log, extra)],
                [log],
                tie_to_parent=not self.daemonize,
            )
        else:
            cls = controller_launchers()[self.controller_launcher]
            try:
                self.controller = cls.for_cluster(self, log, extra,
                                                  **self.controller_options)
            except TypeError as e:
                raise ValueError(f"controller launcher {self.controller_launcher!r}: "
                                 f"{e}") from None
        if self.engines is None or "--recover" not in extra:
            self.engines = EngineSet()
        try:
            self.controller.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            raise ClusterError(f"the {self.controller_launcher} controller launcher could "
                               f"not start the controller: {e}") from e
        self._save()
        _live_clusters.add(self)
        try:
            self._wait_for_connection_file()
            self._save()  # with what the launcher learnt (e.g. the batch job's controller)
        except BaseException:
            if "--recover" in extra:
                # The engines wait for a controller within their grace period: only the
                # failed one is stopped, so that another attempt can still take them up.
                if self.controller.running:
                    self.controller.stop()
            else:
                self.stop_cluster_sync()
            raise

    def recover_sync(self):
        """Starts a new controller in place of this cluster's controller that died
        (SIGKILL, out of memory, a crash): on the same addresses and key, from the cluster
        file, the connection file and the task database (``cpar controller --recover``;
        docs/recovery.md). The engines still running re-register with their ids within
        their grace period, clients reconnect by themselves, and the work that was queued
        or running is taken up again. Raises ``ClusterError`` when the controller still
        runs or cannot be recovered (the message says why)."""
        if self.controller is None:
            try:
                info = paths.read_json(self.cluster_file)
            except FileNotFoundError:
                raise ClusterError(f"no cluster file {self.cluster_file}: nothing to "
                                   "recover") from None
            self.controller = launcher_from_dict(info["controller"])
            self.engines = EngineSet.from_dict(info["engines"])
        if self.controller.running:
            raise ClusterError(f"the controller of cluster {self.cluster_id or 'default'!r} "
                               f"(profile {self.profile!r}) is still running: nothing to "
                               "recover")
        if self.controller_launcher != "local":
            raise ClusterError(
                f"recover_sync starts local controllers only (this cluster's controller "
                f"launcher is {self.controller_launcher!r}): run `cpar controller --recover "
                f"--profile {self.profile} --cluster-id {self.cluster_id or 'default'}` where "
                "the controller ran")
        if not os.path.exists(self.connection_file):
            raise ClusterError(f"cannot recover: the connection file {self.connection_file} "
                               "is gone (the cluster was stopped, not killed)")
        try:
            self.controller.cleanup()
        except Exception:  # noqa: BLE001 - the dead controller's leftovers: best effort
            pass
        self._client = None
        self._launch_controller([*self._controller_extra(), "--recover"])

    async def recover(self):
        return await asyncio.to_thread(self.recover_sync)

    def _wait_for_connection_file(self):
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.controller.connection_ready(self.connection_file):
                return
            if self.controller.exited():
                raise ClusterError("the controller exited during start-up:\n"
                                   + self.controller.get_output())
            if time.monotonic() > deadline:
                raise ClusterError(f"the controller did not start within "
                                   f"{self.start_timeout:.0f} s:\n"
                                   + self.controller.get_output())
            time.sleep(0.01)

    def start_engines_sync(self, n=None, engine_set_id=None):
        """Starts ``n`` more engines (default: the cluster's ``n``) with the cluster's
        engine launcher, as a new engine set (id ``engine_set_id``, default a new one:
        see ``engines.set_ids``); their ids follow the engines already started."""
        if engine_set_id is not None and engine_set_id in self.engines:
            raise ValueError(f"engine set {engine_set_id!r} already exists")
        n = self.n if n is None else n
        if n == 0 and self.engine_launcher != "local":
            return
        first_id = self.engines.n
        cls = engine_launchers()[self.engine_launcher]
        try:
            new = cls.for_cluster(self, n, first_id, **self.engine_options)
        except TypeError as e:
            raise ValueError(f"engine launcher {self.engine_launcher!r}: {e}") from None
        try:
            new.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            raise ClusterError(f"the {self.engine_launcher} engine launcher could not "
                               f"start {n} engines: {e}") from e
        finally:
            if new.pids or getattr(new, "job_id", None):
                self.engines.add(new, engine_set_id)
                self._save()

    def wait_for_engines(self, n=None, timeout=None, progress=None):
        """Waits until ``n`` engines (default: all started) are registered. An engine
        process that exits meanwhile raises ClusterError with its log. ``progress``: a
        callable given ``(registered, n)`` at the start and whenever that count changes
        (``cpar cluster start`` draws its bar with it)."""
        n = self.engines.n if n is None else n
        timeout = self.start_timeout if timeout is None else timeout
        rc = self.connect_client_sync()
        deadline = time.monotonic() + timeout
        shown = None
        while True:
            registered = len(rc.ids)
            if progress is not None and registered != shown:
                shown = registered
                progress(min(registered, n), n)
            if registered >= n:
                break
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

    def replace_engine(self, engine_id, pid, before_start=None):
        """Kills the engine process ``pid`` (SIGKILL) and starts a replacement that asks
        for ``engine_id`` again; ``before_start()`` runs in between (e.g. waiting until
        the controller has noticed the death, so the id is free). True when this cluster
        launched the process on this machine (local engines); False otherwise (nothing
        done)."""
        for la in self.engines.launchers if self.engines is not None else ():
            if not isinstance(la, LocalProcessLauncher) or pid not in la.pids:
                continue
            if la.respawn(pid, ["--id", str(engine_id)], before_start):
                self._save()
                return True
        return False

    def start_cluster_sync(self, n=None, progress=None):
        """Starts the controller and ``n`` engines (default: the cluster's ``n``) and
        waits until they are registered (``progress``: see ``wait_for_engines``)."""
        self.start_controller_sync()  # refuses, touching nothing, if one already runs
        try:
            self.start_engines_sync(n)
            self.wait_for_engines(progress=progress)
        except BaseException:
            self.stop_cluster_sync()
            raise
        return self

    def connect_client_sync(self, **kwargs):
        """This cluster's client (made on first use, and again after it was closed);
        ``kwargs`` go to ``Client``."""
        if self._client is not None and self._client.closed:
            self._client = None
        if self._client is None:
            from ..client import Client

            self._client = Client(self.connection_file, **kwargs)
        return self._client

    def start_and_connect_sync(self, n=None):
        self.start_cluster_sync(n)
        return self.connect_client_sync()

    # -- stop ----------------------------------------------------------------------
    def _engine_set(self, engine_set_id):
        if self.engines is None:
            raise ClusterError("this cluster has no engines (it was not started)")
        return self.engines[engine_set_id]  # KeyError naming the sets otherwise

    def stop_engines_sync(self, engine_set_id=None):
        """Stops the engines of one engine set (``engines.set_ids``), or all of them;
        they leave the cluster (its file says so)."""
        if self.engines is None:
            return
        ids = list(self.engines) if engine_set_id is None else [engine_set_id]
        for set_id in ids:
            la = self._engine_set(set_id)
            la.stop()
            try:
                la.cleanup()
            except Exception:  # noqa: BLE001 - its files: best effort
                pass
            self.engines.remove(set_id)
        if self.controller is not None and os.path.exists(self.cluster_file):
            self._save()

    def stop_controller_sync(self):
        """Stops the controller. On its SIGTERM it tells every engine to stop first, so
        the engines end with it; the cluster's files are removed as by
        ``stop_cluster_sync`` (which also stops launchers whose engines linger)."""
        if self.controller is None:
            return
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a client of a cluster going away
                pass
            self._client = None
        if self.controller.running:
            self.controller.stop()
        self.controller.cleanup()
        if self.engines is not None and not self.engines.wait(5.0):
            self.engines.stop()  # they heard nothing (e.g. an unreachable host): by signal

    def signal_engines_sync(self, signum, engine_set_id=None):
        """Sends signal ``signum`` to the engines of one engine set, or of all (e.g.
        ``signal.SIGINT`` interrupts what they run)."""
        if self.engines is None:
            return
        sets = self.engines.launchers if engine_set_id is None else \
            [self._engine_set(engine_set_id)]
        for la in sets:
            la.signal(signum)

    def restart_engines_sync(self, engine_set_id=None):
        """Stops one engine set (or each) and starts as many engines again, under the
        same engine set id; they register as new engines."""
        ids = list(self.engines or ()) if engine_set_id is None else [engine_set_id]
        for set_id in ids:
            n = self._engine_set(set_id).n
            self.stop_engines_sync(set_id)
            self.start_engines_sync(n, set_id)

    def stop_cluster_sync(self):
        """Shuts everything down (politely, then by signal) and removes the files."""
        _live_clusters.discard(self)
        if self._client is None and self.controller is not None and self.controller.running:
            try:
                self.connect_client_sync(timeout=2)
            except Exception:  # noqa: BLE001 - unreachable: fall back to signals below
                pass
        grace = 0.0  # without a shutdown sent, nothing ends by itself: signal at once
        if self._client is not None:
            try:
                self._client.shutdown(hub=True, block=True)
                grace = 2.0
            except Exception:  # noqa: BLE001 - fall back to signals below
                pass
            try:
                self._client.close()
            except Exception:  # noqa: BLE001
                pass
            self._client = None
        for launcher in (self.engines, self.controller):
            if launcher is not None:
                if not launcher.wait(grace):
                    launcher.stop()
                launcher.cleanup()
        for path in (self.cluster_file, self.connection_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @classmethod
    def from_file(cls, cluster_file=None, *, profile=None, cluster_id=""):
        """The cluster described by a cluster file: ``cluster_file`` (a path), or that of
        ``profile`` (default ``'default'``) and ``cluster_id``. Its ``connect_client_sync``,
        ``stop_engines``, ``stop_cluster_sync``... act on the running cluster."""
        if cluster_file is not None and profile is None and not _looks_like_path(cluster_file):
            profile, cluster_file = cluster_file, None  # from_file(profile, cluster_id)
        if cluster_file is None:
            cluster_file = paths.cluster_file(profile or "default", cluster_id)
        cluster_file = os.fspath(cluster_file)
        try:
            info = paths.read_json(cluster_file)
        except FileNotFoundError:
            raise FileNotFoundError(f"no cluster file {cluster_file}: is that cluster "
                                    "running? (`cpar cluster list` shows them)") from None
        if not isinstance(info, dict) or "controller" not in info or "engines" not in info:
            raise ValueError(f"{cluster_file} is not a cpar cluster file")
        profile = info.get("profile", profile or "default")
        cluster_id = info.get("cluster_id", cluster_id) or ""
        c = cls(n=info.get("n", 0), profile=profile, cluster_id=cluster_id, daemonize=True,
                engines=info.get("engine_launcher", "local"),
                engine_args=info.get("engine_args", ()),
                engine_options=info.get("engine_options") or {},
                controller=info.get("controller_launcher", "local"))
        extra = list(info.get("controller_args") or ())
        if extra[:1] == ["--hb-timeout-ms"] and len(extra) >= 2:
            c.hb_timeout_ms = int(extra[1])
            extra = extra[2:]
        c.controller_args = extra
        c.controller = launcher_from_dict(info["controller"])
        c.engines = EngineSet.from_dict(info["engines"])
        return c

    # -- asyncio forms (ipyparallel's Cluster methods are coroutines) ---------------
    async def connect_client(self, **kwargs):
        return await asyncio.to_thread(self.connect_client_sync, **kwargs)

    async def signal_engines(self, signum, engine_set_id=None):
        return await asyncio.to_thread(self.signal_engines_sync, signum, engine_set_id)

    async def restart_engines(self, engine_set_id=None):
        return await asyncio.to_thread(self.restart_engines_sync, engine_set_id)

    async def start_controller(self):
        return await asyncio.to_thread(self.start_controller_sync)

    async def start_engines(self, n=None, engine_set_id=None):
        """Starts ``n`` more engines (default: the cluster's ``n``); they register and
        take work (load-balanced tasks included) as soon as they are up."""
        return await asyncio.to_thread(self.start_engines_sync, n, engine_set_id)

    async def start_cluster(self, n=None):
        return await asyncio.to_thread(self.start_cluster_sync, n)

    async def start_and_connect(self, n=None):
        return await asyncio.to_thread(self.start_and_connect_sync, n)

    async def stop_engines(self, engine_set_id=None):
        return await asyncio.to_thread(self.stop_engines_sync, engine_set_id)

    async def stop_controller(self):
        return await asyncio.to_thread(self.stop_controller_sync)

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
