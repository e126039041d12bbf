"""ipyparallel API compatibility (issue 14, helper api): split/join, wait(return_when=),
progress of maps, Client.clear / DirectView.clear / importer, rc.results and rc.metadata
as dicts, purge_local_results. On the session cluster (real controller and engines)."""

import concurrent.futures
import threading

import pytest

import cpar
from cpar import interactive


@interactive
def _wait_event(path):
    """Engine side: blocks until the file ``path`` exists (the test's go signal)."""
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return path


@interactive
def _fail_first(i):
    if i == 0:
        raise ZeroDivisionError("first")
    return i


# -- split / join ---------------------------------------------------------------------


def test_split_direct_apply(rc, dview):
    ar = rc[:].apply_async(lambda: 7)
    parts = ar.split()
    assert len(parts) == len(rc.ids)
    assert all(type(p) is cpar.AsyncResult for p in parts)
    assert ar.split() is parts  # made once
    assert [p.get(timeout=30) for p in parts] == ar.get(timeout=30)
    assert [p.engine_id for p in parts] == rc.ids
    assert parts[0].split() == (parts[0],)
    joined = cpar.AsyncResult.join(*parts)
    assert joined.get(timeout=30) == [7] * len(rc.ids)
    assert cpar.AsyncResult.join(parts[1]) is parts[1]
    with pytest.raises(ValueError):
        cpar.AsyncResult.join()
    with pytest.raises(TypeError, match="AsyncResults"):
        cpar.AsyncResult.join(parts[0], 5)


def test_split_map_parts_are_lists(rc):
    amr = rc.load_balanced_view().map_async(lambda x: x * 2, range(4))
    parts = amr.split()
    amr.get(timeout=30)
    assert [p.get() for p in parts] == [[[0]], [[2]], [[4]], [[6]]]
    assert all(type(p) is cpar.AsyncResult and p.done() for p in parts)


def test_split_part_finishes_before_the_rest(rc, tmp_path):
    go = str(tmp_path / "go")
    eids = rc.ids[:2]
    v = rc[eids]
    v.scatter("rank", [0, 1], flatten=True, block=True)

    @interactive
    def first_fast(rank, path):
        if rank == 0:
            return "fast"
        return _wait_event(path)

    v.push({"_wait_event": _wait_event}, block=True)
    ar = v.apply_async(first_fast, cpar.Reference("rank"), go)
    done, pending = ar.wait(timeout=30, return_when=cpar.FIRST_COMPLETED)
    assert len(done) == 1 and len(pending) == 1
    assert done.pop().get() == "fast"
    assert not ar.done()
    open(go, "w").close()
    done, pending = ar.wait(timeout=30, return_when=cpar.ALL_COMPLETED)
    assert pending == set() and len(done) == 2
    assert ar.get(timeout=30) == ["fast", go]


def test_wait_first_exception_returns_on_the_failure(rc, tmp_path):
    go = str(tmp_path / "go")
    v = rc[rc.ids[:2]]
    v.push({"_wait_event": _wait_event}, block=True)

    @interactive
    def fail_or_wait(i, path):
        if i == 0:
            raise ValueError("boom")
        return _wait_event(path)

    amr = v.map_async(fail_or_wait, [0, 1], [go, go])
    done, pending = amr.wait(timeout=30, return_when=cpar.FIRST_EXCEPTION)
    assert len(done) == 1 and len(pending) == 1
    failed = done.pop()
    assert failed.msg_ids == amr.msg_ids[:1]
    with pytest.raises(cpar.RemoteError, match="boom"):
        failed.get()
    open(go, "w").close()
    assert amr.wait(timeout=30) is True
    done, pending = amr.wait(timeout=0, return_when=cpar.FIRST_EXCEPTION)
    assert pending == set() and len(done) == len(amr)
    assert amr.get(return_exceptions=True)[1] == go
    with pytest.raises(ValueError, match="return_when"):
        amr.wait(return_when="sometime")


def test_wait_interactive_first_exception(rc, tmp_path, capsys):
    go = str(tmp_path / "go")
    v = rc[rc.ids[:2]]
    v.push({"_wait_event": _wait_event}, block=True)

    @interactive
    def fail_or_wait(i, path):
        if i == 0:
            raise ValueError("boom")
        return _wait_event(path)

    amr = v.map_async(fail_or_wait, [0, 1], [go, go])
    amr.wait_interactive(return_when=cpar.FIRST_EXCEPTION)
    assert not amr.done()
    open(go, "w").close()
    amr.wait_interactive(return_when=cpar.ALL_COMPLETED)
    assert amr.done()


def test_map_progress_counts_elements(rc, dview):
    n = len(rc.ids)
    amr = dview.map_async(lambda x: x, range(3 * n))
    amr.wait_interactive()
    assert len(amr) == 3 * n
    assert amr.progress == len(amr)


def test_timing_before_done_raises(rc, tmp_path):
    go = str(tmp_path / "go")
    v = rc[rc.ids[0]]
    v.push({"_wait_event": _wait_event}, block=True)
    ar = v.apply_async(interactive(lambda p: _wait_event(p)), go)  # noqa: F821
    with pytest.raises(cpar.TimeoutError):
        ar.wall_time
    with pytest.raises(cpar.TimeoutError):
        ar.serial_time
    open(go, "w").close()
    ar.get(timeout=30)
    assert ar.wall_time >= 0 and ar.serial_time >= 0


def test_split_part_abort_aborts_its_request(rc, tmp_path):
    go = str(tmp_path / "go")
    v = rc[rc.ids[:2]]
    v.push({"_wait_event": _wait_event}, block=True)
    ar = v.apply_async(interactive(lambda p: _wait_event(p)), go)  # noqa: F821
    parts = ar.split()
    parts[0].abort()
    assert ar.wait(timeout=30)
    with pytest.raises(cpar.TaskAborted):
        ar.get()
    assert all(p.done() for p in parts)
    open(go, "w").close()


# -- clear / importer -----------------------------------------------------------------


def test_client_clear(rc, dview):
    dview.push({"a": 5, "_b": 6}, block=True)
    last = rc.ids[-1]
    assert rc.clear(targets=last, block=True) is None
    assert rc[rc.ids[:-1]].get("a") == [5] * (len(rc.ids) - 1)
    with pytest.raises(cpar.RemoteError, match="NameError"):
        rc[last].get("a")
    with pytest.raises(cpar.RemoteError, match="NameError"):
        rc[last].get("_b")
    ar = rc.clear()
    assert isinstance(ar, cpar.AsyncResult)
    ar.get(timeout=30)
    for eid in rc.ids:
        with pytest.raises(cpar.RemoteError, match="NameError"):
            rc[eid].get("a")
    # the engines still work, with IPython's names and __main__'s dunders intact
    dview.execute("x = 1 + 1\nimport os", block=True)
    assert dview["x"] == [2] * len(rc.ids)
    assert dview.apply_sync(interactive(lambda: __name__)) == ["__main__"] * len(rc.ids)
    with pytest.raises(cpar.error.NoSuchEngine):
        rc.clear(targets=10_000)


def test_view_clear_and_importer(rc):
    view = rc[rc.ids[-1]]
    view.push({"a": 1}, block=True)
    view.clear(block=True)
    with pytest.raises(cpar.RemoteError, match="NameError"):
        view.get("a")
    with view.importer:
        import re  # noqa: F401

    @interactive
    def findall(pat, s):
        return globals()["re"].findall(pat, s)

    assert view.apply_sync(findall, r"\w+", "hello world") == ["hello", "world"]


# -- rc.results / rc.metadata / purge_local_results -----------------------------------


def test_results_and_metadata_are_writable_dicts(rc):
    rc.results["mine"] = 5
    assert rc.results["mine"] == 5
    md = rc.metadata["mine"]  # created on first use, as a defaultdict
    assert isinstance(md, cpar.client.Metadata) and "mine" in rc.metadata
    assert "other" not in rc.metadata and "other" not in rc.results
    ar = rc[rc.ids[0]].apply_async(lambda: 3)
    ar.get(timeout=30)
    # the view's AsyncResult owns its request: finished, it leaves the client's caches
    assert ar.msg_id not in rc.results and ar.msg_id not in rc.metadata
    rc.get_result(ar.msg_id, owner=False)  # a non-owning look lists it again
    assert rc.results[ar.msg_id] == 3
    assert rc.metadata[ar.msg_id]["engine_id"] == rc.ids[0]
    assert {"mine", ar.msg_id} <= set(rc.results)
    del rc.results["mine"]
    assert "mine" not in rc.results
    rc.purge_local_results(ar)
    assert ar.msg_id not in rc.results and ar.msg_id not in rc.metadata
    assert ar.get() == 3  # the held result keeps its value


def test_purge_local_results_outstanding_and_all(rc, tmp_path):
    go = str(tmp_path / "go")
    v = rc[rc.ids[0]]
    v.push({"_wait_event": _wait_event}, block=True)
    ar = v.apply_async(interactive(lambda p: _wait_event(p)), go)  # noqa: F821
    with pytest.raises(RuntimeError, match="outstanding"):
        rc.purge_local_results(ar)
    with pytest.raises(RuntimeError, match="outstanding"):
        rc.purge_local_results("all")
    open(go, "w").close()
    ar.get(timeout=30)
    rc.results["x"] = 1
    rc.purge_local_results("all")
    assert len(rc.results) == 0 and len(rc.metadata) == 0
    with pytest.raises(TypeError, match="purge_local_results"):
        rc.purge_local_results([3.5])


def test_purge_local_results_by_target(rc):
    ars = [rc[e].apply_async(lambda: 1) for e in rc.ids[:2]]
    for ar in ars:
        ar.get(timeout=30)
    rc.get_result([ar.msg_id for ar in ars], owner=False)
    assert all(ar.msg_id in rc.results for ar in ars)
    rc.purge_local_results(targets=[rc.ids[0]])
    assert ars[0].msg_id not in rc.results
    assert ars[1].msg_id in rc.results


# -- odds and ends --------------------------------------------------------------------


def test_await_plain_future_and_wait_for_engines_future(rc):
    f = concurrent.futures.Future()
    threading.Thread(target=f.set_result, args=("done",)).start()
    assert rc.wait([f], timeout=30)
    assert f.result() == "done"
    fut = rc.wait_for_engines(len(rc.ids), block=False)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) is None


def test_misc_api(rc, dview):
    with pytest.raises(TypeError):
        rc[None]
    gathered = dview.gather("nothing_here_yet", block=False)
    assert isinstance(gathered, cpar.AsyncMapResult)
    with pytest.raises(cpar.RemoteError):
        gathered.get(timeout=30)
    amr = rc.load_balanced_view().map_async(lambda x: x, range(3))
    amr.get(timeout=30)
    with pytest.raises(ValueError):
        amr.get_dict()
    assert len(dview) == len(rc.ids)
    ar = dview.apply_async(lambda: 1)
    ar.get(timeout=30)
    assert ar.msg_ids[0] in dview.history
    assert all(c is not None for c in ar.completed)
    assert ar.engine_id == rc.ids
    assert cpar.FIRST_EXCEPTION == concurrent.futures.FIRST_EXCEPTION


def test_split_of_get_result_view(rc, tmp_path):
    go = str(tmp_path / "go")
    v = rc[rc.ids[:1]]
    v.push({"_wait_event": _wait_event}, block=True)
    first = v.apply_async(interactive(lambda p: _wait_event(p)), go)  # noqa: F821
    second = rc[rc.ids[1]].apply_async(lambda: "quick")
    second.get(timeout=30)
    both = rc.get_result([first.msg_id, second.msg_id], block=False)
    parts = both.split()
    assert len(parts) == 2
    done, pending = both.wait(timeout=30, return_when=cpar.FIRST_COMPLETED)
    assert [p.get() for p in done] == ["quick"] and len(pending) == 1
    open(go, "w").close()
    done, pending = both.wait(timeout=30, return_when=cpar.ALL_COMPLETED)
    assert not pending
    assert [p.get() for p in parts] == [go, "quick"]
