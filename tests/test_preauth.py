"""Memory before authentication: a peer that has not authenticated cannot make the
controller hold more than a bounded amount, whatever it sends and however many connections
it opens, and the real clients and engines keep working.

- A local cluster binds ipc:// sockets in a 0700 directory: other users cannot connect.
- Over TCP without CURVE, CPAR_MAX_MESSAGE bounds a frame: a peer announcing more is
  disconnected before the controller stores its bytes.
- Over TCP with CURVE, a peer without an allowed key never gets past the handshake; but
  libzmq reads each handshake frame whole before judging it, so CPAR_MAX_MESSAGE is what
  bounds a huge frame sent in place of the handshake there too.

The attackers here are raw TCP sockets speaking just enough ZMTP 3.0."""

import os
import socket
import stat
import struct

import pytest

import cpar
from cpar import paths

MiB = 1 << 20
LIMIT = 64 * MiB
GREETING_NULL = (b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0")
                 + b"\x00" + b"\0" * 31)
GREETING_CURVE = GREETING_NULL.replace(b"NULL".ljust(20, b"\0"), b"CURVE".ljust(20, b"\0"))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def ready_command():
    prop = b"Socket-Type"
    body = b"\x05READY" + bytes([len(prop)]) + prop + struct.pack(">I", 6) + b"DEALER"
    return b"\x04" + bytes([len(body)]) + body


def tcp_endpoint(url):
    assert url.startswith("tcp://"), url
    host, _, port = url[len("tcp://"):].rpartition(":")
    return host.strip("[]"), int(port)


def stream(addr, greeting, handshake, header, total, chunk, on_chunk):
    """Connects, greets, sends `handshake` then `header` and up to `total` bytes; returns
    how many were sent before the controller closed the connection."""
    s = socket.create_connection(addr, timeout=30)
    sent = 0
    try:
        s.sendall(greeting + handshake + header)
        block = b"\xab" * chunk
        while sent < total:
            s.sendall(block)
            sent += chunk
            on_chunk()
    except OSError:  # reset or broken pipe: the controller dropped us
        pass
    finally:
        s.close()
    return sent


@pytest.fixture
def tcp_cluster(monkeypatch):
    monkeypatch.setenv("CPAR_MAX_MESSAGE", str(LIMIT))
    c = cpar.Cluster(n=2, cluster_id="preauth", controller_args=["--ip", "127.0.0.1"])
    rc = c.start_and_connect_sync()
    try:
        yield c, rc
    finally:
        rc.close()
        c.stop_cluster_sync()


def test_unfinished_huge_frames_and_garbage_leave_memory_bounded(tcp_cluster):
    c, rc = tcp_cluster
    info = paths.read_json(c.connection_file)
    pid = info["controller_pid"]
    dview = rc[:]
    dview.block = True
    dview["canary"] = 7
    base = rss(pid)
    peak = [base]

    def sample():
        peak[0] = max(peak[0], rss(pid))

    big_frame = b"\x03" + struct.pack(">Q", 400 * MiB)  # long frame, MORE: never finished
    for which in ("client_url", "engine_url"):
        addr = tcp_endpoint(info[which])
        # One peer streaming 400 MiB of one frame, then several at once.
        sent = stream(addr, GREETING_NULL, ready_command(), big_frame, 400 * MiB, 4 * MiB,
                      sample)
        assert sent < 400 * MiB, "the controller read a 400 MiB unauthenticated frame"
        socks = []
        for _ in range(16):
            s = socket.create_connection(addr, timeout=30)
            socks.append(s)
            try:
                s.sendall(GREETING_NULL + ready_command() + big_frame + b"\xcd" * MiB)
            except OSError:  # already dropped
                pass
        sample()
        for s in socks:
            s.close()
        # Truncated greetings, garbage instead of a handshake, a frame that lies.
        for junk in (b"\xff\0\0", os.urandom(64 * 1024), GREETING_NULL + os.urandom(4096),
                     GREETING_NULL + ready_command() + b"\x00\x05abc",
                     GREETING_NULL + ready_command() + b"\x02" + b"\xff" * 8):
            s = socket.create_connection(addr, timeout=30)
            try:
                s.sendall(junk)
            except OSError:
                pass
            s.close()
        sample()
        # The real client and engines still work, during and after.
        assert dview.pull("canary") == [7, 7]
    sample()
    assert peak[0] - base < 64 * MiB, (base, peak[0])
    assert len(dview.apply_sync(os.getpid)) == 2
    with cpar.Client(c.connection_file, timeout=10) as fresh:
        assert fresh[:].apply_sync(lambda: 1) == [1, 1]
    log = open(c._log("controller")).read()
    assert f"largest frame {LIMIT}" in log
    assert info["max_message"] == LIMIT  # for clients and engines to check before sending


def test_curve_handshake_comes_before_memory(monkeypatch):
    monkeypatch.setenv("CPAR_MAX_MESSAGE", str(LIMIT))
    c = cpar.Cluster(n=1, cluster_id="preauth-curve",
                     controller_args=["--ip", "127.0.0.1", "--curve"])
    rc = c.start_and_connect_sync()
    try:
        info = paths.read_json(c.connection_file)
        pid = info["controller_pid"]
        base = rss(pid)
        peak = [base]

        def sample():
            peak[0] = max(peak[0], rss(pid))

        big_frame = b"\x03" + struct.pack(">Q", 400 * MiB)
        addr = tcp_endpoint(info["client_url"])
        # No CURVE handshake at all, then a NULL greeting to a CURVE server.
        for greeting in (GREETING_CURVE, GREETING_NULL):
            hs = ready_command() if greeting is GREETING_NULL else b""
            sent = stream(addr, greeting, hs, big_frame, 400 * MiB, 4 * MiB, sample)
            assert sent < 400 * MiB
        assert peak[0] - base < 64 * MiB, (base, peak[0])
        assert rc[:].apply_sync(lambda: 2) == [2]
        assert info["max_message"] == LIMIT
    finally:
        rc.close()
        c.stop_cluster_sync()


def test_local_cluster_sockets_are_private(cluster):
    info = paths.read_json(cluster.connection_file)
    for which in ("client_url", "engine_url"):
        url = info[which]
        assert url.startswith("ipc://"), url
        d = os.path.dirname(url[len("ipc://"):])
        st = os.stat(d)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    if os.geteuid() != 0:
        return  # no other uid to try from; the mode above is what keeps others out
    # Another user cannot even reach the socket; this one can (so the probe is sound).
    path = info["client_url"][len("ipc://"):]
    assert probe_connect(path, 65534) == "denied"
    assert probe_connect(path, None) == "connected"


def probe_connect(path, uid):
    """Connects to the unix socket at path from a child process running as uid (None: as
    we are); returns "connected", "denied" or the error's name."""
    pid = os.fork()
    if pid == 0:  # the child: no Python-level clean-up, just the answer as an exit code
        code = 1
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            code = 0
        except PermissionError:
            code = 13
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {0: "connected", 13: "denied"}.get(os.waitstatus_to_exitcode(status), "error")
