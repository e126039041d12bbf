"""Client.broadcast_view / BroadcastView, with and without coalesced replies (the
controller's COALESCE flag, docs/protocol.md "Coalesced replies"), on real clusters."""

import os
import uuid

import numpy as np
import pytest

import cpar
from cpar import error
from cpar.client.broadcast import BroadcastView


@pytest.fixture(params=[False, True], ids=["plain", "coalescing"])
def bview(request, rc):
    v = rc.broadcast_view(is_coalescing=request.param)
    v.block = True
    return v


def test_results_equal_direct_view(rc, bview):
    dview = rc[:]
    assert isinstance(bview, BroadcastView)
    assert len(bview) == len(rc.ids)
    assert bview.apply(os.getpid) == dview.apply_sync(os.getpid)
    assert bview.apply(pow, 2, 10) == [1024] * len(rc.ids)
    bview["a"] = 5
    bview.push({"b": np.arange(1000)})
    assert bview["a"] == [5] * len(rc.ids)
    assert [int(x.sum()) for x in bview.pull("b")] == [499500] * len(rc.ids)
    bview.execute("c = a * 2")
    assert dview.pull("c", block=True) == [10] * len(rc.ids)
    bview.scatter("x", list(range(20)))
    assert bview.gather("x") == list(range(20))
    assert bview.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]


def test_metadata_per_engine(rc, bview):
    ar = bview.apply_async(os.getpid)
    pids = ar.get(timeout=30)
    assert ar.engine_id == rc.ids
    assert len(set(ar.engine_uuid)) == len(rc.ids)
    assert all(isinstance(u, str) and u for u in ar.engine_uuid)
    md = ar.metadata
    assert [m["engine_id"] for m in md] == rc.ids
    assert [m["status"] for m in md] == ["ok"] * len(rc.ids)
    assert all(m["started"] is not None and m["completed"] is not None for m in md)
    assert pids == [int(rc.engine_info[e]["pid"]) for e in rc.ids]


def test_remote_error_on_some_engines(rc, bview):
    first = int(rc.engine_info[rc.ids[0]]["pid"])

    def fail_on_first(first):
        import os as _os

        if _os.getpid() == first:
            raise ValueError("boom")
        return "fine"

    ar = bview.apply_async(fail_on_first, first)
    with pytest.raises(error.CompositeError) as info:
        ar.get(timeout=30)
    assert len(info.value.elist) == 1
    assert "boom" in str(info.value)
    statuses = [m["status"] for m in ar.metadata]
    assert statuses == ["error"] + ["ok"] * (len(rc.ids) - 1)


def test_output_streams_arrive(rc, bview):
    ar = bview.apply_async(print, "hello")
    ar.get(timeout=30)
    assert ar.stdout == ["hello\n"] * len(rc.ids)


def test_many_outstanding_coalesced(rc):
    view = rc.broadcast_view(is_coalescing=True)
    ars = [view.apply_async(pow, i, 2) for i in range(200)]
    assert [a.get(timeout=60) for a in ars] == [[i * i] * len(rc.ids) for i in range(200)]


def test_flags_and_repr(rc):
    v = rc.broadcast_view(block=True)
    assert v.block is True and v.is_coalescing is False
    v.execute("5", silent=False)
    with v.temp_flags(is_coalescing=True, block=False):
        assert v.is_coalescing and v.block is False
        ar = v.apply(os.getpid)
        assert ar.get(timeout=30) == rc[:].apply_sync(os.getpid)
    assert v.is_coalescing is False and v.block is True
    assert "BroadcastView" in repr(v)
    assert "coalescing" in repr(rc.broadcast_view(is_coalescing=True))
    assert rc.broadcast_view(rc.ids[0]).apply_sync(abs, -1) == 1
    assert rc.broadcast_view(slice(0, 2)).targets == rc.ids[:2]


def test_bad_targets_give_clear_errors(rc):
    with pytest.raises(error.NoSuchEngine):
        rc.broadcast_view([12345])
    with pytest.raises(TypeError, match="targets"):
        rc.broadcast_view(targets=3.5)
    with pytest.raises(TypeError, match="unexpected keyword.*'colour'"):
        rc.broadcast_view(colour="red")
    with pytest.raises(error.NoSuchEngine):
        rc.broadcast_view([0, 999], is_coalescing=True)
    # nothing is left half-done: the view works afterwards
    assert rc.broadcast_view(is_coalescing=True).apply_sync(abs, -2) == [2] * len(rc.ids)


@pytest.mark.parametrize("coalescing", [True, False])
def test_engine_killed_during_request(coalescing):
    def _exit_on(victim):
        import os as _os
        import time as _time

        if _os.getpid() == victim:
            # Usually the others answer first, so their replies wait at the controller
            # when this engine dies; the assertions hold in either order.
            _time.sleep(0.5)
            _os._exit(3)
        return _os.getpid()

    c = cpar.Cluster(n=3, cluster_id=f"bcast-{uuid.uuid4().hex[:8]}")
    try:
        rc = c.start_and_connect_sync()
        rc.wait_for_engines(3, timeout=30)
        ids = rc.ids
        victim = ids[1]
        pids = {e: int(rc.engine_info[e]["pid"]) for e in ids}
        view = rc.broadcast_view(is_coalescing=coalescing)
        ar = view.apply_async(_exit_on, pids[victim])
        with pytest.raises(error.CompositeError) as info:
            ar.get(timeout=60)
        assert len(info.value.elist) == 1
        assert isinstance(info.value.elist[0], error.EngineError)
        assert info.value.elist[0].engine_id == victim
        md = ar.metadata
        for m in md:
            if m["engine_id"] == victim:
                assert m["status"] == "error"
            else:
                assert m["status"] == "ok"
        # the survivors' results are there
        values = ar.get(timeout=1, return_exceptions=True)
        for eid, v in zip(ids, values):
            if eid == victim:
                assert isinstance(v, error.EngineError)
            else:
                assert v == pids[eid]
        others = [e for e in ids if e != victim]
        assert rc[others].apply_sync(os.getpid) == [pids[e] for e in others]
        rc.close()
    finally:
        c.stop_cluster_sync()


@pytest.mark.parametrize("coalescing", [True, False])
def test_replies_travel_as_one_message_when_coalescing(rc, coalescing):
    conn = rc._dispatcher.conn
    view = rc.broadcast_view(is_coalescing=coalescing)
    view.apply_sync(abs, -1)  # warm: the engines' shared-memory probes are answered
    before = conn.received
    assert view.apply_sync(abs, -7) == [7] * len(rc.ids)
    assert conn.received - before == (1 if coalescing else len(rc.ids))
    assert conn.malformed == 0 and conn.bad_signature == 0


def test_large_results_coalesced(rc):
    """Results big enough to come by shared memory (or by socket when it is off) inside a
    coalesced reply."""
    conn = rc._dispatcher.conn
    view = rc.broadcast_view(is_coalescing=True, block=True)
    view.push({"big": np.arange(200_000, dtype=np.float64)})
    shm_before = conn.shm_received
    for _ in range(3):
        got = view.pull("big")
        assert len(got) == len(rc.ids)
        assert all(int(a.sum()) == 199999 * 100000 for a in got)
    ar = view.apply_async(lambda n: np.ones(n), 100_000)
    assert [a.shape for a in ar.get(timeout=60)] == [(100_000,)] * len(rc.ids)
    assert conn.malformed == 0 and conn.shm_failed == 0
    if conn.shm:  # the session cluster is on this host: the parts came by descriptor
        assert conn.shm_received - shm_before >= 3 * len(rc.ids)
