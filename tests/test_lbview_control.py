"""LoadBalancedView control against real clusters: abort, bookkeeping (queue_status,
result_status, get_result, purge_results), engine death with and without retries, a
vanished client, engines joining, and the controller's memory over many tasks."""

import gc
import os
import signal
import subprocess
import sys
import time

import pytest

import cpar
from cpar import error, paths

from lbkit import (engine_id, own_cluster, sleep_then,
                   touch_then_sleep, wait_file_then, wait_until)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------
# abort


def test_abort_queued_and_running(rc, tmp_path):
    eid = rc.ids[-1]
    v = rc.load_balanced_view(targets=[eid])
    started = str(tmp_path / "started")
    # An hour: if the interrupt failed, the engine would stay busy far past the bounds below.
    running = v.apply_async(touch_then_sleep, started, 3600)
    assert wait_until(lambda: os.path.exists(started))
    queued = [v.apply_async(time.sleep, 3600) for _ in range(3)]
    for q in queued:
        q.abort()
        with pytest.raises(error.TaskAborted):
            q.get(5)
    running.abort()
    with pytest.raises(error.TaskAborted):
        running.get(5)
    # the engine lives on, and is free again: the hour-long sleep was interrupted
    assert v.apply_async(engine_id).get(60) == eid
    qs = rc.queue_status(eid)
    assert qs["tasks"] == 0


def test_rc_abort_jobs(rc, lview, tmp_path):
    eid = rc.ids[0]
    v = rc.load_balanced_view(targets=[eid])
    started = str(tmp_path / "started")
    blocker = v.apply_async(touch_then_sleep, started, 3600)
    assert wait_until(lambda: os.path.exists(started))  # running: the rest waits behind it
    m = v.map_async(abs, range(5))
    single = v.apply_async(abs, -1)
    rc.abort([m, single.msg_id])
    with pytest.raises(error.TaskAborted):
        m.get(5)
    with pytest.raises(error.TaskAborted):
        single.get(5)
    v.abort()  # every outstanding task of the view: the blocker
    with pytest.raises(error.TaskAborted):
        blocker.get(5)
    assert v.apply_async(abs, -3).get(60) == 3  # interrupted: not an hour later


# ---------------------------------------------------------------------------------------
# bookkeeping


def test_queue_status(rc, lview, tmp_path):
    release = str(tmp_path / "release")
    a = lview.apply_async(wait_file_then, release)  # runs until the test releases it
    with lview.temp_flags(after=a):
        waiting = [lview.apply_async(abs, -i) for i in range(5)]
    assert wait_until(lambda: rc.queue_status()["unassigned"] == 5)
    assert wait_until(lambda: sum(rc.queue_status()[e]["tasks"] for e in rc.ids) == 1)
    qs = rc.queue_status()
    assert set(qs) == set(rc.ids) | {"unassigned"}
    assert qs["unassigned"] >= 5
    for eid in rc.ids:
        assert set(qs[eid]) >= {"queue", "tasks", "completed"}
        assert all(isinstance(qs[eid][k], int) for k in ("queue", "tasks", "completed"))
    assert sum(qs[e]["tasks"] for e in rc.ids) >= 1
    one = rc.queue_status(rc.ids[0])
    assert set(one) >= {"queue", "tasks", "completed"}
    some = rc.queue_status(targets=rc.ids[:2])
    assert set(some) == set(rc.ids[:2]) | {"unassigned"}
    verbose = rc.queue_status(verbose=True)
    running_on = [e for e in rc.ids if a.msg_id in verbose[e]["tasks"]]
    assert len(running_on) == 1
    open(release, "w").close()
    assert [w.get(30) for w in waiting] == [0, 1, 2, 3, 4]
    done = rc.queue_status()
    assert done["unassigned"] == 0
    assert sum(done[e]["completed"] for e in rc.ids) > sum(qs[e]["completed"] for e in rc.ids)


def test_result_status_get_result_purge(rc, lview):
    ar = lview.apply_async(sleep_then, 0.5, "r")
    st = rc.result_status([ar.msg_id])
    assert st["pending"] == [ar.msg_id] and st["completed"] == []
    assert rc.get_result(ar.msg_id) is ar
    assert rc.history[-1] == ar.msg_id
    assert rc.get_result() is ar  # the last request
    ar.get(30)
    st = rc.result_status(ar, status_only=False)
    assert st["completed"] == [ar.msg_id] and st[ar.msg_id] == "r"

    m = lview.map_async(lambda x: -x, range(4))
    m.get(30)
    part = rc.get_result(m.msg_ids[1:3], block=True)
    assert part is not m and part.get(5) == [[-1], [-2]]
    assert rc.get_result(m.msg_ids).get(5) == [0, -1, -2, -3]
    both = rc.get_result([ar.msg_id, m.msg_ids[0]])
    assert both.get(5) == ["r", [0]]

    with pytest.raises(RuntimeError):  # pending results are not purged (as ipyparallel)
        slow = lview.apply_async(sleep_then, 0.3)
        rc.purge_results(slow)
    slow.get(30)
    rc.purge_results([ar])  # here and in the task database
    with pytest.raises(KeyError):
        rc.get_result(ar.msg_id)
    # the controller still knows how it ended
    st = rc.result_status([ar.msg_id])
    assert st["completed"] == [ar.msg_id]
    rc.purge_local_results("all")
    # forgotten here: read back from the task database
    assert isinstance(rc.get_result(m.msg_ids[0]), cpar.AsyncHubResult)
    with pytest.raises(KeyError):
        rc.get_result("ab" * 16)
    st = rc.result_status(["ab" * 16])
    assert st["unknown"] == ["ab" * 16]

    # results nobody holds are forgotten here (weakly held), and read back from the task
    # database
    gone = lview.apply_async(abs, -9)
    gone.get(30)
    msg_id = gone.msg_id
    del gone
    gc.collect()
    assert msg_id not in rc.results
    again = rc.get_result(msg_id)
    assert isinstance(again, cpar.AsyncHubResult) and again.get(30) == 9


def test_result_status_of_another_clients_tasks(cluster, rc, lview):
    slow = lview.apply_async(sleep_then, 0.5, "slow")
    done = lview.apply_async(abs, -1)
    done.get(30)
    other = cpar.Client(cluster.connection_file)
    try:
        st = other.result_status([slow.msg_id, done.msg_id])  # asked at the controller
        assert st["pending"] == [slow.msg_id] and st["completed"] == [done.msg_id]
        # the task database gives another client's results, pending ones once they end
        hub = other.get_result(slow.msg_id)
        assert isinstance(hub, cpar.AsyncHubResult) and hub.get(30) == "slow"
        slow.get(30)
        assert other.result_status(slow.msg_id)["completed"] == [slow.msg_id]
    finally:
        other.close()


def test_direct_results_are_remembered(rc):
    ar = rc[:].apply_async(abs, -2)
    assert rc.get_result(ar.msg_id) is ar
    assert ar.get(30) == [2] * len(rc.ids)
    assert rc.result_status(ar.msg_id)["completed"] == [ar.msg_id]


# ---------------------------------------------------------------------------------------
# engine failure, new engines, memory


@pytest.mark.timeout(120)
def test_engine_killed_during_map_with_retries():
    c, rc = own_cluster("lb-kill", n=3, hb_timeout_ms=1000)
    try:
        lv = rc.load_balanced_view(retries=1)
        pids = dict(zip(rc.ids, rc[:].apply_sync(os.getpid)))
        victim_id = rc.ids[1]
        survivors = sorted(set(rc.ids) - {victim_id})
        ar = lv.map_async(lambda x: sleep_then(0.004, x * 2), range(1000))
        assert wait_until(lambda: ar.progress >= 150)
        assert not ar.done()
        os.kill(pids[victim_id], signal.SIGKILL)
        # the tasks it held are retried elsewhere: no EngineError, every value right
        assert ar.get(60) == [x * 2 for x in range(1000)]
        # the controller declares it gone (1 s heartbeat timeout) and the client hears it
        assert wait_until(lambda: victim_id not in rc.ids), rc.ids
        assert sorted(rc.ids) == survivors
        # later tasks run on the survivors only
        lv0 = rc.load_balanced_view(retries=0)
        assert {a.get(30) for a in [lv0.apply_async(engine_id) for _ in range(8)]} <= \
            set(survivors)
    finally:
        c.stop_cluster_sync()


@pytest.mark.timeout(90)
def test_engine_killed_without_retries_gives_engine_error(tmp_path):
    c, rc = own_cluster("lb-kill0", n=2, hb_timeout_ms=1000)
    try:
        lv = rc.load_balanced_view(targets=[1])
        pid = lv.apply_sync(os.getpid)
        started = str(tmp_path / "started")
        ar = lv.apply_async(touch_then_sleep, started, 30)
        m = lv.map_async(time.sleep, [30] * 4)
        assert wait_until(lambda: os.path.exists(started))  # ar runs: it must die with it
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(error.EngineError):
            ar.get(20)
        # the map's tasks: sent to the engine (EngineError), or waiting for it at the
        # controller (its only allowed engine is gone: ImpossibleDependency)
        with pytest.raises(error.CompositeError) as info:
            m.get(20)
        kinds = {type(e) for e in info.value.elist}
        assert len(info.value.elist) == 4
        assert kinds <= {error.EngineError, error.ImpossibleDependency}, kinds
    finally:
        c.stop_cluster_sync()


LOST_CLIENT = """
import sys

import cpar

cf, go, marks = sys.argv[1:4]


def blocker(path):
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.005)
    return "unblocked"


def big():
    import numpy

    return numpy.ones(1 << 20)  # 8 MB: a shared-memory reply the engine pins for the client


def mark(path):
    open(path, "w").close()
    return path


rc = cpar.Client(cf)
lv = rc.load_balanced_view()
ars = [lv.apply_async(blocker, go)] + [lv.apply_async(mark, f"{marks}{i}") for i in range(5)]
direct = rc[rc.ids[0]].apply_async(big)  # waits on the engine behind the blocker
print("submitted", flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.timeout(120)
def test_vanished_client_queued_tasks_are_cancelled(tmp_path):
    """A client process SIGKILLed with tasks queued at the controller: those tasks never run
    (cancelled: docs/protocol.md, "Clients that vanish"), the running one finishes, and the
    cluster serves other clients as before."""
    # Without a task database (with one, they run: the test below).
    c, rc = own_cluster("lb-lost-client", n=1, controller_args=["--hwm", "1"], db="none")
    go, marks = str(tmp_path / "go"), str(tmp_path / "ran")
    p = subprocess.Popen([sys.executable, "-c", LOST_CLIENT, c.connection_file, go, marks],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "submitted"
        eid = rc.ids[0]
        # one task on the engine (hwm 1), five waiting at the controller
        assert wait_until(lambda: rc.queue_status()["unassigned"] == 5), rc.queue_status()
        assert rc.queue_status()[eid]["tasks"] == 1
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
        # the controller notices the closed connection and drops the queued five
        assert wait_until(lambda: rc.queue_status()["unassigned"] == 0), rc.queue_status()
        open(go, "w").close()  # the running one may finish now
        lv = rc.load_balanced_view()
        assert lv.apply_sync(engine_id) == eid  # runs after it: nothing else was queued
        assert rc.queue_status()[eid]["tasks"] == 0
        # The direct request queued on the engine ran too; its shared-memory reply went
        # nowhere, and the controller told the engine to release its pins at once (not
        # left to the engine's 120 s expiry).
        assert wait_until(
            lambda: rc[eid].apply_sync(lambda: __import__("_cpar_engine").shm_pinned()) == 0,
            timeout=60)
        assert not [m for m in os.listdir(tmp_path) if m.startswith("ran")]
        with open(c.controller.log_paths[0]) as f:
            log = f.read()
        assert "queued task(s) cancelled" in log and "5 queued task(s) cancelled, 1 running" \
            in log, log[-2000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
        c.stop_cluster_sync()


@pytest.mark.timeout(90)
def test_vanished_client_tasks_run_and_are_recorded_with_the_database(tmp_path):
    """With the task database on (docs/taskdb.md), a client SIGKILLed with tasks queued at
    the controller does not cancel them: they all run, and their results are in the
    database for any later client."""
    import json as _json

    from cpar import _core, connfile

    c, rc = own_cluster("lb-lost-client-db", n=1, controller_args=["--hwm", "1"],
                        db="memory")
    go, marks = str(tmp_path / "go"), str(tmp_path / "ran")
    p = subprocess.Popen([sys.executable, "-c", LOST_CLIENT, c.connection_file, go, marks],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    conn = None
    try:
        assert p.stdout.readline().strip() == "submitted"
        assert wait_until(lambda: rc.queue_status()["unassigned"] == 5), rc.queue_status()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
        time.sleep(0.5)  # the controller has seen the connection close
        assert rc.queue_status()["unassigned"] == 5  # still queued: not cancelled
        open(go, "w").close()
        assert wait_until(lambda: len([m for m in os.listdir(tmp_path)
                                       if m.startswith("ran")]) == 5, timeout=60)
        info = connfile.read(c.connection_file)
        conn = _core.Connection(info["client_url"], info["key"].encode())

        def ask(body):
            mid = os.urandom(16)
            conn.send(_core.MSG_DB_REQUEST, [_json.dumps(body)], msg_id=mid)
            while True:
                (m,) = conn.recv(timeout=10, max=1) or [None]
                assert m is not None, "no DB_REPLY"
                if m.type == _core.MSG_DB_REPLY and m.parent == mid:
                    assert m.status == 0, bytes(m.frames[0])
                    return _json.loads(bytes(m.frames[0]))

        def tasks_done():
            recs = ask({"op": "query", "query": {"queue": "task"},
                        "keys": ["status", "stdout"]})["records"]
            return recs if len(recs) == 6 and all(r["status"] == "ok" for r in recs) else None

        assert wait_until(tasks_done, timeout=30), ask({"op": "query", "query": {}})
        with open(c.controller.log_paths[0]) as f:
            assert "recorded in the task database" in f.read()
    finally:
        if conn is not None:
            conn.close()
        if p.poll() is None:
            p.kill()
            p.wait(30)
        c.stop_cluster_sync()


@pytest.mark.timeout(90)
def test_new_engines_take_work():
    c, rc = own_cluster("lb-grow", n=1)
    try:
        lv = rc.load_balanced_view()
        ar = lv.map_async(lambda x: sleep_then(0.1, x), range(40))
        c.start_engines_sync(2)
        c.wait_for_engines(3, timeout=30)
        rc.wait_for_engines(3, timeout=30)
        # ENGINE_EVENT told the client the new engines' pids
        assert {int(i["pid"]) for i in rc.engine_info.values()} == set(c.engines.pids)
        assert ar.get(60) == list(range(40))
        used = {m["engine_id"] for m in ar.metadata}
        assert used - {0}, f"the new engines took no task: {used}"
    finally:
        c.stop_cluster_sync()


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(240)
def test_controller_memory_bounded(cluster, rc):
    pid = paths.read_json(cluster.connection_file)["controller_pid"]
    lv = rc.load_balanced_view()
    batch = 20_000
    rss = []
    t0 = time.monotonic()
    for _ in range(10):
        ar = lv.map_async(abs, range(batch))
        assert len(ar.get(120)) == batch
        del ar
        rss.append(_rss_kb(pid))
    elapsed = time.monotonic() - t0
    growth_mb = (rss[-1] - rss[0]) / 1024
    assert growth_mb < 60, f"controller RSS grew {growth_mb:.0f} MB from 20k to 200k tasks " \
                           f"({rss} kB; {elapsed:.0f} s)"
