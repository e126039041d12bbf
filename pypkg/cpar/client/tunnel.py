"""SSH tunnels for a client that cannot reach the controller directly.

``Client(url_file, sshserver='user@host[:port]', sshkey=path, password=None)`` starts an
OpenSSH ``ssh -N -L 127.0.0.1:LOCAL:HOST:PORT`` for the controller's client endpoint and
connects to the local end; the controller's address (often ``127.0.0.1``) is resolved on
the login host. The ssh process is stopped when the client closes (or this process exits).

Extra options for ``ssh`` (e.g. ``-o StrictHostKeyChecking=accept-new`` or ``-F config``)
come from ``$CPAR_SSH_ARGS`` (one string, split as a shell would) or ``~/.ssh/config``.
"""

import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref

from .. import error


class SSHTunnelError(error.ControllerUnreachable):
    """The ssh tunnel to the controller could not be set up; the message says why."""


def parse_server(server):
    """``(destination, port)`` of ``'[user@]host[:port]'``; port None when absent."""
    if not isinstance(server, str) or not server.strip():
        raise ValueError(f"sshserver must be 'user@host[:port]', not {server!r}")
    server = server.strip()
    if server.startswith("ssh://"):
        server = server[len("ssh://"):]
    user, at, hostport = server.rpartition("@")
    if at and not user:
        raise ValueError(f"sshserver {server!r}: empty user name before '@'")
    host, port = hostport, None
    if hostport.startswith("["):  # [ipv6]:port
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"sshserver {server!r}: unclosed '[' in the host")
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"sshserver {server!r}: text after ']' is not ':port'")
            port = rest[1:]
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    if not host or any(c.isspace() for c in host) or host.startswith("-"):
        raise ValueError(f"sshserver {server!r}: bad host name {host!r}")
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sshserver {server!r}: the port must be 1..65535, not {port!r}")
        port = int(port)
    return (f"{user}@{host}" if at else host), port


def split_tcp_url(url):
    """``(host, port)`` of ``tcp://host:port``; a wildcard host is the login host's
    loopback (``127.0.0.1``). ``(path, None)`` for ``ipc://path`` (a unix socket on the
    login host, which ssh forwards too)."""
    if isinstance(url, str) and url.startswith("ipc://") and len(url) > len("ipc://"):
        return url[len("ipc://"):], None
    if not isinstance(url, str) or not url.startswith("tcp://"):
        raise ValueError(f"only tcp:// and ipc:// controller URLs can be tunnelled over ssh, "
                         f"not {url!r}")
    host, sep, port = url[len("tcp://"):].rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"controller URL {url!r} has no port")
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return host, int(port)


def _free_local_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


_ASKPASS = "#!/bin/sh\nprintf '%s\\n' \"$CPAR_SSH_PASSWORD\"\n"


def _stop(proc, tmpdir):
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except OSError:
            pass
    for f in (proc.stderr,):
        try:
            f.close()
        except Exception:  # noqa: BLE001 - closing a pipe at exit
            pass
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


class SSHTunnel:
    """One ``ssh -N -L`` local forward: ``127.0.0.1:local_port`` here to
    ``remote_host:remote_port`` as seen from ``server``. ``close()`` stops it."""

    def __init__(self, server, remote_host, remote_port, keyfile=None, password=None,
                 timeout=10.0):
        self.server = server
        self.destination, self.ssh_port = parse_server(server)
        self.remote_host = remote_host
        self.remote_port = None if remote_port is None else int(remote_port)
        if keyfile is not None:
            keyfile = os.path.expanduser(os.fspath(keyfile))
            if not os.path.isfile(keyfile):
                raise FileNotFoundError(f"sshkey {keyfile!r}: no such file")
        self.keyfile = keyfile
        self.password = password
        self.timeout = float(timeout or 10.0)
        self.local_port = None
        self.proc = None
        self._tmpdir = None
        self._finalizer = None
        self._start()

    @property
    def remote(self):
        """The forward's far end as ssh's -L writes it: host:port, or a socket's path."""
        if self.remote_port is None:
            return self.remote_host
        host = f"[{self.remote_host}]" if ":" in self.remote_host else self.remote_host
        return f"{host}:{self.remote_port}"

    @property
    def url(self):
        """The local end, for the client to connect to."""
        return f"tcp://127.0.0.1:{self.local_port}"

    def argv(self, local_port):
        ssh = shutil.which("ssh")
        if ssh is None:
            raise SSHTunnelError("cannot tunnel to the controller: no `ssh` program on PATH "
                                 "(install OpenSSH's client)")
        argv = [ssh, "-N", "-T", "-L", f"127.0.0.1:{local_port}:{self.remote}",
                "-o", "ExitOnForwardFailure=yes",
                "-o", f"ConnectTimeout={max(1, int(min(self.timeout, 10)))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
                # ssh's "open failed" messages tell a dead controller from a slow one
                "-o", "LogLevel=INFO"]
        if self.password is None:
            argv += ["-o", "BatchMode=yes"]
        else:
            argv += ["-o", "NumberOfPasswordPrompts=1"]
        if self.ssh_port is not None:
            argv += ["-p", str(self.ssh_port)]
        if self.keyfile is not None:
            argv += ["-i", self.keyfile, "-o", "IdentitiesOnly=yes"]
        extra = os.environ.get("CPAR_SSH_ARGS", "")
        try:
            argv += shlex.split(extra)
        except ValueError as e:
            raise ValueError(f"$CPAR_SSH_ARGS {extra!r} cannot be split: {e}") from None
        return argv + ["--", self.destination]

    def _env(self):
        env = dict(os.environ)
        if self.password is None:
            return env
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="cpar-askpass-")
            script = os.path.join(self._tmpdir, "askpass")
            with open(script, "w") as f:
                f.write(_ASKPASS)
            os.chmod(script, stat.S_IRWXU)
        env.update(SSH_ASKPASS=os.path.join(self._tmpdir, "askpass"),
                   SSH_ASKPASS_REQUIRE="force", CPAR_SSH_PASSWORD=str(self.password))
        env.setdefault("DISPLAY", "cpar:0")
        return env

    def _start(self):
        deadline = time.monotonic() + self.timeout
        for attempt in range(3):
            port = _free_local_port()
            argv = self.argv(port)
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env=self._env(), start_new_session=True)
            except OSError as e:
                self._cleanup_tmp()
                raise SSHTunnelError(f"cannot start ssh for the tunnel to {self.server}: "
                                     f"{e}") from None
            self.proc, self.local_port = proc, port
            self._finalizer = weakref.finalize(self, _stop, proc, self._tmpdir)
            while proc.poll() is None and time.monotonic() < deadline:
                if _port_open(port):
                    self._drain_stderr()
                    return
                time.sleep(0.02)
            if proc.poll() is None:  # still connecting when our time is up
                self.close()
                raise SSHTunnelError(
                    f"the ssh tunnel through {self.server} to the controller at "
                    f"{self.remote} was not up within "
                    f"{self.timeout:g} s (is {self.server} reachable?)")
            msg = proc.stderr.read().decode(errors="replace").strip()
            self.close()
            if "forward" in msg.lower() and "port" in msg.lower() and attempt < 2:
                continue  # our free local port was taken meanwhile: another one
            raise SSHTunnelError(
                f"ssh to {self.server} failed (exit status {proc.returncode}), so the "
                f"controller at {self.remote} cannot be reached "
                f"through it: {msg or 'no message from ssh'}")

    def _drain_stderr(self):
        """Keeps reading ssh's messages (so a full pipe never blocks it); the last ones are
        kept for error messages."""
        self.messages = []
        stream = self.proc.stderr

        def reader():
            try:
                for line in stream:
                    self.messages = (self.messages + [line.decode(errors="replace")])[-20:]
            except (OSError, ValueError):
                pass

        threading.Thread(target=reader, name="cpar-ssh-tunnel-stderr", daemon=True).start()

    def _cleanup_tmp(self):
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def failure(self):
        """Why the tunnel does not carry the connection (ssh exited, or the login host
        could not open the forwarded connection to the controller), else ''."""
        if self.proc is not None and self.proc.poll() is not None:
            return f"ssh exited (status {self.proc.returncode})"
        for line in getattr(self, "messages", ()):
            if "open failed" in line or "connect failed" in line:
                return f"{self.server} could not connect to {self.remote}: {line.strip()}"
        return ""

    def check(self, wait=0.0):
        """Raises SSHTunnelError (a ControllerUnreachable) when the tunnel has failed,
        waiting up to ``wait`` s for ssh to say so: a connection dropped at once (for
        instance by the login host, when nothing listens behind the tunnel) looks like a
        failed handshake to the client."""
        deadline = time.monotonic() + wait
        while not self.failure and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.failure:
            raise SSHTunnelError(f"no connection to the controller through the ssh tunnel: "
                                 f"{self.failure}")

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        """Stops the ssh process (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._tmpdir = None

    def __repr__(self):
        state = "up" if self.alive else "closed"
        return (f"<SSHTunnel 127.0.0.1:{self.local_port} -> {self.server} -> "
                f"{self.remote} {state}>")


def open_tunnel(url, sshserver, sshkey=None, password=None, timeout=10.0, paramiko=None):
    """An :class:`SSHTunnel` to the controller URL ``url`` through ``sshserver``."""
    if paramiko:
        raise ValueError("paramiko=True is not supported: cpar tunnels with OpenSSH's "
                         "`ssh` program (leave paramiko unset)")
    host, port = split_tcp_url(url)
    return SSHTunnel(sshserver, host, port, keyfile=sshkey, password=password,
                     timeout=timeout)
