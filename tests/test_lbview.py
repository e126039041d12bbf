"""LoadBalancedView against real clusters: apply, map, imap, flags, remote/parallel,
targets, output, and every scheme (test_lbview_deps.py: dependencies, timeouts, retries;
test_lbview_control.py: abort, bookkeeping, engine death, engines joining, memory)."""

import itertools

import numpy as np
import pytest

import cpar
from cpar import Dependency, error

from lbkit import (engine_id, fail, own_cluster, sleep_then,
                   wait_file_then, wait_until)

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------------------------
# apply, map, imap


def test_apply_variants(rc, lview):
    assert lview.block is False
    ar = lview.apply(lambda x, y=1: x * y, 6, y=7)
    assert isinstance(ar, cpar.AsyncResult)
    assert ar.get(30) == 42
    assert ar.engine_id in rc.ids
    assert ar.metadata["engine_id"] == ar.engine_id
    assert lview.apply_sync(lambda: "Hello World") == "Hello World"
    ar = lview.apply_async(engine_id)
    assert ar.get(30) == ar.engine_id
    assert ar.successful() and ar.ready()
    assert len(ar.msg_ids) == 1 and ar.msg_id == ar.msg_ids[0]
    with pytest.raises(error.RemoteError) as info:
        lview.apply_sync(fail, "nope")
    assert info.value.ename == "ValueError" and "nope" in str(info.value)
    assert info.value.engine_id in rc.ids


def test_task_spec_and_fast_packing():
    import math
    import struct

    from cpar import serialize
    from cpar.client.lbview import _pack_call, make_spec

    a, b = b"\x01" * 16, b"\x02" * 16
    spec = make_spec(retries=2, timeout=1.5, targets=[3, 1], after=[a.hex(), b],
                     follow=Dependency([a], all=False, success=True, failure=True))
    head = struct.unpack_from("<IiIHHIII", spec)
    assert head == (1, 2, 1500, 3, 6, 2, 2, 1)
    assert spec[28:36] == struct.pack("<2i", 3, 1)
    assert spec[36:68] == a + b and spec[68:] == a
    assert make_spec() == struct.pack("<IiIHHIII", 1, 0, 0, 3, 3, 0, 0, 0)
    # the direct pickling of simple calls gives the same bytes as cpar's pickler
    for f, args, kwargs in [(int, (), {}), (abs, (-3,), {}), (math.pow, (2.0, 3), {}),
                            (int, ("12",), {"base": 8}), (dict, (), {"a": None})]:
        assert _pack_call(f, args, kwargs) == serialize.pack_apply_message(f, args, kwargs)
    from cpar.client import remotefunctions as rf

    assert _pack_call(rf._map_chunk, (abs, range(3, 9)), {}) == \
        serialize.pack_apply_message(rf._map_chunk, (abs, range(3, 9)), {})
    g = lambda x: x  # noqa: E731 - by code: the general path
    assert _pack_call(g, (1,), {}) == serialize.pack_apply_message(g, (1,), {})
    assert _pack_call(rf._map_chunk, (g, [1]), {}) == \
        serialize.pack_apply_message(rf._map_chunk, (g, [1]), {})
    items = [g]
    assert _pack_call(items.append, (1,), {}) == \
        serialize.pack_apply_message(items.append, (1,), {})


def test_block_set_flags_temp_flags(rc, lview):
    lview.block = True
    assert lview.apply(lambda: 5) == 5
    lview.set_flags(block=False, retries=2, timeout=3.5)
    assert (lview.block, lview.retries, lview.timeout) == (False, 2, 3.5)
    assert isinstance(lview.apply(lambda: 5), cpar.AsyncResult)
    with pytest.raises(KeyError):
        lview.set_flags(bogus=1)
    with pytest.raises(KeyError):
        with lview.temp_flags(nope=2):
            pass
    with lview.temp_flags(block=True, retries=0, targets=[rc.ids[0]]):
        assert lview.block is True and lview.targets == [rc.ids[0]]
        assert lview.apply(engine_id) == rc.ids[0]
    assert (lview.block, lview.retries, lview.targets) == (False, 2, None)
    with pytest.raises(ValueError):
        lview.retries = -1
    with pytest.raises(TypeError):
        lview.timeout = "soon"
    v2 = rc.load_balanced_view(targets=1, block=True)
    assert v2.targets == [1] and v2.block is True
    assert "LoadBalancedView" in repr(v2)


def test_map_ordered(lview):
    assert lview.map_sync(lambda x: x * x, range(50)) == [x * x for x in range(50)]
    ar = lview.map(lambda x: x + 1, range(20))  # block=False: an AsyncMapResult
    assert isinstance(ar, cpar.AsyncMapResult)
    assert len(ar) == 20
    assert list(ar) == list(range(1, 21))
    assert ar.ready() and ar.progress == 20
    assert ar.get() == list(range(1, 21))
    assert lview.map_sync(lambda x: x, []) == []


def test_map_unordered_yields_in_completion_order(lview, tmp_path):
    # 4 tasks on 4 idle engines (leastload gives each its own); item x ends once the test
    # creates its file, in the order 3, 2, 1, 0, each after the previous one arrived.
    flag = str(tmp_path / "go")
    f = lambda x: wait_file_then(f"{flag}{x}", x)  # noqa: E731
    ar = lview.map_async(f, range(4), ordered=False)
    it = iter(ar)
    got = []
    for x in (3, 2, 1, 0):
        open(f"{flag}{x}", "w").close()
        got.append(next(it))
    assert got == [3, 2, 1, 0]
    assert ar.get(30) == [0, 1, 2, 3]  # get() is always in order
    # ordered: the items come in order whatever order they end in
    flag = str(tmp_path / "again")
    f = lambda x: wait_file_then(f"{flag}{x}", x)  # noqa: E731
    ar = lview.map_async(f, range(4), ordered=True)
    for x in (3, 2, 1):
        open(f"{flag}{x}", "w").close()
    assert wait_until(lambda: ar.progress == 3)
    assert not ar.ready()
    open(f"{flag}0", "w").close()
    assert list(ar) == [0, 1, 2, 3]


def test_map_chunksize_and_sequences(lview):
    ar = lview.map_async(lambda x: x * 2, range(10), chunksize=3)
    assert len(ar.msg_ids) == 4 and len(ar) == 10
    assert ar.get(30) == [x * 2 for x in range(10)]
    assert lview.map_sync(abs, range(-5, 5), chunksize=100) == [abs(x) for x in range(-5, 5)]
    # several sequences; the shortest one decides the length, as builtin map
    assert lview.map_sync(lambda a, b: a + b, range(5), [10] * 7, chunksize=2) == \
        [10, 11, 12, 13, 14]
    ar = lview.map_async(lambda a, b, c: (a, b, c), "abc", [1, 2, 3], (True, False, None),
                         ordered=False)
    assert sorted(ar, key=lambda t: t[1]) == [("a", 1, True), ("b", 2, False),
                                            ("c", 3, None)]
    with pytest.raises(ValueError):
        lview.map(abs, range(3), chunksize=0)
    with pytest.raises(TypeError):
        lview.map(abs)


def test_map_numpy(lview):
    arr = np.arange(10)
    out = lview.map_sync(lambda x: x * 2, arr)
    assert [int(x) for x in out] == list(range(0, 20, 2))
    big = [np.full(100_000, float(i)) for i in range(4)]  # out-of-band frames
    assert lview.map_sync(np.sum, big) == [100_000.0 * i for i in range(4)]
    doubled = lview.map_sync(lambda a: a * 2, big, chunksize=2)
    assert all(np.array_equal(d, b * 2) for d, b in zip(doubled, big))
    assert doubled[0].flags.writeable


def test_map_errors(lview):
    ar = lview.map_async(lambda x: 1 // x, [1, 0, 2])
    with pytest.raises(error.CompositeError) as info:
        ar.get(30)
    assert [e.ename for e in info.value.elist] == ["ZeroDivisionError"]
    it = iter(lview.map_async(lambda x: 1 // x, [1, 0, 2]))
    assert next(it) == 1
    with pytest.raises(error.RemoteError):
        next(it)


def test_imap_generator_bounded(rc, lview):
    pulled = []

    def source():
        for i in range(40):
            pulled.append(i)
            yield i

    seen = 0
    gen = lview.imap(lambda x: sleep_then(0.01, x * 3), source(), max_outstanding=3)
    assert pulled == []  # lazy: nothing is read before the first next()
    results = []
    for r in gen:
        results.append(r)
        seen += 1
        # at most 3 tasks in flight beyond what was yielded
        assert len(pulled) - seen <= 3
    assert results == [x * 3 for x in range(40)]

    # an endless iterator, consumed in part, several sequences, chunks, unordered
    gen = lview.imap(lambda a, b: a * b, itertools.count(), itertools.repeat(2),
                     chunksize=4, ordered=False)
    first = list(itertools.islice(gen, 30))
    gen.close()
    assert len(first) == 30 and len(set(first)) == 30
    assert all(x % 2 == 0 for x in first)
    assert set(first) <= {2 * i for i in range(30 + 4 * 2 * len(rc.ids) * 2)}

    # errors: raised in place, or yielded
    with pytest.raises(error.RemoteError):
        list(lview.imap(lambda x: 1 // x, [1, 0]))
    out = list(lview.imap(lambda x: 1 // x, [1, 0, 1], return_exceptions=True))
    assert out[0] == 1 and out[2] == 1 and isinstance(out[1], error.RemoteError)


def test_remote_and_parallel(lview):
    @lview.remote(block=True)
    def where():
        import cpar.engine.runtime as rt

        return rt.engine_id

    assert where() in lview.client.ids

    @lview.parallel(block=True)
    def double_all(chunk):
        return [2 * x for x in chunk]

    assert double_all(range(10)) == [2 * x for x in range(10)]
    assert double_all.map([[1], [2, 3]]) == [[2], [4, 6]]  # element-wise


def test_targets_restriction(rc):
    v = rc.load_balanced_view(targets=[1, 2])
    ar = v.map_async(lambda x: sleep_then(0.02, x), range(16))
    assert ar.get(30) == list(range(16))
    assert {m["engine_id"] for m in ar.metadata} <= {1, 2}
    assert {v.apply_sync(engine_id) for _ in range(6)} <= {1, 2}


def test_task_output_and_view_wait(rc, lview, capsys):
    ar = lview.apply_async(lambda: print("hello from a task") or 5)
    assert ar.get(30) == 5
    assert ar.stdout == "hello from a task\n"
    assert ar.metadata.stdout == "hello from a task\n"
    ar.display_outputs()
    # a single result shows its text without a [stdout:N] header, as ipyparallel
    assert capsys.readouterr().out == "hello from a task\n"
    m = lview.map_async(sleep_then, [0.3] * 3)
    assert len(lview.outstanding) == 3
    other = rc.load_balanced_view()
    assert other.outstanding == set()
    assert other.wait(timeout=0)  # nothing of its own to wait for
    assert lview.wait(timeout=30)
    assert m.ready() and not lview.outstanding
    assert rc.wait([m], timeout=1)


# ---------------------------------------------------------------------------------------
# schemes


SCHEMES = [
    ("leastload", []),
    ("lru", []),
    ("weighted", []),
    ("twobin", []),
    ("plainrandom", []),
    ("leastload", ["--hwm", "1"]),
    ("lru", ["--hwm", "0"]),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,extra", SCHEMES, ids=[f"{s}{''.join(e)}" for s, e in SCHEMES])
def test_schemes(scheme, extra, tmp_path):
    c, rc = own_cluster(f"lb-{scheme}{''.join(extra).replace('-', '')}", n=2,
                        controller_args=["--scheme", scheme, *extra])
    try:
        lv = rc.load_balanced_view()
        assert lv.map_sync(lambda x: x * 3, range(60)) == [x * 3 for x in range(60)]
        assert lv.apply_sync(lambda: "ok") == "ok"
        if extra == ["--hwm", "1"]:
            # one task per engine at a time: both engines work, the rest waits unassigned
            # until the test lets the running ones end
            go = str(tmp_path / "go")
            ar = lv.map_async(lambda x: wait_file_then(go, x), range(6))
            assert wait_until(lambda: sum(rc.queue_status()[e]["tasks"] for e in rc.ids) == 2)
            qs = rc.queue_status()
            assert all(qs[e]["tasks"] == 1 for e in rc.ids), qs
            assert qs["unassigned"] == 4, qs
            open(go, "w").close()
            assert ar.get(30) == list(range(6))
            assert {m["engine_id"] for m in ar.metadata} == set(rc.ids)
    finally:
        c.stop_cluster_sync()
