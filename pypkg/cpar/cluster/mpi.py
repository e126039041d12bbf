"""``mpi``: the engines as the ranks of one ``mpiexec`` (OpenMPI, MPICH, Intel MPI).

``mpiexec -n N [mpi_args] python -m cpar.cluster.rankexec -- cpar-engine ...``: each rank
starts an engine asking for id = first id + rank, so ``rc[k]`` is MPI rank ``k`` and
``mpi4py``'s ``MPI.COMM_WORLD`` spans the engines. ``--controller mpi`` runs the
controller the same way, as the one rank of its own ``mpiexec -n 1``.

OpenMPI refuses to run as root and to start more ranks than there are cores unless told;
for OpenMPI this launcher adds ``--allow-run-as-root`` when running as root and
``--oversubscribe`` (idle engines are cheap) unless ``mpi_defaults=False``.
"""

import functools
import os
import shlex
import shutil
import signal
import subprocess

from .launcher import (
    LocalProcessLauncher,
    controller_argv,
    engine_argv,
    rankexec_argv,
    read_connection_info,
    tail,
)


@functools.lru_cache(maxsize=8)
def mpi_flavour(mpiexec):
    """'openmpi', 'mpich' or 'unknown', from ``mpiexec --version``."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if "Open MPI" in out or "OpenRTE" in out:
        return "openmpi"
    if "HYDRA" in out or "MPICH" in out or "Intel" in out:
        return "mpich"
    return "unknown"


def default_mpi_args(mpiexec):
    if mpi_flavour(mpiexec) != "openmpi":
        return []
    extra = ["--oversubscribe"]
    if os.geteuid() == 0:
        extra.insert(0, "--allow-run-as-root")
    return extra


def local_engines(roots):
    """The cpar-engine processes descending from the pids ``roots`` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append((int(entry), comm))
    out, todo = [], list(roots)
    while todo:
        for pid, comm in children.get(todo.pop(), ()):
            todo.append(pid)
            if comm == "cpar-engine":
                out.append(pid)
    return out


def mpiexec_command(mpiexec, n, mpi_args, mpi_defaults):
    """``[mpiexec, -n, N, *args]``: the path found, the defaults first, then ``mpi_args``."""
    exe = shutil.which(mpiexec)
    if exe is None:
        raise FileNotFoundError(
            f"{mpiexec!r} not found: install an MPI (Debian: openmpi-bin) or pass "
            "mpiexec=/path/to/mpiexec")
    if isinstance(mpi_args, str):
        mpi_args = shlex.split(mpi_args)
    args = list(mpi_args)
    if mpi_defaults:
        args = [a for a in default_mpi_args(exe) if a not in args] + args
    return [exe, "-n", str(n), *args]


class MPIExecLauncher(LocalProcessLauncher):
    """One ``mpiexec`` process; ``pids`` is the ``mpiexec``'s, ``log_paths`` its output,
    ``engine_logs`` the logs its ranks write."""

    def __init__(self, argvs=(), log_paths=(), env=None, tie_to_parent=True, pids=(),
                 n=0, engine_logs=()):
        super().__init__(argvs, log_paths, env, tie_to_parent, pids)
        self._n = n
        self.engine_logs = list(engine_logs)

    @property
    def n(self):
        return self._n

    def stop(self, timeout=5.0):
        # mpiexec passes SIGTERM on to its ranks; SIGKILL of mpiexec would orphan them,
        # so a second SIGTERM comes before it.
        LocalProcessLauncher.signal(self, signal.SIGTERM)
        if not self.wait(timeout):
            LocalProcessLauncher.signal(self, signal.SIGTERM)
            if not self.wait(2.0):
                LocalProcessLauncher.signal(self, signal.SIGKILL)
                self.wait(5.0)

    def get_output(self):
        logs = self.log_paths + self.engine_logs
        return "\n".join(f"--- {log}\n{tail(log)}" for log in logs)

    def to_dict(self):
        d = super().to_dict()
        d.update(n=self._n, engine_logs=self.engine_logs)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(log_paths=d.get("log_paths", ()), pids=d.get("pids", ()),
                   n=d.get("n", 0), engine_logs=d.get("engine_logs", ()))


class MPIEngineLauncher(MPIExecLauncher):
    """``n`` engines as the ranks of one ``mpiexec``."""

    name = "mpi"

    @classmethod
    def for_cluster(cls, cluster, n, first_id, mpi_args=(), mpiexec="mpiexec",
                    mpi_defaults=True):
        command = mpiexec_command(mpiexec, n, mpi_args, mpi_defaults)
        tag = f"{first_id}-{first_id + n - 1}" if n > 1 else f"{first_id}"
        log = cluster._log(f"mpiexec-{tag}")
        engine_log = cluster._log("engine-{id}")
        argv = [*command, *rankexec_argv(first_id),
                *engine_argv(cluster.connection_file, engine_log, cluster.engine_args)]
        engine_logs = [engine_log.replace("{id}", str(i)) for i in range(first_id, first_id + n)]
        return cls([argv], [log], tie_to_parent=not cluster.daemonize, n=n,
                   engine_logs=engine_logs)

    def signal(self, sig):
        """SIGTERM/SIGKILL go to mpiexec (which ends the job); other signals (SIGINT to
        interrupt a task) straight to the engines on this host, since mpiexec would take
        SIGINT as an order to abort the job. ``Client.send_signal`` reaches every engine
        through the controller, wherever it runs."""
        if sig in (signal.SIGTERM, signal.SIGKILL):
            return super().signal(sig)
        for pid in local_engines(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


class MPIControllerLauncher(MPIExecLauncher):
    """``--controller mpi``: the controller as the one rank of ``mpiexec -n 1``, placed
    where ``mpi_args`` say (``--host node7``); it writes its connection file into
    ``$CPAR_DIR``, which must be shared with this machine."""

    name = "mpi_controller"

    @classmethod
    def for_cluster(cls, cluster, log, extra, mpi_args=(), mpiexec="mpiexec",
                    mpi_defaults=True):
        command = mpiexec_command(mpiexec, 1, mpi_args, mpi_defaults)
        argv = [*command, *controller_argv(cluster.profile, cluster.cluster_id, log, extra)]
        return cls([argv], [cluster._log("mpiexec-controller")],
                   tie_to_parent=not cluster.daemonize, engine_logs=[log])

    def connection_ready(self, path):
        return read_connection_info(path) is not None
