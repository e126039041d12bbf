"""``ssh``: engines on named hosts, ``ssh_hosts={'host1': 4, 'host2': 2}``.

The connection file is copied to each host with ``scp`` (into ``ssh_remote_dir``, mode
0600), then each engine runs as ``ssh [ssh_args] host 'echo CPAR_REMOTE_PID=$$; exec
cpar-engine --connection-file ...'``; its output comes back through ssh into a local log.
Engines stop when the controller shuts them down; failing that, ``ssh host kill PID``
with the remote pids the engines printed, and the local ssh clients are signalled.

The engine binary and Python are assumed at the same paths on the hosts as here (a
shared file system or the same install); ``engine_binary=`` and ``python=`` change that.
The controller must be reachable from the hosts: start it with ``--ip``/``--location``
(and ``--curve``) unless the hosts are this machine.
"""

import os
import re
import shlex
import signal
import subprocess

from .launcher import LocalProcessLauncher, engine_argv, engine_binary, tail

_PID_LINE = re.compile(r"^CPAR_REMOTE_PID=(\d+)$", re.M)


def scp_args_from_ssh_args(ssh_args):
    """ssh's ``-p PORT`` is scp's ``-P PORT``; the other common options are the same."""
    out, it = [], iter(ssh_args)
    for a in it:
        if a == "-p":
            out += ["-P", next(it, "")]
        elif a.startswith("-p") and a[2:].isdigit():
            out.append("-P" + a[2:])
        elif a in ("-t", "-T", "-n", "-N", "-f"):
            continue
        else:
            out.append(a)
    return out


def parse_hosts(hosts):
    """``{'h1': 2}``, ``['h1', 'h1', 'h2']`` or ``'h1:2,h2'`` as an ordered {host: count}."""
    if isinstance(hosts, dict):
        out = {str(h): int(k) for h, k in hosts.items()}
    else:
        if isinstance(hosts, str):
            hosts = [h for h in hosts.split(",") if h.strip()]
        out = {}
        for h in hosts:
            h = h.strip()
            name, _, count = h.rpartition(":") if re.search(r":\d+$", h) else (h, "", "1")
            out[name] = out.get(name, 0) + int(count)
    if not out or any(k < 0 for k in out.values()):
        raise ValueError(f"ssh_hosts must name hosts with engine counts, not {hosts!r}")
    return out


class SSHEngineLauncher(LocalProcessLauncher):
    """One local ``ssh`` client per remote engine; ``pids`` are the ssh clients'."""

    name = "ssh"

    def __init__(self, argvs=(), log_paths=(), env=None, tie_to_parent=True, pids=(),
                 hosts=(), ssh="ssh", ssh_args=(), scp="scp", scp_args=None,
                 local_connection_file=None, remote_connection_file=None):
        super().__init__(argvs, log_paths, env, tie_to_parent, pids)
        self.hosts = list(hosts)  # one per engine, in order
        self.ssh = ssh
        self.ssh_args = list(ssh_args)
        self.scp = scp
        self.scp_args = scp_args_from_ssh_args(self.ssh_args) if scp_args is None \
            else list(scp_args)
        self.local_connection_file = local_connection_file
        self.remote_connection_file = remote_connection_file

    @classmethod
    def for_cluster(cls, cluster, n, first_id, ssh_hosts=None, ssh="ssh", ssh_args=(),
                    scp="scp", scp_args=None, ssh_remote_dir=".cpar/remote",
                    engine_binary_path=None, python=None):
        if not ssh_hosts:
            raise ValueError("the ssh engine launcher needs ssh_hosts={'host': count, ...}")
        hosts = parse_hosts(ssh_hosts)
        per_engine = [h for h, k in hosts.items() for _ in range(k)]
        if n is not None and n != len(per_engine):
            raise ValueError(f"n={n} but ssh_hosts has {len(per_engine)} engines: "
                             f"{hosts}")
        if isinstance(ssh_args, str):
            ssh_args = shlex.split(ssh_args)
        if isinstance(scp_args, str):
            scp_args = shlex.split(scp_args)
        cid = cluster.cluster_id or "default"
        remote_cf = f"{ssh_remote_dir.rstrip('/')}/{cluster.profile}-{cid}-connection.json"
        la = cls(tie_to_parent=not cluster.daemonize, ssh=ssh, ssh_args=ssh_args, scp=scp,
                 scp_args=scp_args, local_connection_file=cluster.connection_file,
                 remote_connection_file=remote_cf)
        binary = engine_binary_path or engine_binary()
        for i, host in enumerate(per_engine, start=first_id):
            argv = engine_argv(remote_cf, None, [*cluster.engine_args, "--id", str(i)],
                               python=python, binary=binary)
            remote = "echo CPAR_REMOTE_PID=$$; exec " + shlex.join(argv)
            la.argvs.append([ssh, *la.ssh_args, host, remote])
            la.log_paths.append(cluster._log(f"engine-{i}"))
            la.hosts.append(host)
        return la

    def _run(self, argv, timeout=60):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()}")
        return r

    def copy_connection_file(self):
        d = os.path.dirname(self.remote_connection_file) or "."
        for host in dict.fromkeys(self.hosts):
            self._run([self.ssh, *self.ssh_args, host,
                       f"umask 077 && mkdir -p {shlex.quote(d)}"])
            # -p keeps the local file's mode (0600); chmod makes sure of it.
            self._run([self.scp, "-p", *self.scp_args, self.local_connection_file,
                       f"{host}:{self.remote_connection_file}"])
            self._run([self.ssh, *self.ssh_args, host,
                       f"chmod 600 {shlex.quote(self.remote_connection_file)}"])

    def start(self):
        self.copy_connection_file()
        super().start()

    def remote_pids(self):
        """{host: [pid, ...]} of the remote engines, from the lines they printed."""
        out = {}
        for host, log in zip(self.hosts, self.log_paths):
            try:
                with open(log, errors="replace") as f:
                    m = _PID_LINE.findall(f.read())
            except OSError:
                continue
            if m:
                out.setdefault(host, []).append(int(m[-1]))
        return out

    def kill_remote(self, sig=signal.SIGTERM):
        for host, pids in self.remote_pids().items():
            try:
                subprocess.run([self.ssh, *self.ssh_args, host,
                                f"kill -{int(sig)} {' '.join(map(str, pids))} 2>/dev/null"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass

    def signal(self, sig):
        """Signals the remote engines (through ``ssh host kill``)."""
        self.kill_remote(sig)

    def stop(self, timeout=5.0):
        if self.running:
            self.kill_remote(signal.SIGTERM)
            if not self.wait(timeout):
                self.kill_remote(signal.SIGKILL)
        # then the local ssh clients, if any is left
        LocalProcessLauncher.signal(self, signal.SIGTERM)
        if not self.wait(2.0):
            LocalProcessLauncher.signal(self, signal.SIGKILL)
            self.wait(5.0)

    def cleanup(self):
        """Removes the copied connection file from the hosts."""
        for host in dict.fromkeys(self.hosts):
            try:
                subprocess.run([self.ssh, *self.ssh_args, host,
                                f"rm -f {shlex.quote(self.remote_connection_file)}"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass

    def get_output(self):
        return "\n".join(f"--- {host}: {log}\n{tail(log)}"
                         for host, log in zip(self.hosts, self.log_paths))

    def to_dict(self):
        d = super().to_dict()
        d.update(hosts=self.hosts, ssh=self.ssh, ssh_args=self.ssh_args, scp=self.scp,
                 scp_args=self.scp_args, local_connection_file=self.local_connection_file,
                 remote_connection_file=self.remote_connection_file,
                 remote_pids=self.remote_pids())
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(log_paths=d.get("log_paths", ()), pids=d.get("pids", ()),
                   hosts=d.get("hosts", ()), ssh=d.get("ssh", "ssh"),
                   ssh_args=d.get("ssh_args", ()), scp=d.get("scp", "scp"),
                   scp_args=d.get("scp_args"),
                   local_connection_file=d.get("local_connection_file"),
                   remote_connection_file=d.get("remote_connection_file"))


class SSHControllerLauncher(LocalProcessLauncher):
    """``--controller ssh``: the controller on ``ssh_host``, under ``ssh``; its
    connection file (written there, under ``ssh_remote_dir``) is copied back here.

    The controller must bind an address this machine reaches: pass ``--ip``/``--location``
    (and ``--curve``) in the cluster's ``controller_args`` unless the host is this one.
    """

    name = "ssh_controller"

    def __init__(self, argvs=(), log_paths=(), env=None, tie_to_parent=True, pids=(),
                 host=None, ssh="ssh", ssh_args=(), scp="scp", scp_args=None,
                 remote_connection_file=None):
        super().__init__(argvs, log_paths, env, tie_to_parent, pids)
        self.host = host
        self.ssh = ssh
        self.ssh_args = list(ssh_args)
        self.scp = scp
        self.scp_args = scp_args_from_ssh_args(self.ssh_args) if scp_args is None \
            else list(scp_args)
        self.remote_connection_file = remote_connection_file
        self._next_try = 0.0

    @classmethod
    def for_cluster(cls, cluster, log, extra, ssh_host=None, ssh="ssh", ssh_args=(),
                    scp="scp", scp_args=None, ssh_remote_dir=".cpar/remote", python=None):
        if not ssh_host:
            raise ValueError("the ssh controller launcher needs ssh_host=")
        if isinstance(ssh_args, str):
            ssh_args = shlex.split(ssh_args)
        if isinstance(scp_args, str):
            scp_args = shlex.split(scp_args)
        import sys

        remote_dir = ssh_remote_dir.rstrip("/")
        remote_cf = (f"{remote_dir}/profile_{cluster.profile}/security/"
                     f"{os.path.basename(cluster.connection_file)}")
        cpar_dir = shlex.quote(remote_dir) if remote_dir.startswith("/") \
            else '"$HOME"/' + shlex.quote(remote_dir)
        argv = [python or sys.executable, "-m", "cpar", "controller", "--profile",
                cluster.profile, "--cluster-id", cluster.cluster_id, "--log", "/dev/stderr",
                *extra]
        remote = (f"echo CPAR_REMOTE_PID=$$; CPAR_DIR={cpar_dir} exec " + shlex.join(argv))
        return cls([[ssh, *ssh_args, ssh_host, remote]], [log],
                   tie_to_parent=not cluster.daemonize, host=ssh_host, ssh=ssh,
                   ssh_args=ssh_args, scp=scp, scp_args=scp_args,
                   remote_connection_file=remote_cf)

    def remote_pid(self):
        try:
            with open(self.log_paths[0], errors="replace") as f:
                m = _PID_LINE.findall(f.read())
        except (OSError, IndexError):
            return None
        return int(m[-1]) if m else None

    def connection_ready(self, local_path):
        """Copies the controller's connection file here once it has written it."""
        import tempfile
        import time

        from .. import connfile

        pid = self.remote_pid()
        if pid is None or time.monotonic() < self._next_try:
            return False
        self._next_try = time.monotonic() + 0.25
        with tempfile.TemporaryDirectory() as tmp:
            dest = os.path.join(tmp, "connection.json")
            r = subprocess.run([self.scp, *self.scp_args,
                                f"{self.host}:{self.remote_connection_file}", dest],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            if r.returncode != 0:
                return False
            info = connfile.read_if_written(dest)
        if info is None or info["controller_pid"] != pid:
            return False
        connfile.write(local_path, info)
        return True

    def stop(self, timeout=5.0):
        pid = self.remote_pid()
        if pid is not None and self.running:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                subprocess.run([self.ssh, *self.ssh_args, self.host,
                                f"kill -{int(sig)} {pid} 2>/dev/null"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                if self.wait(timeout):
                    break
        super().stop(2.0)

    def cleanup(self):
        """Removes the controller's connection file from its host."""
        try:
            subprocess.run([self.ssh, *self.ssh_args, self.host,
                            f"rm -f {shlex.quote(self.remote_connection_file)}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass

    def to_dict(self):
        d = super().to_dict()
        d.update(host=self.host, ssh=self.ssh, ssh_args=self.ssh_args, scp=self.scp,
                 scp_args=self.scp_args, remote_connection_file=self.remote_connection_file,
                 remote_pid=self.remote_pid())
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(log_paths=d.get("log_paths", ()), pids=d.get("pids", ()),
                   host=d.get("host"), ssh=d.get("ssh", "ssh"), ssh_args=d.get("ssh_args", ()),
                   scp=d.get("scp", "scp"), scp_args=d.get("scp_args"),
                   remote_connection_file=d.get("remote_connection_file"))
