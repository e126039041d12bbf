"""ipyparallel compatibility (issue 14): behaviour an ipyparallel user relies on, on the
session cluster (real controller and engines)."""

import pytest

from cpar import interactive


@interactive
def _kw(**kw):
    return kw


# -- apply: a keyword argument named like apply's own parameter -----------------------


@pytest.mark.parametrize("kind", ["direct", "balanced"])
def test_apply_kwarg_named_f(rc, kind):
    view = rc[rc.ids[0]] if kind == "direct" else rc.load_balanced_view()
    assert view.apply_sync(lambda **kw: kw, f=5) == {"f": 5}
    assert view.apply_async(_kw, f=6, self=7).get(timeout=30) == {"f": 6, "self": 7}
    view.block = True
    assert view.apply(_kw, f=8) == {"f": 8}


# -- view['a.b']: attributes of engine objects ----------------------------------------


def test_nested_setitem_getitem(dview):
    dview.execute("import types; ns_obj = types.SimpleNamespace(inner=types.SimpleNamespace())")
    dview["ns_obj.b"] = 5
    dview["ns_obj.inner.c"] = "x"
    assert dview["ns_obj.b"] == [5] * len(dview)
    assert dview.pull(["ns_obj.b", "ns_obj.inner.c"]) == [[5, "x"]] * len(dview)
    # no variable literally named "ns_obj.b" was made
    assert dview.apply_sync(lambda: "ns_obj.b" in globals()) == [False] * len(dview)
    with pytest.raises(Exception, match="missing_obj"):
        dview["missing_obj.b"] = 1


# -- negative targets, resolved when the view is made ---------------------------------


def test_negative_targets_resolved(rc):
    last = rc.ids[-1]
    assert rc.direct_view(-1).targets == last
    assert rc[-1].targets == last
    assert rc[-2:].targets == rc.ids[-2:]
    assert rc.direct_view([0, -1]).targets == [rc.ids[0], last]
    assert rc.direct_view("all").targets == "all"
    assert rc.load_balanced_view(-1).targets == [last]
    assert rc.load_balanced_view([-1, -2]).targets == [last, rc.ids[-2]]
    assert rc.load_balanced_view(None).targets is None
    lv = rc.load_balanced_view()
    lv.targets = -1
    assert lv.targets == [last]
    assert lv.apply_sync(lambda: __import__("cpar.engine").engine.__name__) == "cpar.engine"
    assert rc.activate(-1).targets == last
    v = rc.activate(-1, suffix="_last")
    assert rc.active_views["_last"] is v and v.targets == last
    assert rc[-1].apply_sync(lambda: 7) == 7


def test_client_getitem_none_is_type_error(rc):
    with pytest.raises(TypeError):
        rc[None]
    with pytest.raises(TypeError):
        rc["0"]


# -- errors: what ends a request without a user exception is a RemoteError ------------


def test_scheduler_errors_are_remote_errors(rc, tmp_path):
    import cpar
    from cpar import error

    for cls in (error.EngineError, error.ImpossibleDependency, error.DependencyTimeout,
                error.TaskTimeout, error.InvalidDependency, error.UnmetDependency):
        assert issubclass(cls, cpar.RemoteError) and issubclass(cls, cpar.KernelError)
        e = cls("why", 2)
        assert e.ename == cls.__name__ and isinstance(e.engine_info, dict)
    assert not issubclass(error.TaskAborted, cpar.RemoteError)
    assert issubclass(error.TaskAborted, cpar.KernelError)

    lv = rc.load_balanced_view()
    # a dependency that names no task: the task ends in InvalidDependency
    with lv.temp_flags(after="12345"):
        with pytest.raises(cpar.RemoteError) as info:
            lv.apply_sync(lambda: 1)
    assert isinstance(info.value, cpar.InvalidDependency)
    assert info.value.ename == "InvalidDependency"
    with lv.temp_flags(after="abcd"):  # hex, but no msg id
        with pytest.raises(cpar.InvalidDependency):
            lv.apply_sync(lambda: 1)
    # following tasks of two different engines: impossible, a RemoteError
    e0, e1 = rc.ids[0], rc.ids[1]
    ar0 = rc.load_balanced_view(targets=[e0]).apply_async(lambda: 0)
    ar1 = rc.load_balanced_view(targets=[e1]).apply_async(lambda: 1)
    assert (ar0.get(30), ar1.get(30)) == (0, 1)
    with lv.temp_flags(follow=[ar0, ar1]):
        with pytest.raises(cpar.RemoteError) as info:
            lv.apply_sync(lambda: 1)
    assert isinstance(info.value, error.ImpossibleDependency)
    assert info.value.ename == "ImpossibleDependency"
    # waiting past the timeout: TaskTimeout (still a DependencyTimeout)
    release = tmp_path / "release"
    blocker = rc.load_balanced_view(targets=[e0]).apply_async(
        _wait_for_file, str(release))
    try:
        with lv.temp_flags(after=blocker, timeout=0.2):
            with pytest.raises(cpar.RemoteError) as info:
                lv.apply_sync(lambda: 1)
        assert isinstance(info.value, error.TaskTimeout)
        assert isinstance(info.value, error.DependencyTimeout)
        assert info.value.ename == "TaskTimeout"
    finally:
        release.write_text("go")
    assert blocker.get(30) == "released"


@interactive
def _wait_for_file(path):
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return "released"


def test_engine_death_is_a_remote_error():
    import os

    import cpar

    c = cpar.Cluster(n=2, cluster_id="compat-crash")
    c.start_cluster_sync()
    try:
        with cpar.Client(c.connection_file) as rc:
            rc.wait_for_engines(2, timeout=30)
            first, second = rc.ids
            with pytest.raises(cpar.RemoteError) as info:  # direct (test_z_crash_mux)
                rc[first].apply_sync(os._exit, 1)
            assert isinstance(info.value, cpar.EngineError)
            assert info.value.ename == "EngineError" and info.value.engine_id == first
            lv = rc.load_balanced_view(targets=[second])  # balanced (test_z_crash)
            with pytest.raises(cpar.RemoteError) as info:
                lv.apply_sync(os._exit, 1)
            assert isinstance(info.value, cpar.EngineError)
            assert info.value.ename == "EngineError"
    finally:
        c.stop_cluster_sync()
    assert not c.engines.running and not c.controller.running


# -- small differences: gather's result, get_dict of a map, timings before the end ----


def test_gather_async_is_a_map_result(dview):
    import cpar

    dview.scatter("gx", list(range(10)))
    ar = dview.gather("gx", block=False)
    assert isinstance(ar, cpar.AsyncMapResult)
    assert ar.get(30) == list(range(10))
    assert list(ar) == list(range(10)) and len(ar) == 10


def test_get_dict_of_a_balanced_map_is_value_error(rc):
    amr = rc.load_balanced_view().map_async(lambda x: x, range(6))
    assert amr.get(30) == list(range(6))
    with pytest.raises(ValueError):
        amr.get_dict()


def test_timings_raise_until_finished(rc, tmp_path):
    import cpar

    release = tmp_path / "go"
    ar = rc[rc.ids[0]].apply_async(_wait_for_file, str(release))
    try:
        with pytest.raises(cpar.TimeoutError):
            ar.wall_time
        with pytest.raises(cpar.TimeoutError):
            ar.serial_time
    finally:
        release.write_text("go")
    assert ar.get(30) == "released"
    assert ar.wall_time >= 0 and ar.serial_time >= 0


# -- return_exceptions, metadata attributes -------------------------------------------


@interactive
def _inv(x):
    return 1 / x


def test_get_return_exceptions(rc):
    import cpar

    ar = rc[:].apply_async(lambda: 1 / 0)
    assert ar.wait(30)
    out = ar.get(return_exceptions=True)
    assert len(out) == len(rc.ids)
    assert all(isinstance(e, cpar.RemoteError) and e.ename == "ZeroDivisionError"
               for e in out)
    with pytest.raises(cpar.CompositeError):
        ar.get()
    one = rc[rc.ids[0]].apply_async(lambda: [][1])
    assert one.get(30, return_exceptions=True).ename == "IndexError"
    ok = rc[:].apply_async(lambda: 3)
    assert ok.get(30, return_exceptions=True) == [3] * len(rc.ids)


@pytest.mark.parametrize("kind", ["direct", "balanced"])
def test_map_return_exceptions(rc, kind):
    view = rc[:] if kind == "direct" else rc.load_balanced_view()
    out = view.map_sync(_inv, [1, 0, 2], return_exceptions=True)
    ok = [x for x in out if not isinstance(x, Exception)]
    errors = [x for x in out if isinstance(x, Exception)]
    assert errors and all(e.ename == "ZeroDivisionError" for e in errors)
    assert 1.0 in ok and 0.5 in ok
    amr = view.map_async(_inv, [4, 0], return_exceptions=True)
    assert amr.get(30)[0] == 0.25 and isinstance(amr.get()[-1], Exception)
    assert isinstance(list(amr)[-1], Exception)
    with pytest.raises(Exception):
        view.map_sync(_inv, [1, 0])


def test_metadata_attributes(rc):
    import datetime

    ar = rc[rc.ids[0]].apply_async(lambda: 5)
    assert ar.get(30) == 5
    assert ar.engine_id == rc.ids[0] and ar.status == "ok" and ar.error is None
    for name in ("submitted", "started", "completed", "received"):
        assert isinstance(getattr(ar, name), datetime.datetime), name
    assert ar.started <= ar.completed
    many = rc[:].apply_async(lambda: 1)
    many.get(30)
    assert many.engine_id == rc.ids and len(many.completed) == len(rc.ids)
    assert "completed" in dir(many)
    with pytest.raises(AttributeError):
        many.no_such_field


# -- missing API: Reference, wait(return_when=), len(view), view.history ---------------


def test_reference(dview, rc):
    import cpar

    dview.execute("import types; ref_a = 10; ref_ns = types.SimpleNamespace(b=3)")
    assert dview.apply_sync(lambda x, y: x + y, cpar.Reference("ref_a"), 1) == \
        [11] * len(dview)
    lv = rc.load_balanced_view()
    assert lv.apply_sync(lambda xs: xs, [cpar.Reference("ref_ns.b"), 2]) == [3, 2]
    assert lv.apply_sync(lambda x: x, x=cpar.Reference("len")) is len
    with pytest.raises(cpar.RemoteError) as info:
        rc[rc.ids[0]].apply_sync(lambda x: x, cpar.Reference("ref_missing"))
    assert info.value.ename == "NameError"


def test_wait_return_when(rc, tmp_path):
    import concurrent.futures

    import cpar

    assert cpar.FIRST_COMPLETED is concurrent.futures.FIRST_COMPLETED
    assert cpar.FIRST_EXCEPTION is concurrent.futures.FIRST_EXCEPTION
    assert cpar.ALL_COMPLETED is concurrent.futures.ALL_COMPLETED
    release = tmp_path / "go"
    slow = rc[rc.ids[0]].apply_async(_wait_for_file, str(release))
    try:
        fast = rc[rc.ids[1]].apply_async(lambda: 1)
        bad = rc[rc.ids[2]].apply_async(lambda: 1 / 0)
        assert rc.wait([slow, fast], return_when=cpar.FIRST_COMPLETED) is True
        assert fast.done() and not slow.done()
        assert rc.wait([slow, bad], return_when=cpar.FIRST_EXCEPTION) is True
        assert bad.done() and not slow.done()
        assert rc[:].wait([slow, fast], timeout=0.2) is False
        # a foreign Future that never finishes is waited for too
        assert rc.wait([concurrent.futures.Future()], timeout=0.1) is False
    finally:
        release.write_text("go")
    assert rc.wait([slow, fast], timeout=30, return_when=cpar.ALL_COMPLETED) is True
    with pytest.raises(ValueError):
        rc.wait([fast], return_when="SOMETIMES")


def test_len_and_history_of_views(rc):
    lv = rc.load_balanced_view()
    assert len(lv) == len(rc.ids)
    assert len(rc.load_balanced_view([rc.ids[0], rc.ids[1]])) == 2
    dv = rc[:]
    assert len(dv) == len(rc.ids) and lv.history == [] and dv.history == []
    ar = lv.apply_async(lambda: 1)
    amr = lv.map_async(lambda x: x, range(3))
    assert lv.history == ar.msg_ids + amr.msg_ids
    d1 = dv.apply_async(lambda: 2)
    dv.push({"hist_x": 1}, block=True)
    assert dv.history[0] == d1.msg_id and len(dv.history) == 2
    # rc.history lists a request to several engines once per engine ("<id>:<engine>")
    assert set(dv.history) <= {m.split(":")[0] for m in rc.history}
    assert set(lv.history) <= set(rc.history)
    amr.get(30)
    ar.get(30)
    d1.get(30)


def test_client_results_and_metadata(rc):
    one = rc[rc.ids[0]].apply_async(lambda: 41)
    many = rc[:].apply_async(lambda: 1)
    bad = rc.load_balanced_view().apply_async(lambda: 1 / 0)
    for ar in (one, many):
        ar.get(30)
    bad.wait(30)
    ids = [one.msg_id, many.msg_id, bad.msg_id]
    assert not set(ids) & set(rc.results), "owned results stay with their AsyncResults"
    assert not set(ids) & set(rc.metadata)
    rc.get_result(ids, owner=False)
    assert rc.results[one.msg_id] == 41
    assert rc.results[many.msg_id] == [1] * len(rc.ids)
    assert rc.results[bad.msg_id].ename == "ZeroDivisionError"
    assert {one.msg_id, many.msg_id, bad.msg_id} <= set(rc.results)
    md = rc.metadata[one.msg_id]
    assert md["engine_id"] == rc.ids[0] and md.status == "ok" and md.completed is not None
    assert rc.metadata[bad.msg_id].status == "error"
    assert [m["engine_id"] for m in rc.metadata[many.msg_id]] == rc.ids
    with pytest.raises(KeyError):
        rc.results["00" * 16]


def test_client_metadata_lists_pending_requests_until_done(rc, tmp_path):
    go = tmp_path / "go"

    def wait_for(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.01)
        return 7

    ar = rc[rc.ids[0]].apply_async(wait_for, str(go))
    assert ar.msg_id in rc.metadata and ar.msg_id not in rc.results
    assert rc.metadata[ar.msg_id]["engine_id"] == rc.ids[0]
    go.touch()
    assert ar.get(30) == 7
    assert ar.msg_id not in rc.metadata and ar.msg_id not in rc.results
    assert rc.get_result(ar.msg_id, owner=True).get() == 7
    assert ar.msg_id not in rc.results  # owner=True publishes nothing
    rc.get_result(ar.msg_id)
    assert rc.results[ar.msg_id] == 7


def test_wait_for_engines_nonblocking_is_a_future(rc):
    import concurrent.futures

    import cpar

    f = rc.wait_for_engines(len(rc.ids), block=False)
    assert isinstance(f, concurrent.futures.Future)
    assert f.result(30) is None
    never = rc.wait_for_engines(len(rc.ids) + 50, timeout=0.2, block=False)
    with pytest.raises(cpar.TimeoutError):
        never.result(30)


def test_wait_interactive_return_when(rc, tmp_path, capsys):
    import cpar

    release = tmp_path / "go"
    slow = rc[rc.ids[0]].apply_async(_wait_for_file, str(release))
    try:
        bad = rc[rc.ids[1]].apply_async(lambda: 1 / 0)
        assert rc.wait_interactive([slow, bad], return_when=cpar.FIRST_EXCEPTION) is True
        assert bad.done() and not slow.done()
        assert rc.wait_interactive([slow], timeout=0.2) is False
    finally:
        release.write_text("go")
    assert rc.wait_interactive([slow, bad], return_when=cpar.ALL_COMPLETED) is True
    capsys.readouterr()
