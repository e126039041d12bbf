"""The Python client API (Client, DirectView, AsyncResult) against a real cluster: a real
controller process and real engine processes (fixtures in conftest.py)."""

import concurrent.futures
import json
import os
import time

import numpy as np
import pytest

import cpar
from cpar import error
from cpar.client import AsyncResult, Client, DirectView

pytestmark = pytest.mark.timeout(120)

# Functions defined in this module run in the engines' namespace, as if typed at a prompt
# (the test module itself is not importable on the engines).
ia = cpar.interactive


def test_ids_and_views(rc):
    ids = rc.ids
    assert ids == sorted(ids) and len(ids) >= 4
    assert isinstance(rc[0], DirectView) and rc[0].targets == 0
    assert rc[:].targets == ids
    assert rc[::2].targets == ids[::2]
    assert rc[[0, 2]].targets == [0, 2]
    assert rc[-1].targets == ids[-1]
    assert len(rc[:]) == len(ids) and len(rc[0]) == 1
    assert repr(rc[[0, 2]]) == "<DirectView [0, 2]>"
    assert rc.direct_view().targets == "all"
    with pytest.raises(IndexError):
        rc[9999]
    with pytest.raises(error.NoSuchEngine):
        rc.direct_view([0, 9999])


def test_client_finds_the_cluster_by_profile_and_id(cluster):
    with Client(profile=cluster.profile, cluster_id=cluster.cluster_id) as rc:
        rc.wait_for_engines(4, timeout=30)
        assert rc[0].apply_sync(ia(lambda: 1 + 1)) == 2
    assert rc.closed
    rc.close()  # idempotent


def test_block_is_inherited_by_new_views(rc):
    assert rc.block is False
    ar = rc[0].apply(pow, 2, 10)
    assert isinstance(ar, AsyncResult) and ar.get(timeout=30) == 1024
    rc.block = True
    assert rc[0].apply(pow, 2, 10) == 1024
    assert rc[:].block is True
    v = rc[:]
    v.block = False
    assert isinstance(v.apply(pow, 2, 3), AsyncResult)


def test_apply_single_and_multi(rc):
    pids = rc[:].apply_sync(os.getpid)
    assert len(set(pids)) == len(rc.ids) and os.getpid() not in pids
    assert rc[1].apply_sync(ia(lambda x, y=0: x * y), 6, y=7) == 42
    assert rc[0].apply_async(os.getpid).get(30) == pids[0]


def test_interactive_functions_see_the_engine_namespace(dview):
    dview["a"] = 5
    assert dview.apply(ia(lambda x: a + x), 1) == [6] * len(dview)  # noqa: F821
    dview.push({"b": 10, "c": [1, 2]})
    assert dview.pull("b") == [10] * len(dview)
    assert dview.pull(["b", "c"], targets=0) == [10, [1, 2]]
    assert dview["c"] == [[1, 2]] * len(dview)
    with pytest.raises(error.CompositeError) as info:
        dview.pull("never_defined")
    assert info.value.elist[0].ename == "NameError"


def test_execute_streams_output(rc):
    v = rc[[0, 1]]
    ar = v.execute("import sys; print('out', 1); print('err', file=sys.stderr)", block=True)
    assert isinstance(ar, AsyncResult) and ar.ready() and ar.successful()
    assert ar.stdout == ["out 1\n", "out 1\n"]
    assert ar.stderr == ["err\n", "err\n"]
    assert rc[0].execute("print('one')", block=True).stdout == "one\n"


def test_display_outputs(rc, capsys):
    ar = rc[[0, 1]].execute("print('hello')")
    ar.get(timeout=30)
    ar.display_outputs()
    out = capsys.readouterr().out
    assert "[stdout:0] hello" in out and "[stdout:1] hello" in out


def test_scatter_and_gather_arrays(dview):
    n = len(dview)
    a = np.arange(4 * n + 2)
    dview.scatter("part", a)
    sizes = dview.apply(ia(lambda: len(part)))  # noqa: F821
    assert sizes == [len(p) for p in np.array_split(a, n)]
    dview.execute("part = part * 2")
    got = dview.gather("part")
    assert isinstance(got, np.ndarray) and np.array_equal(got, a * 2)
    assert dview.apply(ia(lambda: part.flags.writeable)) == [True] * n  # noqa: F821


def test_scatter_and_gather_lists(dview):
    n = len(dview)
    dview.scatter("items", list(range(n)), flatten=True)
    assert dview["items"] == list(range(n))
    dview.scatter("items", list(range(3 * n)))
    assert dview.gather("items") == list(range(3 * n))
    ar = dview.gather("items", block=False)
    assert ar.get(timeout=30) == list(range(3 * n))


def test_map(dview):
    assert dview.map_sync(ia(lambda x: x ** 2), range(10)) == [x ** 2 for x in range(10)]
    assert dview.map_sync(ia(lambda x, y: x + y), [1, 2, 3], [10, 20, 30]) == [11, 22, 33]
    ar = dview.map_async(str, range(3))
    assert list(ar) == ["0", "1", "2"]


def test_remote_errors(rc):
    with pytest.raises(error.RemoteError) as info:
        rc[0].apply_sync(ia(lambda: 1 / 0))
    e = info.value
    assert e.ename == "ZeroDivisionError" and e.evalue == "division by zero"
    assert e.engine_info["engine_id"] == 0
    assert str(e) == "[Engine 0] ZeroDivisionError: division by zero"
    assert any("ZeroDivisionError" in line for line in e.render_traceback())

    with pytest.raises(error.CompositeError) as info:
        rc[[0, 1]].apply_sync(ia(lambda: 1 / 0))
    ce = info.value
    assert [x.engine_id for x in ce.elist] == [0, 1]
    assert "[Engine 1] ZeroDivisionError" in str(ce)
    with pytest.raises(error.RemoteError) as first:
        ce.raise_exception()
    assert first.value is ce.elist[0]

    ar = rc[0].apply_async(ia(lambda: 1 / 0))
    assert ar.wait(30) and not ar.successful()
    assert isinstance(ar.exception(), error.RemoteError)


def test_get_times_out(rc):
    ar = rc[0].apply_async(time.sleep, 0.5)
    with pytest.raises(error.TimeoutError):
        ar.get(timeout=0)
    with pytest.raises(TimeoutError):  # also the builtin
        ar.get(timeout=0)
    assert ar.get(timeout=30) is None


def test_async_result_details(rc):
    v = rc[[0, 1]]
    ar = v.apply_async(ia(lambda x: x + 1), 1)
    assert isinstance(ar, concurrent.futures.Future)
    done, _ = concurrent.futures.wait([ar], timeout=30)
    assert ar in done and ar.ready()
    assert ar.get() == [2, 2] and ar.result() == [2, 2]
    assert list(ar) == [2, 2] and len(ar) == 2 and ar[1] == 2
    assert ar.engine_id == [0, 1] and len(ar.msg_ids) == 1
    assert ar.elapsed > 0 and ar.progress == 2
    md = ar.metadata
    assert [m["engine_id"] for m in md] == [0, 1]
    for m in md:
        assert m["submitted"] <= m["received"] and m["started"] <= m["completed"]
        assert m["status"] == "ok" and m.stdout == ""
    assert "finished" in repr(ar)

    single = rc[0].apply_async(ia(lambda: print("x") or 3))
    assert single.get(30) == 3
    assert single.engine_id == 0 and single.stdout == "x\n"
    assert single.metadata["engine_id"] == 0
    with pytest.raises(TypeError):
        iter(single)


def test_async_result_is_awaitable(rc):
    import asyncio

    async def main():
        return await rc[0].apply_async(pow, 2, 5)

    assert asyncio.run(main()) == 32


def test_client_wait(rc):
    ars = [rc[i].apply_async(time.sleep, 0.05) for i in rc.ids]
    assert rc.wait(ars, timeout=30)
    assert all(ar.ready() for ar in ars)
    assert rc.wait(timeout=30)
    assert not rc.outstanding


def test_wait_for_engines_times_out(rc):
    rc.wait_for_engines(len(rc.ids), timeout=5)
    with pytest.raises(error.TimeoutError):
        rc.wait_for_engines(1000, timeout=0.05)


def test_sync_imports_remote_and_parallel(dview, capsys):
    with dview.sync_imports():
        import math  # noqa: F401
    assert "importing math on engine(s)" in capsys.readouterr().out
    dview.execute("pi = math.pi")
    assert dview["pi"] == [3.141592653589793] * len(dview)

    @dview.remote(block=True)
    @ia
    def where():
        import os

        return os.getpid()

    assert len(set(where())) == len(dview)

    @dview.parallel(block=True)
    @ia
    def double(chunk):
        return [2 * x for x in chunk]

    assert double(list(range(9))) == [2 * x for x in range(9)]


def test_temp_flags(dview):
    with dview.temp_flags(block=False):
        assert isinstance(dview.apply(int), AsyncResult)
    assert dview.block is True
    with pytest.raises(KeyError):
        dview.set_flags(nonsense=1)


def test_large_array_push_pull_is_writable(rc):
    v = rc[0]
    a = np.random.default_rng(0).random(2_000_000)
    v.push({"big": a}, block=True)
    remote = v.apply_sync(ia(lambda: (big.flags.writeable, float(big.sum()))))  # noqa: F821
    assert remote == (True, a.sum())
    back = v.pull("big", block=True)
    assert back.flags.writeable and np.array_equal(back, a)


def test_send_signal_interrupts_the_running_task(rc):
    ar = rc[2].execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
    deadline = time.monotonic() + 30
    while "started" not in ar.stdout and time.monotonic() < deadline:
        ar.wait(0.02)
    assert "started" in ar.stdout
    rc.send_signal(targets=2)
    with pytest.raises(error.RemoteError) as info:
        ar.get(timeout=30)
    assert info.value.ename == "KeyboardInterrupt"
    assert rc[2].apply_sync(pow, 3, 2) == 9  # the engine lives on


def test_client_sees_wrong_key(cluster, tmp_path):
    with open(cluster.connection_file) as f:
        info = json.load(f)
    info["key"] = "0" * 64
    bad = tmp_path / "wrong.json"
    bad.write_text(json.dumps(info))
    with pytest.raises(error.WrongKey):
        Client(str(bad), timeout=10)


def test_engine_death_and_hub_shutdown():
    c = cpar.Cluster(n=2, cluster_id="client-death")
    c.start_cluster_sync()
    try:
        with Client(c.connection_file) as rc:
            rc.wait_for_engines(2, timeout=30)
            ar = rc[1].apply_async(os._exit, 1)
            with pytest.raises(error.EngineError) as info:
                ar.get(timeout=60)
            assert info.value.engine_id == 1
            deadline = time.monotonic() + 30
            while 1 in rc.ids and time.monotonic() < deadline:
                time.sleep(0.01)
            assert rc.ids == [0]
            with pytest.raises(error.NoSuchEngine):
                rc[1]
            multi = rc[:].apply_async(os.getpid)
            assert len(multi.get(30)) == 1
            rc.shutdown(hub=True)
            assert rc.ids == []
        assert c.controller.wait(30), "the controller did not exit after shutdown(hub=True)"
    finally:
        c.stop_cluster_sync()
