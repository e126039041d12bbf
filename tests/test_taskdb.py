"""The task database from the client's side (docs/taskdb.md): a second client reading the
first one's results (AsyncHubResult), db_query and its operators, hub_history, resubmit,
purges, labels, and the results of a client that is gone. Real controller and engines."""

import datetime
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

import cpar
from cpar import error
from cpar.client import AsyncResult, ExecuteReply
from lbkit import wait_until

pytestmark = pytest.mark.timeout(120)

ia = cpar.interactive


@pytest.fixture
def rc2(cluster):
    """A second client of the session cluster: it sent none of the first one's requests."""
    client = cpar.Client(cluster.connection_file)
    yield client
    client.close()


def remote_error(ename):
    """``pytest.raises`` for a RemoteError of that ename (ipyparallel's raises_remote)."""
    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(error.RemoteError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._ctx.__exit__(*exc)
            assert self.info.value.ename == ename, repr(self.info.value)
            return handled

    return _Check()


@ia
def noisy(x):
    print("out", x)
    import sys

    print("err", x, file=sys.stderr)
    return x * 10


@ia
def fails(x):
    raise ValueError(f"bad {x}")


@ia
def rand():
    import random

    return random.random()


@ia
def engine_id():
    import _cpar_engine

    return _cpar_engine.engine_id()


# -- another client's results ------------------------------------------------------------

def test_second_client_gets_an_apply_result_with_output_and_metadata(rc, rc2):
    t = rc.ids[-1]
    ar = rc[t].apply_async(noisy, 4)
    assert ar.get(10) == 40
    ahr = rc2.get_result(ar.msg_id, owner=False)
    assert isinstance(ahr, cpar.AsyncHubResult) and isinstance(ahr, AsyncResult)
    assert ahr.get(10) == 40
    assert ahr.msg_ids == ar.msg_ids
    assert ahr.stdout == "out 4\n" and ahr.stderr == "err 4\n"
    assert ahr.engine_id == t
    md, live = ahr.metadata, ar.metadata
    for key in ("started", "completed"):
        assert md[key].tzinfo is not None
        assert abs((md[key] - live[key]).total_seconds()) <= 2e-6  # µs in the database
    assert md["submitted"] <= md["started"] <= md["completed"] <= md["received"]
    assert md["status"] == "ok" and md["engine_id"] == t
    # finished: the same result again is a plain AsyncResult over the same values
    again = rc2.get_result(ar.msg_id)
    assert not isinstance(again, cpar.AsyncHubResult)
    assert again.get() == 40
    assert rc2.results[ar.msg_id] == 40  # owner=False: listed in rc.results
    # the client that sent it still gets its own AsyncResult
    assert rc.get_result(ar.msg_id) is ar


def test_second_client_gets_an_execute_result(rc, rc2):
    t = rc.ids[0]
    ar = rc[t].execute("print('hello')\nfrom IPython.display import display, HTML\n"
                       "display(HTML('<b>x</b>'))\n6 * 7", silent=False)
    reply = ar.get(10)
    ahr = rc2.get_result(ar.msg_id)
    hub = ahr.get(10)
    assert ahr.outputs == ar.outputs and ahr.outputs[0]["data"]["text/html"] == "<b>x</b>"
    assert [k for k, _ in ahr.output_events] == [k for k, _ in ar.output_events]
    assert isinstance(hub, ExecuteReply)
    assert hub.execute_result == reply.execute_result
    assert hub.execute_result["data"]["text/plain"] == "42"
    assert hub.execution_count == reply.execution_count
    assert hub.stdout == "hello\n" and ahr.stdout == "hello\n"
    assert rc2.get_result(ar.msg_id).get() is hub  # the same ExecuteReply


def test_multi_engine_request_is_the_list_of_its_parts(rc, rc2):
    ids = rc.ids
    ar = rc[:].apply_async(engine_id)
    assert ar.get(10) == ids
    # one part by its part id: that engine's value alone
    part = rc2.get_result(f"{ar.msg_id}:{ids[1]}")
    assert isinstance(part, cpar.AsyncHubResult)
    assert part.get(10) == ids[1] and part.msg_ids == [f"{ar.msg_id}:{ids[1]}"]
    # both as a list, in the order asked
    both = rc2.get_result([f"{ar.msg_id}:{ids[2]}", f"{ar.msg_id}:{ids[0]}"])
    assert both.get(10) == [ids[2], ids[0]]
    # the request: every part, in target order
    ahr = rc2.get_result(ar.msg_id)
    assert ahr.get(10) == ids and ahr.engine_id == ids
    # now known here: a part of it is served from that result
    assert rc2.get_result(f"{ar.msg_id}:{ids[3]}").get(10) == ids[3]
    # the history lists every part
    hist = rc2.hub_history()
    assert all(f"{ar.msg_id}:{e}" in hist for e in ids)
    # timings as the live result's
    assert ahr.serial_time == ar.serial_time
    assert 0 < ahr.wall_time < ar.wall_time + 0.2


def test_client_history_lists_the_records_of_its_requests(rc):
    ids = rc.ids
    ar = rc[:].apply_async(engine_id)
    one = rc[ids[0]].apply_async(engine_id)
    ar.get(10), one.get(10)
    parts = [f"{ar.msg_id}:{e}" for e in ids]
    assert rc.history[-len(ids) - 1:] == parts + [one.msg_id]
    assert set(rc.history) <= set(rc.hub_history())
    # a part of this client's own request, served here (no database needed)
    part = rc.get_result(parts[1])
    assert not isinstance(part, cpar.AsyncHubResult)
    assert part.get(10) == ids[1]
    assert rc.get_result(-2).get(10) == ids  # an index names the whole request
    assert rc.result_status(parts)["completed"] == [ar.msg_id]


def test_errors_are_those_of_a_live_request(rc, rc2, lview):
    ar = rc[rc.ids[0]].apply_async(fails, 3)
    with pytest.raises(error.RemoteError) as live:
        ar.get(10)
    ahr = rc2.get_result(ar.msg_id)
    with pytest.raises(error.RemoteError) as hub:
        ahr.get(10)
    assert hub.value.ename == live.value.ename == "ValueError"
    assert hub.value.evalue == live.value.evalue == "bad 3"
    assert ahr.metadata["status"] == "error"
    # several engines failing: a CompositeError as live
    ar = rc[:].apply_async(fails, 1)
    with pytest.raises(error.CompositeError):
        ar.get(10)
    with pytest.raises(error.CompositeError) as comp:
        rc2.get_result(ar.msg_id).get(10)
    assert len(comp.value.elist) == len(rc.ids)


def test_aborted_task_is_task_aborted(rc, rc2, tmp_path):
    """Aborted load-balanced tasks are recorded as aborted and seen so by another client:
    one waiting at the controller (behind a dependency), one queued behind a running task
    (at the controller or on the engine, as the scheduler placed it) and the running one,
    interrupted. None can end any other way, so no timing decides what the records say."""
    eid = rc.ids[-1]
    lv = rc.load_balanced_view(targets=[eid])
    started = str(tmp_path / "started")

    @ia
    def block(path):
        import time

        open(path, "w").close()
        while True:  # until interrupted by the abort
            time.sleep(0.01)

    first = lv.apply_async(block, started)
    with lv.temp_flags(after=[first]):
        waiting = lv.apply_async(rand)
    queued = lv.apply_async(rand)
    assert wait_until(lambda: os.path.exists(started))
    for ar in (waiting, queued, first):  # in this order: `first` cannot end before
        ar.abort()
        with pytest.raises(error.TaskAborted):
            ar.get(10)
    # abort() ends the results in this client at once; what it sent (the tasks, then the
    # ABORTs) may still be on its way to the controller, and another client's request can
    # overtake it. A query of this client is answered after all it sent before: the
    # records of all three exist when the other client asks.
    ids = [ar.msg_id for ar in (waiting, queued, first)]
    assert sorted(r["msg_id"] for r in rc.db_query({"msg_id": {"$in": ids}},
                                                   keys=["msg_id"])) == sorted(ids)
    for ar in (waiting, queued, first):
        with pytest.raises(error.TaskAborted, match=r"\[Engine \d+\]|aborted"):
            rc2.get_result(ar.msg_id).get(10)
    assert rc2.get_result(first.msg_id).metadata["engine_id"] == eid
    assert lv.apply_sync(rand) is not None  # the engine serves on


def test_pending_record_is_polled_until_it_ends(rc, rc2):
    ar = rc[rc.ids[0]].apply_async(time.sleep, 2)
    time.sleep(0.1)
    ahr = rc2.get_result(ar.msg_id)
    assert not ahr.done()
    assert ahr.get(10) is None  # the poller saw it end
    assert ahr.done() and ahr.elapsed > 1.5
    assert ahr.metadata["completed"] is not None


def test_result_not_kept_says_so_with_its_size(rc, rc2):
    ar = rc[rc.ids[0]].apply_async(np.ones, 1 << 18)  # 2 MiB: past --db-keep-bytes
    assert ar.get(10).shape == (1 << 18,)
    ahr = rc2.get_result(ar.msg_id)
    with pytest.raises(error.ResultNotKept, match=r"not kept.*\d+ bytes"):
        ahr.get(10)


def test_unknown_ids_are_remote_key_errors(rc2):
    with remote_error("KeyError"):
        rc2.get_result("0" * 32)
    with remote_error("KeyError"):
        rc2.get_result("not-an-id")
    with pytest.raises(KeyError):  # also a KeyError
        rc2.get_result("0" * 32)


def test_a_gone_clients_tasks_are_retrieved_by_a_new_client(cluster, rc):
    script = (
        "import sys, cpar\n"
        "rc = cpar.Client(sys.argv[1])\n"
        "lv = rc.load_balanced_view()\n"
        "def slow(x):\n"
        "    import time\n"
        "    time.sleep(0.3)\n"
        "    return x * 2\n"
        "ars = [lv.apply_async(slow, i) for i in range(6)]\n"
        "print(' '.join(a.msg_id for a in ars), flush=True)\n"
        "rc.close()\n")
    out = subprocess.run([sys.executable, "-c", script, cluster.connection_file],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 6
    ahr = rc.get_result(ids)  # the tasks still run, and are recorded for us
    assert ahr.get(30) == [0, 2, 4, 6, 8, 10]


# -- db_query and hub_history ------------------------------------------------------------

def test_db_query_operators_and_keys(rc):
    tag = uuid.uuid4().hex
    dv = rc[rc.ids[0]]
    ars = []
    for i in range(4):
        ars.append(dv.set_flags(label=f"{tag}-{i}").apply_async(engine_id))
        ars[-1].get(10)
        time.sleep(0.002)
    dv.set_flags(label=None)
    me = {"client_uuid": rc.session.session}
    ids = [a.msg_id for a in ars]
    recs = rc.db_query({"msg_id": {"$in": ids}})
    assert [r["msg_id"] for r in recs] == ids  # in arrival order
    r0 = recs[0]
    assert r0["label"] == f"{tag}-0" and r0["status"] == "ok"
    assert r0["queue"] == "mux" and r0["msg_type"] == "apply_request"
    assert r0["engine_id"] == rc.ids[0] and r0["targets"] == [rc.ids[0]]
    assert r0["client_uuid"] == rc.session.session
    for k in ("submitted", "started", "completed", "received"):
        assert isinstance(r0[k], datetime.datetime) and r0[k].tzinfo is not None
    assert r0["header"]["msg_id"] == ids[0] and r0["header"]["session"] == me["client_uuid"]
    assert r0["metadata"]["label"] == f"{tag}-0"
    tics = [r["submitted"] for r in recs]
    mid = tics[2]

    def q(cond, **extra):
        return [r["msg_id"] for r in rc.db_query({**me, "msg_id": {"$in": ids},
                                                   "submitted": cond, **extra})]

    assert q({"$lt": mid}) == ids[:2]
    assert q({"$lte": mid}) == ids[:3]
    assert q({"$gt": mid}) == ids[3:]
    assert q({"$gte": mid}) == ids[2:]
    assert q({"$eq": mid}) == [ids[2]]
    assert q(mid) == [ids[2]]
    assert q({"$ne": mid}) == ids[:2] + ids[3:]
    assert q({"$gte": tics[1], "$lt": tics[3]}) == ids[1:3]
    assert [r["msg_id"] for r in rc.db_query({"msg_id": {"$nin": ids[1:]},
                                              "label": {"$in": [f"{tag}-0", f"{tag}-1"]}})] \
        == ids[:1]
    assert [r["msg_id"] for r in rc.db_query({"label": f"{tag}-3"})] == ids[3:]
    assert len(rc.db_query({"msg_id": {"$in": ids}, "label": {"$exists": True}})) == 4
    assert rc.db_query({"msg_id": {"$in": ids}, "label": {"$exists": False}}) == []
    # keys: a list, one str, the built header; msg_id always comes
    recs = rc.db_query({"msg_id": {"$in": ids}}, keys=["submitted", "completed"])
    assert all(set(r) == {"msg_id", "submitted", "completed"} for r in recs)
    recs = rc.db_query({"msg_id": ids[0]}, keys="header")
    assert set(recs[0]) == {"msg_id", "header"}
    assert set(recs[0]["header"]) == {"msg_id", "msg_type", "date", "session"}
    assert recs[0]["header"]["date"] == tics[0]
    recs = rc.db_query({"msg_id": ids[0]}, keys=["msg_id"])
    assert recs == [{"msg_id": ids[0]}]


def test_db_query_bad_input(rc):
    with remote_error("ValueError"):
        rc.db_query({"no_such_column": 1})
    with pytest.raises(ValueError, match="unknown operator"):
        rc.db_query({"msg_id": {"$regex": "x"}})
    with pytest.raises(TypeError):
        rc.db_query("msg_id")


def test_hub_history_is_in_arrival_order(rc):
    v = rc[rc.ids[-1]]
    ars = [v.apply_async(engine_id) for _ in range(3)]
    for a in ars:
        a.get(10)
    hist = rc.hub_history()
    assert hist[-3:] == [a.msg_id for a in ars]
    recs = rc.db_query({"msg_id": {"$in": hist[-20:]}}, keys=["submitted"])
    by_id = {r["msg_id"]: r["submitted"] for r in recs}
    times = [by_id[m] for m in hist[-20:]]
    assert times == sorted(times)


# -- resubmit ----------------------------------------------------------------------------

def test_resubmit_runs_the_task_again(rc, lview):
    ar = lview.apply_async(rand)
    r1 = ar.get(10)
    ahr = rc.resubmit(ar.msg_ids)
    assert isinstance(ahr, cpar.AsyncHubResult)
    r2 = ahr.get(10)
    assert isinstance(r2, list) and r2[0] != r1
    new = ahr.msg_ids[0]
    assert new != ar.msg_id and len(new) == 32
    assert new.startswith(rc.session.session)  # this client's id
    rec = rc.db_query({"msg_id": new})[0]
    assert rec["resubmitted"] == ar.msg_id and rec["queue"] == "task"
    # a chain: the resubmitted one again
    third = rc.resubmit(new)
    assert isinstance(third.get(10), float)
    assert rc.db_query({"msg_id": third.msg_id})[0]["resubmitted"] == new
    # a direct APPLY part becomes a task
    d = rc[rc.ids[0]].apply_async(noisy, 2)
    d.get(10)
    assert rc.resubmit(d.msg_id).get(10) == 20


def test_resubmit_in_flight_and_bad_ids(rc, lview):
    ar = lview.apply_async(time.sleep, 0.5)
    time.sleep(0.1)
    ahr = rc.resubmit(ar.msg_ids)
    assert ar.get(10) is None and ahr.get(10) == [None]
    with remote_error("KeyError"):
        rc.resubmit(["invalid"])
    with remote_error("KeyError"):
        rc.resubmit(["f" * 32])
    ex = rc[rc.ids[0]].execute("1")
    ex.get(10)
    with remote_error("ValueError"):
        rc.resubmit(ex.msg_id)
    with pytest.raises(ValueError):
        rc.resubmit(ar.msg_id, metadata={"retries": 2})


# -- purges ------------------------------------------------------------------------------

def test_purge_hub_results_rules(rc, rc2):
    v = rc[rc.ids[0]]
    done = [v.apply_async(engine_id) for _ in range(3)]
    for a in done:
        a.get(10)
    hist = rc.hub_history()
    assert rc.purge_hub_results(done[0].msg_id) == 1
    assert done[0].msg_id not in rc.hub_history()
    assert len(rc.hub_history()) <= len(hist) - 1
    with remote_error("KeyError"):
        rc2.get_result(done[0].msg_id)
    # an AsyncResult names its ids; a pending record cannot be purged by id
    rc.purge_hub_results(done[1])
    assert done[1].msg_id not in rc.hub_history()
    busy = v.apply_async(time.sleep, 2)
    time.sleep(0.1)
    with remote_error("IndexError"):
        rc.purge_hub_results(busy.msg_id)
    busy.get(10)
    # owner=True purges only this client's records
    theirs = rc2[rc.ids[1]].apply_async(engine_id)
    mine = rc[rc.ids[1]].apply_async(engine_id)
    theirs.get(10), mine.get(10)
    rc.purge_hub_results(targets=[rc.ids[1]], owner=True)
    hist = rc.hub_history()
    assert mine.msg_id not in hist and theirs.msg_id in hist
    # by target: every record that engine answered
    rc.purge_hub_results(targets=rc.ids[1])
    assert theirs.msg_id not in rc.hub_history()
    with pytest.raises(ValueError, match="needs jobs"):
        rc.purge_hub_results()
    # purge_results: here and there
    last = v.apply_async(engine_id)
    last.get(10)
    rc.purge_results(last)
    assert last.msg_id not in rc.hub_history()
    with remote_error("KeyError"):
        rc.get_result(last.msg_id)  # forgotten here too: the database has no record


@pytest.mark.timeout(180)
def test_engine_death_and_purge_everything_on_its_own_cluster(tmp_path):
    c = cpar.Cluster(n=2, cluster_id="taskdb-" + uuid.uuid4().hex[:8], hb_timeout_ms=1000,
                     db_keep_bytes=4096)
    rc = c.start_and_connect_sync()
    other = None
    try:
        rc.wait_for_engines(2, timeout=30)
        # past --db-keep-bytes: a reply is not kept, output is kept up to it
        big = rc[0].apply_async(lambda: (print("x" * 10000), b"y" * 10000)[1])
        assert big.get(10) == b"y" * 10000
        other = cpar.Client(c.connection_file)
        hub = other.get_result(big.msg_id)
        with pytest.raises(error.ResultNotKept, match=r"\d{5} bytes"):
            hub.get(10)
        assert 4096 <= len(hub.stdout) < 10001 and big.stdout.startswith(hub.stdout)
        rc.purge_hub_results(big)
        for _ in range(3):
            rc[:].apply_sync(engine_id)
        assert len(rc.hub_history()) == 6  # one record per engine and request
        busy = rc[0].apply_async(time.sleep, 2)
        time.sleep(0.1)
        rc.purge_hub_results("all")  # skips the pending one
        assert rc.hub_history() == [f"{busy.msg_id}"]
        busy.get(10)
        # an engine that dies under a request: EngineError, read back as such
        pid = rc[1].apply_sync(os.getpid)
        started = str(tmp_path / "started")

        @ia
        def touch_then_sleep(path):
            import time

            open(path, "w").close()
            time.sleep(30)

        dying = rc[1].apply_async(touch_then_sleep, started)
        deadline = time.monotonic() + 20
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(error.EngineError):
            dying.get(20)
        with pytest.raises(error.EngineError) as info:
            other.get_result(dying.msg_id).get(10)
        assert info.value.engine_id == 1
        assert other.db_query({"msg_id": dying.msg_id}, keys="error_code")[0]["error_code"] \
            == -11
        rc.purge_everything()
        assert rc.hub_history() == [] and rc.history == []
        assert len(rc.results) == 0 and len(rc.metadata) == 0
    finally:
        if other is not None:
            other.close()
        rc.close()
        c.stop_cluster_sync()


# -- labels ------------------------------------------------------------------------------

def test_labels_of_direct_and_balanced_views(rc, lview):
    tag = uuid.uuid4().hex
    dv = rc[:]
    n = len(rc.ids)
    with dv.temp_flags(label=f"{tag}-map"):
        dv.map_sync(lambda x: x, range(n))
    assert dv.label is None
    dv.set_flags(label=f"{tag}-apply").apply_sync(engine_id)
    dv.set_flags(label=None)
    dv.execute("x = 1", label=f"{tag}-exec", block=True)
    lview.map_sync(lambda x: x, range(3), label=f"{tag}-lbmap")
    with lview.temp_flags(label=f"{tag}-lb"):
        lview.apply_sync(engine_id)
    dv.apply_sync(engine_id)  # no label
    recs = rc.db_query({"label": {"$in": [f"{tag}-{k}" for k in
                                          ("map", "apply", "exec", "lbmap", "lb")]}},
                       keys=["label", "queue"])
    labels = sorted(r["label"] for r in recs)
    assert labels == sorted([f"{tag}-map"] * n + [f"{tag}-apply"] * n + [f"{tag}-exec"] * n
                            + [f"{tag}-lbmap"] * 3 + [f"{tag}-lb"])
    assert {r["queue"] for r in recs if r["label"].endswith("lb")} == {"task"}
    with pytest.raises(TypeError, match="label"):
        dv.set_flags(label=3)
    with pytest.raises(KeyError):
        dv.set_flags(lable="x")
