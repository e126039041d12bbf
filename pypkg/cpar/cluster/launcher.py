"""Launchers: how the controller and the engines of a cluster are started and stopped.

A launcher has one small interface (:class:`Launcher`): ``start()``, ``stop()``,
``signal(sig)``, ``get_output()``, ``running``, ``wait(timeout)``, ``exited()`` — and saves
its state into the cluster file (``to_dict``) and is rebuilt from it (``from_dict``) so
that ``cpar cluster stop`` works from another process.

Engine launchers, chosen by ``Cluster(engines=NAME)`` / ``cpar cluster start --engines
NAME``: ``local`` (processes on this machine, the default), ``mpi`` (``mpiexec``, engine
id = MPI rank; :mod:`.mpi`), ``ssh`` (engines on named hosts; :mod:`.ssh`), ``slurm``,
``pbs``, ``sge`` and ``batch`` (a job script submitted to a batch system; :mod:`.batch`).
Controller launchers, ``Cluster(controller=NAME, controller_options={...})`` / ``--controller
NAME``: ``local`` (the default), ``ssh`` (the controller on ``ssh_host``, its connection
file copied back), ``mpi`` (the one rank of ``mpiexec -n 1``) and ``slurm``, ``pbs``,
``sge``, ``batch`` (a one-task job). A controller launcher class has ``for_cluster(cluster,
log, extra, **options)`` (``extra``: arguments of ``cpar controller``) and
``connection_ready(path)``, true once its controller wrote the connection file. cpar
never runs a cluster manager of its own.

An engine launcher class has ``for_cluster(cluster, n, first_id, **options)``, which
builds it for ``n`` engines whose ids start at ``first_id``, and an ``n`` attribute.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import cpar
from cpar import connfile
from cpar._proc import pid_alive  # noqa: F401 - re-exported for the cluster


def engine_binary():
    """Path of the ``cpar-engine`` executable: ``$CPAR_ENGINE`` when set (e.g. a
    sanitizer build), else the one installed with the package."""
    path = os.environ.get("CPAR_ENGINE") or os.path.join(
        os.path.dirname(cpar.__file__), "bin", "cpar-engine"
    )
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"cpar-engine not found at {path}: cpar's C parts are not built "
            "(run `pip install .` or `make`)"
        )
    return path


def _tie_to_thread():
    """``_die_with_parent`` when called from the main thread, else None: the kernel's
    parent-death signal follows the launching *thread*, and a worker thread (asyncio's
    ``to_thread`` in ``await cluster.start_cluster()``) ends long before the process
    (whose exit still stops its clusters, ``_stop_live_clusters``)."""
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None


def _die_with_parent():
    """preexec_fn: SIGTERM this child when the launching thread dies (Linux)."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def tail(path, lines=20):
    """The last lines of a log file, or '' when there is none."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""



class Launcher:
    """The interface every launcher has. ``pids`` are the processes on this machine that
    the launcher started (for ``mpi`` and ``ssh``: ``mpiexec`` and the ``ssh`` clients;
    none for batch jobs). ``n`` is how many engines it starts (engine launchers)."""

    name = "base"
    n = 0
    pids = ()

    def start(self):
        raise NotImplementedError

    def stop(self, timeout=5.0):
        raise NotImplementedError

    def signal(self, sig):
        raise NotImplementedError

    def get_output(self):
        return ""

    def cleanup(self):
        """Removes what ``start`` left behind (remote files); called after the stop."""

    @property
    def running(self):
        return []

    def wait(self, timeout):
        """Waits up to ``timeout`` s for what was started to end; True when it did."""
        return not self.running

    def exited(self):
        """(pid, returncode, log) of local processes that ended before they should."""
        return []

    def to_dict(self):
        return {"launcher": self.name}

    @classmethod
    def from_dict(cls, d):
        raise NotImplementedError


class LocalProcessLauncher(Launcher):
    """One or more processes on this machine, each with its own log file."""

    name = "local"

    def __init__(self, argvs=(), log_paths=(), env=None, tie_to_parent=True, pids=()):
        self.argvs = [list(a) for a in argvs]
        self.log_paths = list(log_paths)
        self.env = env
        self.tie_to_parent = tie_to_parent
        self.procs = []  # Popen objects, when started by this process
        self.pids = list(pids)

    def _popen(self, argv, log):
        """Starts ``argv`` in its own session, its output appended to the file ``log``."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_tie_to_thread() if self.tie_to_parent else None,
            )

    def start(self):
        for argv, log in zip(self.argvs, self.log_paths):
            p = self._popen(argv, log)
            self.procs.append(p)
            self.pids.append(p.pid)

    @property
    def n(self):
        return len(self.log_paths)

    @property
    def running(self):
        return [pid for pid in self.pids if self._alive(pid)]

    def _alive(self, pid):
        for p in self.procs:
            if p.pid == pid:
                return p.poll() is None
        return pid_alive(pid)

    def exited(self):
        """(pid, returncode, log) of processes started here that have already exited."""
        out = []
        for p, log in zip(self.procs, self.log_paths):
            if p.poll() is not None:
                out.append((p.pid, p.returncode, log))
        return out

    def signal(self, sig):
        for pid in self.running:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        """Waits up to ``timeout`` s for every process to end; True when all did."""
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        for p in self.procs:
            p.poll()
        return True

    def respawn(self, pid, extra=(), before_start=None):
        """Kills the process ``pid`` (SIGKILL: it may not answer anything gentler) and
        starts its command line again, with ``extra`` arguments, in its place (after
        calling ``before_start()``, when given). False when ``pid`` was not started by
        this launcher object."""
        for i, p in enumerate(self.procs):
            if p.pid == pid:
                break
        else:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        if before_start is not None:
            before_start()
        new = self._popen(list(self.argvs[i]) + list(extra), self.log_paths[i])
        self.procs[i] = new
        self.pids[self.pids.index(pid)] = new.pid
        return True

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL what is left after ``timeout`` s; reaps our children."""
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.signal(signal.SIGKILL)
            self.wait(5.0)

    def get_output(self):
        return "\n".join(f"--- {log}\n{tail(log)}" for log in self.log_paths)

    def connection_ready(self, path):
        """(As a controller launcher) True once this controller wrote ``path``."""
        info = connfile.read_if_written(path)
        return info is not None and bool(self.pids) and info["controller_pid"] == self.pids[0]

    def to_dict(self):
        return {"launcher": self.name, "pids": self.pids, "log_paths": self.log_paths}

    @classmethod
    def from_dict(cls, d):
        return cls(log_paths=d.get("log_paths", ()), pids=d.get("pids", ()))


def read_connection_info(path):
    """The controller's connection file as a dict, or None while none has been written.
    The cluster removes the old file before it starts a controller, so a file that is
    there afterwards is the new controller's."""
    return connfile.read_if_written(path)


def controller_argv(profile, cluster_id, log_path, extra=()):
    return [
        sys.executable,
        "-m",
        "cpar",
        "controller",
        "--profile",
        profile,
        "--cluster-id",
        cluster_id,
        "--log",
        log_path,
        *extra,
    ]


def engine_argv(connection_file, log_path, extra=(), python=None, binary=None):
    """The command line of one engine; ``log_path`` None logs to stderr."""
    argv = [
        binary or engine_binary(),
        "--connection-file",
        connection_file,
        "--python",
        python or sys.executable,
    ]
    if log_path is not None:
        argv += ["--log", log_path]
    return argv + list(extra)


def rankexec_argv(first_id=0, python=None):
    """The wrapper that starts one engine per MPI/Slurm rank with ``--id first_id+rank``
    (see :mod:`cpar.cluster.rankexec`)."""
    return [python or sys.executable, "-m", "cpar.cluster.rankexec",
            "--first-id", str(first_id), "--"]


def new_engine_set_id():
    """A fresh engine set id: ``<unix time>-<4 random letters and digits>``."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return f"{int(time.time())}-" + "".join(alphabet[b % 36] for b in os.urandom(4))


class EngineSet(Launcher):
    """The engines of a cluster: one sub-launcher per ``start_engines`` call, of any kind,
    each under an engine set id (``set_ids``; ``engines[set_id]`` is its launcher and
    iterating gives the ids, as ipyparallel's ``cluster.engines`` dict)."""

    name = "set"

    def __init__(self, launchers=(), set_ids=None):
        self.launchers = list(launchers)
        set_ids = list(set_ids or ())
        self.set_ids = [set_ids[i] if i < len(set_ids) else new_engine_set_id()
                        for i in range(len(self.launchers))]

    def add(self, launcher, set_id=None):
        self.launchers.append(launcher)
        self.set_ids.append(set_id or new_engine_set_id())

    def __iter__(self):
        return iter(list(self.set_ids))

    def __contains__(self, set_id):
        return set_id in self.set_ids

    def __getitem__(self, set_id):
        try:
            return self.launchers[self.set_ids.index(set_id)]
        except ValueError:
            raise KeyError(f"no engine set {set_id!r}; the engine sets are: "
                           + (", ".join(self.set_ids) or "none")) from None

    def keys(self):
        return list(self.set_ids)

    def items(self):
        return list(zip(self.set_ids, self.launchers))

    def remove(self, set_id):
        """Forgets engine set ``set_id`` (stop it first); returns its launcher."""
        launcher = self[set_id]
        i = self.set_ids.index(set_id)
        del self.launchers[i], self.set_ids[i]
        return launcher

    @property
    def n(self):
        return sum(getattr(la, "n", 0) for la in self.launchers)

    @property
    def pids(self):
        return [p for la in self.launchers for p in la.pids]

    @property
    def running(self):
        return [p for la in self.launchers for p in la.running]

    def start(self):
        for la in self.launchers:
            la.start()

    def signal(self, sig):
        for la in self.launchers:
            la.signal(sig)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        ok = True
        for la in self.launchers:
            ok = la.wait(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def stop(self, timeout=5.0):
        for la in self.launchers:
            try:
                la.stop(timeout)
            except Exception:  # noqa: BLE001 - stop the others all the same
                pass

    def exited(self):
        return [e for la in self.launchers for e in la.exited()]

    def cleanup(self):
        for la in self.launchers:
            try:
                la.cleanup()
            except Exception:  # noqa: BLE001 - best effort
                pass

    def get_output(self):
        return "\n".join(la.get_output() for la in self.launchers)

    def to_dict(self):
        return {"launcher": self.name, "n": self.n, "pids": self.pids,
                "sets": [la.to_dict() for la in self.launchers], "set_ids": self.set_ids}

    @classmethod
    def from_dict(cls, d):
        if d.get("launcher", "local") != cls.name:  # an older cluster file: one launcher
            return cls([launcher_from_dict(d)])
        return cls([launcher_from_dict(s) for s in d.get("sets", ())], d.get("set_ids"))


def engine_launchers():
    """Engine launcher classes by name."""
    from .batch import BatchEngineLauncher, PBSEngineLauncher, SGEEngineLauncher, SlurmEngineLauncher
    from .mpi import MPIEngineLauncher
    from .ssh import SSHEngineLauncher

    return {
        "local": LocalEngineLauncher,
        "mpi": MPIEngineLauncher,
        "ssh": SSHEngineLauncher,
        "slurm": SlurmEngineLauncher,
        "pbs": PBSEngineLauncher,
        "sge": SGEEngineLauncher,
        "batch": BatchEngineLauncher,
    }


def controller_launchers():
    """Controller launcher classes by name."""
    from .batch import (
        BatchControllerLauncher,
        PBSControllerLauncher,
        SGEControllerLauncher,
        SlurmControllerLauncher,
    )
    from .mpi import MPIControllerLauncher
    from .ssh import SSHControllerLauncher

    return {
        "local": LocalProcessLauncher,
        "mpi": MPIControllerLauncher,
        "ssh": SSHControllerLauncher,
        "slurm": SlurmControllerLauncher,
        "pbs": PBSControllerLauncher,
        "sge": SGEControllerLauncher,
        "batch": BatchControllerLauncher,
    }


class LocalEngineLauncher(LocalProcessLauncher):
    """``n`` engines on this machine, each its own process and log."""

    name = "local"

    @classmethod
    def for_cluster(cls, cluster, n, first_id, **options):
        if options:
            raise TypeError(f"the local engine launcher takes no options: {sorted(options)}")
        la = cls(tie_to_parent=not cluster.daemonize)
        for i in range(first_id, first_id + n):
            log = cluster._log(f"engine-{i}")
            la.argvs.append(engine_argv(cluster.connection_file, log, cluster.engine_args))
            la.log_paths.append(log)
        return la


def launcher_from_dict(d):
    name = d.get("launcher", "local")
    if name == EngineSet.name:
        return EngineSet.from_dict(d)
    classes = {**engine_launchers(),
               **{c.name: c for c in controller_launchers().values()}}
    if name not in classes:
        raise ValueError(f"unknown launcher {name!r} in the cluster file")
    return classes[name].from_dict(d)
