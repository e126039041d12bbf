"""Recovery from a dead controller (docs/recovery.md), end to end with real processes: a
controller SIGKILLed in the middle of a load-balanced sweep, `cpar cluster recover`, and
every result arriving, correct, in the original AsyncResults; a second client, started
after the first died, reading all results from the task database; engines killed while
the controller is down; the grace period running out; a corrupt database or one of
another cluster refused with a clear error."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import cpar
from cpar import error, paths
from cpar._proc import pid_alive


def _wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def _cluster(n, grace=30, **kw):
    return cpar.Cluster(n=n, cluster_id=f"recover-{uuid.uuid4().hex[:8]}",
                        recover_grace=grace, **kw)


@cpar.interactive  # sent by value: engines cannot import this test module
def _square_slowly(x):
    import time

    time.sleep(0.0005)
    return x * x


def _kill_controller(c):
    pid = c.controller.pids[0]
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not pid_alive(pid), 10, f"the controller {pid} dies")
    return pid


def _recover(c):
    """`cpar cluster recover` for c's cluster; the recovered cluster (from its file)."""
    out = subprocess.run([sys.executable, "-m", "cpar", "cluster", "recover",
                          "--profile", c.profile, "--cluster-id", c.cluster_id],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "recovered: controller pid" in out.stdout
    return cpar.Cluster.from_file(profile=c.profile, cluster_id=c.cluster_id)


def _stop(*clusters):
    for c in clusters:
        if c is not None:
            c.stop_cluster_sync()


def _controller_log(c):
    with open(c._log("controller")) as f:
        return f.read()


def test_sweep_survives_a_sigkilled_controller():
    """10,000 load-balanced tasks with retries; the controller is SIGKILLed mid-sweep and
    recovered: every result arrives, correct and in order, in the original AsyncResult,
    and the engines come back with their ids."""
    c = _cluster(2)
    new = None
    try:
        rc = c.start_and_connect_sync()
        ids = sorted(rc.ids)
        view = rc.load_balanced_view()
        view.retries = 2
        ar = view.map_async(_square_slowly, range(10000))
        _wait_until(lambda: ar.progress >= 1000, 60, "a tenth of the sweep is done")
        old_pid = _kill_controller(c)
        assert not ar.ready()
        new = _recover(c)
        assert new.controller.pids[0] != old_pid
        assert ar.get(timeout=180) == [x * x for x in range(10000)]
        rc.wait_for_engines(2, timeout=30)
        assert sorted(rc.ids) == ids
        # the client works on as before, direct and load-balanced
        assert rc[:].apply_sync(abs, -3) == [3, 3]
        assert view.apply_sync(abs, -4) == 4
        assert "recovered from" in _controller_log(c)
    finally:
        _stop(new, c)


_FIRST_CLIENT = textwrap.dedent("""
    import sys, time
    import cpar

    @cpar.interactive
    def cube(x):
        import time
        time.sleep(0.002)
        return x ** 3

    rc = cpar.Client(sys.argv[1])
    view = rc.load_balanced_view()
    view.retries = 1
    ar = view.map_async(cube, range(2000))
    with open(sys.argv[2], "w") as f:
        f.write("\\n".join(ar.msg_ids))
    print("submitted", flush=True)
    time.sleep(600)
""")


def test_second_client_reads_every_result_after_the_first_died(tmp_path):
    """A client submits a sweep and dies; the controller is SIGKILLed too and recovered;
    a new client gets every result with get_result and finds every record with
    db_query."""
    c = _cluster(2)
    new = None
    first = None
    try:
        c.start_cluster_sync()
        c.wait_for_engines(2, timeout=30)
        ids_file = tmp_path / "ids"
        first = subprocess.Popen([sys.executable, "-c", _FIRST_CLIENT, c.connection_file,
                                  str(ids_file)], stdout=subprocess.PIPE, text=True)
        assert first.stdout.readline().strip() == "submitted"
        msg_ids = ids_file.read_text().split()
        assert len(msg_ids) == 2000
        time.sleep(0.5)  # part of the sweep runs
        first.kill()
        first.wait()
        _kill_controller(c)
        new = _recover(c)
        rc = new.connect_client_sync()
        got = rc.get_result(msg_ids, owner=False)
        # one task per element, each answering its chunk (a list of one), as map sends them
        assert got.get(timeout=180) == [[x ** 3] for x in range(2000)]
        records = rc.db_query({"msg_id": {"$in": msg_ids}}, keys=["status", "engine_id"])
        assert len(records) == 2000
        assert {r["status"] for r in records} == {"ok"}
        assert {r["engine_id"] for r in records} <= set(rc.ids)
    finally:
        if first is not None and first.poll() is None:
            first.kill()
            first.wait()
        _stop(new, c)


def test_engine_killed_while_the_controller_is_down():
    """One of three engines dies with the controller; the recovered controller waits the
    grace period for it, then resubmits its tasks (they have retries) to the others."""
    c = _cluster(3, grace=8)
    new = None
    try:
        rc = c.start_and_connect_sync()
        view = rc.load_balanced_view()
        view.retries = 3
        ar = view.map_async(_square_slowly, range(3000))
        _wait_until(lambda: ar.progress >= 300, 60, "part of the sweep is done")
        _kill_controller(c)
        victim = c.engines.pids[0]
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: not pid_alive(victim), 10, "the engine dies")
        new = _recover(c)
        assert ar.get(timeout=180) == [x * x for x in range(3000)]
        _wait_until(lambda: len(rc.ids) == 2, 30, "the dead engine is gone")
        assert "2 engine(s) came back, 1 did not (declared gone)" in _controller_log(c)
    finally:
        _stop(new, c)


def test_grace_period_running_out_ends_everything_clearly():
    c = _cluster(2, grace=2)
    try:
        rc = c.start_and_connect_sync()
        engine_pids = list(c.engines.pids)
        ar = rc[0].apply_async(time.sleep, 600)
        _kill_controller(c)
        with pytest.raises(error.ControllerUnreachable, match="did not come back within 2 s"):
            ar.get(timeout=60)
        with pytest.raises(error.ControllerUnreachable, match="is down"):
            rc[:].apply_sync(abs, -1)
        _wait_until(lambda: not any(pid_alive(p) for p in engine_pids), 30,
                    "engines exit after the grace period")
        logs = c.engines.get_output()
        assert "waiting up to 2 s" in logs and "did not come back within 2 s" in logs, logs
    finally:
        c.stop_cluster_sync()


def test_recover_refuses_a_corrupt_database(tmp_path):
    c = _cluster(1, grace=5)
    try:
        c.start_and_connect_sync()
        _kill_controller(c)
        db = os.path.join(paths.profile_dir(c.profile), "db", f"{c.cluster_id}.sqlite")
        assert os.path.exists(db), db
        with open(db, "r+b") as f:  # the header and first pages: garbage
            f.write(os.urandom(8192))
        out = subprocess.run([sys.executable, "-m", "cpar", "cluster", "recover",
                              "--profile", c.profile, "--cluster-id", c.cluster_id],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1
        assert db in out.stderr, out.stderr
    finally:
        c.stop_cluster_sync()


def test_recover_refuses_a_database_of_another_cluster(tmp_path):
    a = _cluster(1, grace=5)
    b = _cluster(1, grace=5)
    try:
        a.start_and_connect_sync()
        b.start_and_connect_sync()
        a_db = os.path.join(paths.profile_dir(a.profile), "db", f"{a.cluster_id}.sqlite")
        b_db = os.path.join(paths.profile_dir(b.profile), "db", f"{b.cluster_id}.sqlite")
        _kill_controller(b)
        with sqlite3.connect(a_db) as src, sqlite3.connect(b_db) as dst:
            src.backup(dst)  # b's file now holds a's database
        out = subprocess.run([sys.executable, "-m", "cpar", "cluster", "recover",
                              "--profile", b.profile, "--cluster-id", b.cluster_id],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1
        assert a.cluster_id in out.stderr and b.cluster_id in out.stderr, out.stderr
    finally:
        _stop(a, b)


def test_recover_refuses_while_the_controller_runs():
    c = _cluster(1)
    try:
        c.start_and_connect_sync()
        out = subprocess.run([sys.executable, "-m", "cpar", "cluster", "recover",
                              "--profile", c.profile, "--cluster-id", c.cluster_id],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1
        assert "still running" in out.stderr, out.stderr
    finally:
        c.stop_cluster_sync()


@cpar.interactive
def _pid_after(seconds):
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def test_direct_requests_running_through_the_crash_complete():
    """Direct requests (one engine, all engines, a broadcast view) that were running when
    the controller died complete with their engines' answers: never run twice."""
    c = _cluster(2)
    new = None
    try:
        rc = c.start_and_connect_sync()
        pids = rc[:].apply_sync(_pid_after, 0)
        one = rc[0].apply_async(_pid_after, 2)
        both = rc[:].apply_async(_pid_after, 2)
        bcast = rc.broadcast_view().apply_async(_pid_after, 2)
        rc[:].execute("ran = globals().get('ran', 0) + 1", block=True)
        ex = rc[:].execute("import time; time.sleep(2); ran += 1")
        time.sleep(0.5)  # all of them run now
        _kill_controller(c)
        new = _recover(c)
        assert one.get(timeout=60) == pids[0]
        assert both.get(timeout=60) == pids
        assert bcast.get(timeout=60) == pids
        ex.get(timeout=60)
        assert rc[:].pull("ran", block=True) == [2, 2]  # each ran once
    finally:
        _stop(new, c)
