"""Shared memory never hands over bytes their owner may have reused.

A receiver reads the sender's memory with process_vm_readv; the sender guards pinned bytes
with a seal it breaks before it lets them go (docs/protocol.md, "Shared memory"). These
tests make the owner release and reuse the bytes while the reader is held back (SIGSTOP),
in both directions, and assert the right bytes or a clear error, never other bytes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

import cpar

# A client that sends an 80 KB numpy.save by descriptor, closes, then reuses the array's
# memory (as a freed buffer would be) while the engine has not read it yet.
SENDER = textwrap.dedent(
    """
    import sys
    import time
    import numpy as np
    import cpar

    rc = cpar.Client(sys.argv[1])
    rc.wait_for_engines(1, timeout=30)
    rc[0].apply_sync(lambda: 0)
    a = np.arange(10000, dtype=np.int64)  # 80 KB: at least 64 KiB, sent by descriptor
    print("ready", flush=True)
    sys.stdin.readline()
    rc[0].apply_async(np.save, sys.argv[2], a)
    time.sleep(0.5)  # the request is out, waiting in the stopped engine's socket
    rc.close()
    a.view(np.uint8)[:] = ord("Z")  # the memory is reused: ZZZZ...
    print("closed", flush=True)
    sys.stdin.readline()
    """
)

# A client whose I/O thread is stopped while the engine's reply waits for it; the engine's
# pin runs out and the engine overwrites the array it returned.
RECEIVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import cpar

    rc = cpar.Client(sys.argv[1])
    rc.wait_for_engines(1, timeout=30)
    v = rc[0]
    v.execute("import time, numpy as np; g = np.arange(20000, dtype=np.int64)", block=True)
    print("ready", flush=True)
    sys.stdin.readline()
    ar = v.apply_async(lambda: (time.sleep(1.5), g)[1])  # 160 KB back by descriptor
    print("sent", flush=True)
    try:
        r = ar.get(timeout=60)
        same = np.array_equal(r, np.arange(20000, dtype=np.int64))
        print("got", "equal" if same else "WRONG", flush=True)
    except Exception as exc:
        print("error", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
    rc.close()
    """
)


def _line(proc):
    line = proc.stdout.readline()
    assert line, f"the client ended: {proc.stderr.read()}"
    return line.strip()


def _wait_for_log(path, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def one_engine(monkeypatch):
    monkeypatch.setenv("CPAR_SHM", "1")
    monkeypatch.setenv("CPAR_SHM_PIN_TIMEOUT", "0.5")  # the engine's reply pins, in seconds
    # The engine or client is held stopped for a few seconds: a generous heartbeat timeout
    # keeps a loaded machine from declaring the engine dead meanwhile.
    c = cpar.Cluster(n=1, cluster_id="seal-" + uuid.uuid4().hex[:8], hb_timeout_ms=15000)
    c.start_cluster_sync()
    try:
        yield c
    finally:
        c.stop_cluster_sync()


def _client(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    if proc.poll() is None:
        try:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_request_released_before_the_engine_reads(one_engine, tmp_path):
    """The engine is stopped; the client sends by descriptor, closes and reuses the bytes;
    the engine resumes: it must not save the reused bytes (6c5ea85 saved ZZZZ...)."""
    c = one_engine
    out = tmp_path / "saved.npy"
    (epid,) = c.engines.pids
    sender = _client(SENDER, c.connection_file, str(out))
    try:
        assert _line(sender) == "ready"
        os.kill(epid, signal.SIGSTOP)
        try:
            sender.stdin.write("\n")
            sender.stdin.flush()
            assert _line(sender) == "closed"
        finally:
            os.kill(epid, signal.SIGCONT)
        with cpar.Client(c.connection_file) as rc:
            rc.wait_for_engines(1, timeout=30)
            # Runs after the save (one engine, tasks in order): the engine lives on.
            assert rc[0].apply_sync(lambda: 6 * 7) == 42
        # The engine could not read before the client let go (it was stopped): the task
        # failed with the reason, nothing was saved.
        assert not out.exists(), np.load(out)[:4]
        log = c._log("engine-0")
        assert _wait_for_log(log, "released the shared-memory data before it was read"), \
            open(log, errors="replace").read()[-3000:]
    finally:
        _finish(sender)


def test_reply_released_before_the_client_reads(one_engine):
    """The client is stopped while the engine's reply waits for it; the engine's pin runs
    out and it overwrites the array it returned; the client resumes: a clear error, never
    the overwritten values."""
    c = one_engine
    receiver = _client(RECEIVER, c.connection_file)
    try:
        assert _line(receiver) == "ready"
        receiver.stdin.write("\n")
        receiver.stdin.flush()
        assert _line(receiver) == "sent"
        time.sleep(0.3)  # the request leaves the client's I/O thread (the task sleeps 1.5 s)
        os.kill(receiver.pid, signal.SIGSTOP)
        try:
            assert _wait_for_log(c._log("engine-0"), "never released by their client"), \
                "the engine did not drop the reply's pin"
            with cpar.Client(c.connection_file) as rc:
                rc.wait_for_engines(1, timeout=30)
                rc[0].execute("g[:] = -1", block=True)  # the reply's bytes are reused
        finally:
            os.kill(receiver.pid, signal.SIGCONT)
        result = _line(receiver)
        assert result.startswith("error SharedMemoryError"), result
        assert "released the shared-memory data before it was read" in result, result
    finally:
        _finish(receiver)
