"""LoadBalancedView against real clusters: apply, map, imap, flags, every scheme,
dependencies (after, follow, Dependency, @require, @depend), timeouts, retries, abort,
engine death, engines joining, bookkeeping (queue_status, result_status, get_result,
purge_results) and the controller's memory over many tasks."""

import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cpar
from cpar import Dependency, depend, error, paths, require

pytestmark = pytest.mark.timeout(120)


# Functions sent to engines must travel by code (this module is not importable there):
# nested functions and lambdas do; module-level ones are marked interactive.

@cpar.interactive
def engine_id():
    import cpar.engine.runtime as rt

    return rt.engine_id


@cpar.interactive
def sleep_then(seconds, value=None):
    import time

    time.sleep(seconds)
    return value


@cpar.interactive
def fail(message="boom"):
    raise ValueError(message)


@cpar.interactive
def fail_first_time(marker):
    """Raises the first time any engine runs it (leaving ``marker``, a file naming that
    engine), and returns ``(failed engine, this engine)`` after that."""
    import os

    import cpar.engine.runtime as rt

    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(marker) as f:
            return int(f.read()), rt.engine_id
    with os.fdopen(fd, "w") as f:
        f.write(str(rt.engine_id))
    raise RuntimeError(f"failing on engine {rt.engine_id} the first time")


@cpar.interactive
def wait_file_then(path, value=None, limit=60.0):
    """Returns value once the file `path` exists (the test creates it: an event, not a
    guess at how long something takes); raises after `limit` seconds without it."""
    import os
    import time

    end = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return value


@cpar.interactive
def touch_then_sleep(path, seconds):
    """Creates `path` (the test sees the task running), then sleeps."""
    import time

    open(path, "w").close()
    time.sleep(seconds)


def wait_until(fn, timeout=30.0):
    """Polls fn() until it is true or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fn()
    return value


def started(ar):
    return ar.metadata["started"]


def completed(ar):
    return ar.metadata["completed"]


@pytest.fixture
def lview(rc):
    return rc.load_balanced_view()


def own_cluster(cluster_id, n=2, **kwargs):
    c = cpar.Cluster(n=n, cluster_id=cluster_id, **kwargs)
    rc = c.start_and_connect_sync()
    rc.wait_for_engines(n, timeout=30)
    return c, rc


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


# ---------------------------------------------------------------------------------------
# graph dependencies


def test_after_chain(lview):
    a = lview.apply_async(sleep_then, 0.5, "A")
    with lview.temp_flags(after=a):
        b = lview.apply_async(sleep_then, 0.05, "B")
    with lview.temp_flags(after=[b.msg_id]):  # a hex msg id
        c = lview.apply_async(sleep_then, 0.0, "C")
    assert [x.get(30) for x in (a, b, c)] == ["A", "B", "C"]
    assert started(b) >= completed(a)
    assert started(c) >= completed(b)


def test_seed_002_after_two(lview):
    # seed 002: "require tasks B and C to finish before task A starts"
    arB = lview.apply_async(sleep_then, 0.4, "B")
    arC = lview.apply_async(sleep_then, 0.2, "C")
    with lview.temp_flags(after=[arB, arC]):
        arA = lview.apply_async(lambda: "A")
    assert arA.get(30) == "A"
    assert started(arA) >= completed(arB)
    assert started(arA) >= completed(arC)


def test_diamond(lview):
    a = lview.apply_async(sleep_then, 0.2, 1)
    with lview.temp_flags(after=a):
        b = lview.apply_async(sleep_then, 0.3, 2)
        c = lview.apply_async(sleep_then, 0.1, 3)
    with lview.temp_flags(after=Dependency([b, c])):
        d = lview.apply_async(lambda: 4)
    assert [x.get(30) for x in (a, b, c, d)] == [1, 2, 3, 4]
    assert started(b) >= completed(a) and started(c) >= completed(a)
    assert started(d) >= max(completed(b), completed(c))


def test_dependency_any(lview, tmp_path):
    release = str(tmp_path / "release-slow")
    slow = lview.apply_async(wait_file_then, release, "slow")  # ends when the test says
    fast = lview.apply_async(sleep_then, 0.1, "fast")
    with lview.temp_flags(after=Dependency([slow, fast], all=False)):
        either = lview.apply_async(lambda: "either")
    assert either.get(30) == "either"
    assert not slow.ready()  # `either` did not wait for it
    open(release, "w").close()
    assert slow.get(30) == "slow"
    assert started(either) >= completed(fast)
    assert started(either) < completed(slow)


def test_dependency_object():
    d = Dependency(["aa" * 16, b"\x01" * 16], all=False, success=False, failure=True)
    assert len(d) == 2 and "aa" * 16 in d and ("01" * 16) in d
    assert d.as_dict() == {"dependencies": sorted(d), "all": False, "success": False,
                           "failure": True}
    assert d.flags == 4
    assert Dependency(d).failure is True
    assert d.check(completed=[], failed=["aa" * 16])
    assert not d.check(completed=["aa" * 16], failed=[])
    with pytest.raises(ValueError):
        Dependency([], success=False, failure=False)
    with pytest.raises(TypeError):
        Dependency([3.5])


def test_success_only_after_failure_is_impossible(lview):
    bad = lview.apply_async(fail)
    with lview.temp_flags(after=bad):
        nxt = lview.apply_async(lambda: "never")
    with pytest.raises(error.ImpossibleDependency):
        nxt.get(30)


def test_failure_only(lview):
    bad = lview.apply_async(fail)
    good = lview.apply_async(lambda: "fine")
    only_failed = Dependency([bad], success=False, failure=True)
    with lview.temp_flags(after=only_failed):
        cleanup = lview.apply_async(lambda: "cleaned")
    assert cleanup.get(30) == "cleaned"
    with lview.temp_flags(after=Dependency([good], success=False, failure=True)):
        never = lview.apply_async(lambda: "never")
    with pytest.raises(error.ImpossibleDependency):
        never.get(30)
    # both flags: runs whatever happened
    with lview.temp_flags(after=Dependency([bad, good], success=True, failure=True)):
        assert lview.apply_async(lambda: "any").get(30) == "any"


def test_follow(lview):
    first = lview.apply_async(engine_id)
    where = first.get(30)
    with lview.temp_flags(follow=first):
        followers = [lview.apply_async(engine_id) for _ in range(6)]
    assert [f.get(30) for f in followers] == [where] * 6
    # follow + after: the same engine, after it ended
    with lview.temp_flags(follow=first, after=followers[-1]):
        assert lview.apply_sync(engine_id) == where


def test_timeout_on_dependency(lview, tmp_path):
    release = str(tmp_path / "release-long")
    long = lview.apply_async(wait_file_then, release, "long")  # ends when the test says
    with lview.temp_flags(after=long, timeout=0.5):
        waiting = lview.apply_async(lambda: "late")
    with pytest.raises(error.DependencyTimeout):
        waiting.get(30)
    # the timeout ended it, not its dependency: that one is still running
    assert not long.ready()
    open(release, "w").close()
    assert long.get(30) == "long"


# ---------------------------------------------------------------------------------------
# retries, functional dependencies


def test_retries(lview, tmp_path):
    with lview.temp_flags(retries=1):
        ar = lview.apply_async(fail_first_time, str(tmp_path / "a"))
        failed_on, ran_on = ar.get(30)
    assert ran_on == ar.engine_id and ran_on != failed_on
    with pytest.raises(error.RemoteError) as info:
        lview.apply_sync(fail_first_time, str(tmp_path / "b"))
    assert info.value.ename == "RuntimeError"
    # a map: each task fails on its first engine and is retried on another
    markers = [str(tmp_path / f"m{i}") for i in range(6)]
    with lview.temp_flags(retries=1):
        out = lview.map_sync(fail_first_time, markers)
    assert all(first != then for first, then in out)
    # retries are bounded: a task failing everywhere ends with its last error
    with lview.temp_flags(retries=2):
        ar = lview.apply_async(fail, "always")
        with pytest.raises(error.RemoteError):
            ar.get(30)


def test_require(lview):
    @require("no_such_module_xyz")
    def needs_missing(x):
        return x

    # Every engine refuses it (the task needs no timeout to end): the error says so.
    with pytest.raises(error.ImpossibleDependency,
                       match=rf"requirements .*: {len(lview.client.ids)} engine\(s\) tried"):
        lview.apply_async(needs_missing, 1).get(30)

    @require(__import__("math"), "json.decoder")  # a module counts as its name
    def uses_math(x):
        return math.sqrt(x), json.decoder.__name__  # noqa: F821 - bound by @require

    assert lview.apply_sync(uses_math, 16) == (4.0, "json.decoder")

    @cpar.interactive
    def helper_fn(x):
        return x + 100

    @require(helper_fn, offset=7)
    def uses_helper(x):
        return helper_fn(x) + offset  # noqa: F821 - pushed by @require

    assert lview.apply_sync(uses_helper, 1) == 108
    assert lview.map_sync(uses_math, [1, 4]) == [(1.0, "json.decoder"), (2.0, "json.decoder")]


def test_depend(rc, lview):
    @depend(lambda: True)
    def yes():
        return "yes"

    assert lview.apply_sync(yes) == "yes"

    @depend(lambda: False)
    def no():
        return "no"

    with pytest.raises(error.ImpossibleDependency):
        lview.apply_sync(no)

    def on_engine(eid):
        import cpar.engine.runtime as rt

        return rt.engine_id == eid

    target = rc.ids[-1]

    @depend(on_engine, target)
    def where():
        import cpar.engine.runtime as rt

        return rt.engine_id

    assert {lview.apply_sync(where) for _ in range(4)} == {target}

    @depend(lambda: 1 // 0)
    def broken_check():
        return 1

    with pytest.raises(error.RemoteError) as info:  # the check's own error
        lview.apply_sync(broken_check)
    assert info.value.ename == "ZeroDivisionError"


def test_require_in_main_script(cluster):
    """A @require/@depend-wrapped function of a script's __main__ travels by code."""
    code = textwrap.dedent(f"""
        import cpar
        rc = cpar.Client({cluster.connection_file!r})
        rc.wait_for_engines(1, timeout=30)
        lv = rc.load_balanced_view()
        scale = 3

        def small(x):
            return x < 10

        @cpar.require("math")
        @cpar.depend(small, 5)
        def f(x):
            return math.floor(x * 2.5)

        print(lv.apply_sync(f, 4), lv.map_sync(f, [1, 2]))
        rc.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10", "[2,", "5]"]


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

    with pytest.raises(ValueError):  # pending results are not purged
        slow = lview.apply_async(sleep_then, 0.3)
        rc.purge_results(slow)
    slow.get(30)
    rc.purge_results([ar])
    with pytest.raises(KeyError):
        rc.get_result(ar.msg_id)
    # the controller still knows how it ended
    st = rc.result_status([ar.msg_id])
    assert st["completed"] == [ar.msg_id]
    rc.purge_results("all")
    with pytest.raises(KeyError):
        rc.get_result(m.msg_ids[0])
    with pytest.raises(KeyError):
        rc.get_result("ab" * 16)
    st = rc.result_status(["ab" * 16])
    assert st["unknown"] == ["ab" * 16]

    # results nobody holds are forgotten (weakly held)
    gone = lview.apply_async(abs, -9)
    gone.get(30)
    msg_id = gone.msg_id
    del gone
    gc.collect()
    with pytest.raises(KeyError):
        rc.get_result(msg_id)


def test_result_status_of_another_clients_tasks(cluster, rc, lview):
    slow = lview.apply_async(sleep_then, 0.5, "slow")
    done = lview.apply_async(abs, -1)
    done.get(30)
    other = cpar.Client(cluster.connection_file)
    try:
        st = other.result_status([slow.msg_id, done.msg_id])  # asked at the controller
        assert st["pending"] == [slow.msg_id] and st["completed"] == [done.msg_id]
        with pytest.raises(KeyError):
            other.get_result(slow.msg_id)  # results go to the client that sent them
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
    c, rc = own_cluster("lb-lost-client", n=1, controller_args=["--hwm", "1"])
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
