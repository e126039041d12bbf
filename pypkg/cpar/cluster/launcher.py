"""Launchers: how the controller and the engines of a cluster are started and stopped.

A launcher has one small interface — ``start()``, ``stop()``, ``signal(sig)``,
``get_output()``, ``running`` — and can save its state into the cluster file
(``to_dict``) and be rebuilt from it (``from_dict``) so that ``cpar cluster stop`` works
from another process. ``local`` starts processes on this machine.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

import cpar
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


class LocalProcessLauncher:
    """One or more processes on this machine, each with its own log file."""

    name = "local"

    def __init__(self, argvs=(), log_paths=(), env=None, tie_to_parent=True, pids=()):
        self.argvs = [list(a) for a in argvs]
        self.log_paths = list(log_paths)
        self.env = env
        self.tie_to_parent = tie_to_parent
        self.procs = []  # Popen objects, when started by this process
        self.pids = list(pids)

    def start(self):
        for argv, log in zip(self.argvs, self.log_paths):
            with open(log, "ab") as out:
                p = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if self.tie_to_parent else None,
                )
            self.procs.append(p)
            self.pids.append(p.pid)

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

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL what is left after ``timeout`` s; reaps our children."""
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            self.signal(signal.SIGKILL)
            self.wait(5.0)

    def get_output(self):
        return "\n".join(f"--- {log}\n{tail(log)}" for log in self.log_paths)

    def to_dict(self):
        return {"launcher": self.name, "pids": self.pids, "log_paths": self.log_paths}

    @classmethod
    def from_dict(cls, d):
        return cls(log_paths=d.get("log_paths", ()), pids=d.get("pids", ()))


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


def engine_argv(connection_file, log_path, extra=()):
    return [
        engine_binary(),
        "--connection-file",
        connection_file,
        "--python",
        sys.executable,
        "--log",
        log_path,
        *extra,
    ]


LAUNCHERS = {"local": LocalProcessLauncher}


def launcher_from_dict(d):
    return LAUNCHERS[d.get("launcher", "local")].from_dict(d)
