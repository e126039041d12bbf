"""Faults a user meets (issue 13, item 9), each on a real cluster: what cannot work fails
with an error naming what was wrong, and the cluster keeps working afterwards.

Destructive faults (a killed controller, a stuck engine, no engines, an output flood)
run on private clusters, stopped in ``finally``.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

import cpar
from cpar import error
from cpar._proc import pid_alive

pd = pytest.importorskip("pandas")  # a test extra (pyproject.toml): installed by make


def _private(n, **kw):
    return cpar.Cluster(n=n, cluster_id=f"faults-{uuid.uuid4().hex[:8]}", **kw)


def _works(rc, ids=None):
    """The cluster still answers on every engine (or ``ids``)."""
    ids = rc.ids if ids is None else ids
    assert rc[ids].apply_sync(lambda x: x + 1, 1) == [2] * len(ids)


def _wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


# -- Ctrl-C in a plain ar.get() -----------------------------------------------------------

_CTRL_C_CHILD = textwrap.dedent("""
    import sys, time
    import cpar
    rc = cpar.Client(sys.argv[1])
    rc.wait_for_engines(1, timeout=30)
    ar = rc[rc.ids[0]].apply_async(time.sleep, 600)
    try:
        print("READY", flush=True)
        ar.get()
        print("RETURNED", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        ar.abort()  # the engine's task stops too: the shared cluster stays free
    rc.close()
""")


def test_ctrl_c_in_get_returns_at_once(cluster, rc):
    child = subprocess.Popen([sys.executable, "-c", _CTRL_C_CHILD, cluster.connection_file],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        line = child.stdout.readline().strip()
        waited = time.monotonic() - t0
        assert line == "INTERRUPTED", child.stderr.read()
        # The task sleeps 600 s: an uninterruptible get() would still be waiting.
        assert waited < 10, f"KeyboardInterrupt took {waited:.1f} s"
        assert child.wait(timeout=30) == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    _works(rc)


# -- the controller SIGKILLed -----------------------------------------------------------


def test_controller_sigkilled_ends_client_calls_and_engines():
    """With the recovery grace period off (0), a dead controller ends pending calls and
    engines at once (tests/test_recovery.py has the waiting and the recovery)."""
    c = _private(2, recover_grace=0)
    try:
        rc = c.start_and_connect_sync()
        engine_pids = list(c.engines.pids)
        ar = rc[0].apply_async(time.sleep, 600)
        os.kill(c.controller.pids[0], signal.SIGKILL)
        with pytest.raises(error.ControllerUnreachable, match="lost the connection"):
            ar.get(timeout=30)
        with pytest.raises(error.ControllerUnreachable, match="is down"):
            rc[:].apply_sync(abs, -1)
        with pytest.raises(error.ControllerUnreachable):
            rc.queue_status()
        # Engines notice the dropped connection and end on their own, within the
        # heartbeat timeout (3 s) and the stop grace, not after 10 timeouts (30 s).
        _wait_until(lambda: not any(pid_alive(p) for p in engine_pids), 15,
                    f"engines {engine_pids} exit after the controller died")
        logs = c.engines.get_output()
        assert "did not come back" in logs, logs
    finally:
        c.stop_cluster_sync()


# -- a closed client --------------------------------------------------------------------


@cpar.interactive  # sent by code: engines cannot import this test module
def _wait_for_file(path):
    import os
    import time

    print("waiting", flush=True)
    while not os.path.exists(path):
        time.sleep(0.01)
    open(path + ".seen", "w").close()


def test_closed_client_and_its_pending_results(cluster, rc):
    rc2 = cpar.Client(cluster.connection_file)
    rc2.wait_for_engines(len(rc.ids), timeout=30)
    eid = rc2.ids[-1]
    view = rc2[:]
    release = os.path.join(os.environ["CPAR_DIR"], f"release-{uuid.uuid4().hex}")
    ar = rc2[eid].apply_async(_wait_for_file, release)
    _wait_until(lambda: "waiting" in ar.stdout, 30, "the request runs")
    sent = rc2._dispatcher.conn.sent
    rc2.close()
    try:
        with pytest.raises(error.ConnectionClosed, match="closed before this result arrived"):
            ar.get(timeout=10)
        for call in (lambda: view.apply_sync(abs, -1), lambda: rc2[:], lambda: rc2[0],
                     lambda: view.push({"a": 1}), lambda: view.scatter("a", [1, 2]),
                     lambda: rc2.queue_status(), lambda: rc2.wait_for_engines(1),
                     lambda: rc2.send_signal()):
            with pytest.raises(error.ConnectionClosed, match="closed"):
                call()
        assert rc2.ids == []
        assert rc2._dispatcher.conn.sent == sent
    finally:
        open(release, "w").close()  # the closed client's task ends on its engine
    _wait_until(lambda: rc.queue_status(eid)["queue"] == 0, 30, "the task ended")
    assert os.path.exists(release + ".seen")  # it ran there until released
    _works(rc)
    os.unlink(release)
    os.unlink(release + ".seen")


# -- unpicklable arguments --------------------------------------------------------------


def _gen():
    yield 1


@pytest.mark.parametrize("call, names", [
    (lambda v: v.apply_sync(lambda x: 1, threading.Lock()), "argument 0"),
    (lambda v: v.apply_sync(lambda x, y: 1, 1, _gen()), "argument 1"),
    (lambda v: v.apply_sync(lambda fh=None: 1, fh=open(os.devnull)), "keyword argument 'fh'"),
    (lambda v: v.push({"ok": 1, "fh": open(os.devnull)}), "push: ns['fh']"),
    (lambda v: v.map_sync(lambda x: x, [1, threading.Lock()]), "map(<lambda>)"),
    (lambda v: v.client.load_balanced_view().apply_sync(abs, _gen()), "argument 0"),
], ids=["lock", "generator", "open-file", "push", "map", "lbview"])
def test_unpicklable_argument_is_named_and_nothing_sent(rc, dview, call, names):
    conn = rc._dispatcher.conn
    before = rc.queue_status()
    sent = conn.sent
    with pytest.raises(error.SerializationError) as info:
        call(dview)
    msg = str(info.value)
    assert names in msg and "cannot pickle" in msg and "nothing was sent" in msg, msg
    assert isinstance(info.value, TypeError)
    assert conn.sent == sent  # not one message left the client
    assert rc.queue_status() == before
    _works(rc)


# -- array kinds, pandas, bytes, memoryview ---------------------------------------------


def _kinds():
    big = np.arange(200_000, dtype=np.float64).reshape(1000, 200)
    return {
        "noncontig": big[:, ::2],
        "noncontig_small": np.arange(100.0).reshape(10, 10)[::2, ::3],
        "fortran": np.asfortranarray(big),
        "fortran_small": np.asfortranarray(np.arange(12).reshape(3, 4)),
        "object": np.array([1, "a", None, (1, 2), 2.5], dtype=object),
        "structured": np.array([(i, i / 3, str(i)) for i in range(20_000)],
                               dtype=[("a", "<i4"), ("b", ">f8"), ("c", "U6")]),
        "zero_d": np.array(3.5),
        "bigendian": np.arange(100_000, dtype=">i8"),
        "bigendian_small": np.arange(10, dtype=">f4"),
        "frame": pd.DataFrame({"a": np.arange(50_000), "b": ["s"] * 50_000,
                               "c": np.linspace(0, 1, 50_000)}),
        "series": pd.Series(np.arange(10.0), index=list("abcdefghij"), name="s"),
        "bytes": bytes(range(256)) * 400,
        "bytes_small": b"abc",
        "bytearray": bytearray(b"y" * 100_000),
        "memoryview": memoryview(bytes(range(256)) * 400),
        "memoryview_2d": memoryview(np.arange(200_000.0).reshape(400, 500)),
        "memoryview_small": memoryview(b"xyz"),
    }


def _assert_same(got, want):
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            assert np.array_equal(got, want)
        assert got.flags.f_contiguous == want.flags.f_contiguous or want.ndim < 2 \
            or not (want.flags.c_contiguous or want.flags.f_contiguous)
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want)
    elif isinstance(want, memoryview):
        assert (got.format, got.shape) == (want.format, want.shape)
        assert got.tobytes() == want.tobytes()
    else:
        assert got == want


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_values_and_dtypes_survive_every_path(rc, dview, kind):
    value = _kinds()[kind]
    e0 = rc.ids[0]
    one = rc[e0]
    one.block = True
    one.push({"v": value})
    _assert_same(one.pull("v"), value)
    _assert_same(one.apply(lambda x: x, value), value)
    # What the engine sees: the same type and dtype there too.
    seen = one.execute("seen = (type(v).__name__, str(getattr(v, 'dtype', None)))")
    seen = one.pull("seen")
    assert seen == (type(value).__name__, str(getattr(value, "dtype", None)))
    if kind == "zero_d":
        with pytest.raises(TypeError, match="0-d"):
            dview.scatter("part", value)
    elif kind not in ("memoryview_2d",):
        dview.scatter("part", value)
        _assert_same(dview.gather("part"), np.ascontiguousarray(value)
                     if kind.startswith(("fortran", "noncontig")) else value)
    _works(rc)


# -- scatter edge cases, empty targets ----------------------------------------------------


def test_scatter_of_what_cannot_be_split(rc, dview):
    for value, match in ((5, "not int"), ({"x": 1, "y": 2}, "cannot split a dict"),
                         ({1, 2}, "cannot split a set"), (np.array(1), "0-d")):
        with pytest.raises(TypeError, match=match):
            dview.scatter("a", value)
    for call in (lambda: rc[[]].scatter("a", [1, 2], block=True),
                 lambda: rc[[]].map_sync(abs, [1, 2])):
        with pytest.raises(ValueError, match="targets are empty"):
            call()
    dview.scatter("a", [])
    assert dview["a"] == [[]] * len(rc.ids)
    assert dview.gather("a") == []
    dview.scatter("a", [7])
    assert dview.gather("a") == [7]
    _works(rc)


# -- no engines ---------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_no_engines_registered_is_a_clear_error():
    c = _private(0)
    try:
        c.start_cluster_sync()
        rc = c.connect_client_sync()
        assert rc.ids == []
        lv = rc.load_balanced_view()
        for call in (lambda: rc[:], lambda: rc[0], lambda: rc[-1],
                     lambda: rc.direct_view().apply_sync(abs, -1),
                     lambda: rc.direct_view().map_sync(abs, [1, 2]),
                     lambda: rc.direct_view().scatter("a", [1]),
                     lambda: lv.apply_sync(abs, -1), lambda: lv.map_sync(abs, [1, 2])):
            with pytest.raises((error.NoEnginesRegistered, error.NoSuchEngine)):
                call()
        assert rc.queue_status() == {"unassigned": 0}  # nothing was sent
        # Without blocking, a task queues until an engine registers, and then runs.
        ar = lv.apply_async(abs, -3)
        c.start_engines_sync(1)
        assert ar.get(timeout=60) == 3
    finally:
        c.stop_cluster_sync()


# -- an engine printing without end ------------------------------------------------------


def _peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@cpar.interactive
def _flood(n):
    for i in range(n):
        print("line", i)
    return n


def test_output_flood_keeps_client_and_controller_memory_bounded():
    c = _private(1)
    try:
        rc = c.start_and_connect_sync()
        ctl = c.controller.pids[0]
        rc.max_output = 1 << 20
        rc[:].apply_sync(abs, 1)
        _reset_peak(os.getpid())
        _reset_peak(ctl)
        base_client, base_ctl = _peak_mb(os.getpid()), _peak_mb(ctl)
        n = 5_000_000  # ~64 MB of text
        ar = rc[0].apply_async(_flood, n)
        assert ar.get(timeout=120) == n
        text = ar.stdout
        assert text.startswith("line 0\nline 1\n")
        assert "output past the client's max_output of 1048576 bytes" in text
        assert len(text) < (1 << 20) + 200
        total = sum(len(f"line {i}\n") for i in range(n))
        assert ar.output_dropped == total - (1 << 20)  # the rest was counted, not kept
        grew_client = _peak_mb(os.getpid()) - base_client
        grew_ctl = _peak_mb(ctl) - base_ctl
        assert grew_client < 40, f"client grew {grew_client:.0f} MB for 64 MB of output"
        assert grew_ctl < 40, f"controller grew {grew_ctl:.0f} MB for 64 MB of output"
        _works(rc)
    finally:
        c.stop_cluster_sync()


# -- an engine stuck in C code holding the GIL --------------------------------------------


@cpar.interactive
def _stuck_in_c():
    """Deadlocks in C with the GIL held (a ctypes.PyDLL call keeps it): no signal handler
    of Python runs, so KeyboardInterrupt cannot reach it."""
    import ctypes

    libc = ctypes.PyDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER
    print("stuck", flush=True)  # the test waits for this: the request runs
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)


def test_abort_force_replaces_an_engine_stuck_in_c():
    c = _private(2)
    try:
        rc = c.start_and_connect_sync()
        old_pid = rc.engine_info[0]["pid"]
        ar = rc[0].apply_async(_stuck_in_c)
        queued = rc[0].apply_async(abs, -3)
        _wait_until(lambda: rc.queue_status(0)["queue"] == 2, 30, "both requests on 0")
        _wait_until(lambda: "stuck" in ar.stdout, 30, "the request runs")
        # abort interrupts first; the engine still holds the request after the grace
        # (the interrupt cannot reach it), so it is killed and replaced with the same id.
        outcome = ar.abort(force=True, grace=1.0)
        assert outcome == {0: "engine 0 was killed; a replacement registered as engine 0"}
        with pytest.raises(error.TaskAborted, match=r"did not stop it within 1.0 s .* killed"):
            ar.get(timeout=10)
        with pytest.raises(error.EngineError):
            queued.get(timeout=30)
        assert 0 in rc.ids and rc.engine_info[0]["pid"] != old_pid
        assert rc[0].apply_sync(os.getpid) == int(rc.engine_info[0]["pid"])
        _works(rc, [0, 1])

        # An engine no Cluster of this process launched: killed, not replaced.
        from cpar.cluster.launcher import engine_argv

        log = os.path.join(os.environ["CPAR_DIR"], f"engine-{uuid.uuid4().hex}.log")
        extra = subprocess.Popen(engine_argv(c.connection_file, log, ["--id", "7"]),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            rc.wait_for_engines(3, timeout=60)
            ar = rc[7].apply_async(_stuck_in_c)
            _wait_until(lambda: "stuck" in ar.stdout, 30, "the request runs on 7")
            outcome = ar.abort(force=True, grace=1.0)
            assert outcome == {7: "engine 7 was killed; it was not started by a Cluster of "
                                  "this process, so nothing replaced it"}
            assert extra.wait(timeout=30) == -signal.SIGKILL
            assert 7 not in rc.ids
            with pytest.raises(error.TaskAborted, match="engine 7 was killed"):
                ar.get(timeout=10)
        finally:
            if extra.poll() is None:
                extra.kill()
                extra.wait()
        _works(rc, [0, 1])
    finally:
        c.stop_cluster_sync()


def test_abort_then_close_still_stops_the_task(cluster, rc):
    rc2 = cpar.Client(cluster.connection_file)
    rc2.wait_for_engines(len(rc.ids), timeout=30)
    eid = rc2.ids[0]
    ar = rc2[eid].apply_async(time.sleep, 600)
    # Requests queued after it, still in the client's send queue when it closes.
    burst = rc2.load_balanced_view().map_async(abs, range(-3000, 0))
    ar.abort()
    burst.abort()
    rc2.close()  # right after: the ABORT must not be dropped with the connection
    _wait_until(lambda: rc.queue_status(eid)["queue"] == 0, 30, "the task aborted")
    _works(rc)


# -- frames over 2 GiB and 4 GiB ----------------------------------------------------------


@cpar.interactive
def _checksum(x):
    import numpy

    return int(x.sum(dtype=numpy.uint64)), x.nbytes, str(x.dtype)


@cpar.interactive
def _pattern(n):
    import numpy

    return numpy.arange(n, dtype=numpy.uint8)  # 0, 1, ..., 255, 0, 1, ...


def _pattern_sum(n):
    full, rest = divmod(n, 256)
    return full * (255 * 256 // 2) + rest * (rest - 1) // 2


@pytest.mark.timeout(240)
def test_frames_over_2_and_4_gib_arrive_intact():
    """One engine on this host (frames go by shared memory): a 2 GiB + 1 MiB and a
    4 GiB + 1 MiB array, each way. Checked cheaply: sums of a known pattern. One size at
    a time, freed before the next (peak ~8.5 GB)."""
    c = _private(1)
    try:
        rc = c.start_and_connect_sync()
        for n in ((2 << 30) + (1 << 20), (4 << 30) + (1 << 20)):
            a = np.arange(n, dtype=np.uint8)
            assert rc[0].apply_sync(_checksum, a) == (_pattern_sum(n), n, "uint8")
            del a
            b = rc[0].apply_sync(_pattern, n)
            assert b.nbytes == n and int(b.sum(dtype=np.uint64)) == _pattern_sum(n)
            assert b[-1] == (n - 1) % 256 and b.flags.writeable
            del b
        _works(rc)
    finally:
        c.stop_cluster_sync()


def test_request_over_the_socket_limit_is_a_clear_error(cluster):
    """Through the sockets (no shared memory) a request may carry at most CPAR_SOCKET_MAX
    bytes (4 GiB by default: past it, signing and checking outlast the heartbeat timeout);
    a larger one fails at once with an error naming the limit, nothing is sent, and the
    client goes on working. The limit is lowered here so the test stays small."""
    code = textwrap.dedent(
        """
        import sys, numpy as np, cpar
        rc = cpar.Client(sys.argv[1])
        rc.wait_for_engines(1, timeout=30)
        try:
            rc[0].apply_sync(len, np.zeros(300_000))
            print("sent")
        except ValueError as exc:
            print("refused:", exc)
        print("after:", rc[0].apply_sync(len, np.zeros(1000)))
        rc.close()
        """
    )
    env = dict(os.environ, CPAR_SHM="0", CPAR_SOCKET_MAX="1000000")
    out = subprocess.run([sys.executable, "-c", code, cluster.connection_file], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused:") and "CPAR_SOCKET_MAX" in lines[0], lines
    assert "1000000 bytes" in lines[0], lines
    assert lines[1] == "after: 1000", lines


def test_reply_over_the_socket_limit_is_a_clear_error(monkeypatch):
    """An engine whose result would go through the sockets with more than CPAR_SOCKET_MAX
    bytes answers with an error naming the limit instead; it keeps working. The limit is
    lowered (and shared memory turned off on the engine) so the test stays small."""
    monkeypatch.setenv("CPAR_SHM", "0")
    monkeypatch.setenv("CPAR_SOCKET_MAX", "1000000")
    c = _private(1)
    try:
        rc = c.start_and_connect_sync()
        with pytest.raises(cpar.error.RemoteError) as info:
            rc[0].apply_sync(np.zeros, 300_000)
        assert info.value.ename == "ValueError"
        assert "over the 1000000 bytes a reply may carry" in str(info.value)
        assert "CPAR_SOCKET_MAX" in str(info.value)
        assert len(rc[0].apply_sync(np.zeros, 1000)) == 1000  # under the limit: fine
        _works(rc)
    finally:
        c.stop_cluster_sync()
