"""executor, cpar.remote / cpar.parallel, joblib backend, imap cancel, pickler switches,
become_dask: against the session's real cluster (tests/conftest.py)."""

import concurrent.futures
import itertools
import os
import sys

import pytest

import cpar
from cpar import Reference, interactive
from cpar.client.executor import LazyMapIterator, ViewExecutor
from cpar.client.lbview import LoadBalancedView


def engine_pids(rc):
    return set(rc[:].apply_sync(os.getpid))


# -- executor -------------------------------------------------------------------------

def test_client_executor_submit_and_map(rc):
    ex = rc.executor()
    assert isinstance(ex, ViewExecutor) and isinstance(ex.view, LoadBalancedView)
    assert ex.submit(pow, 2, 10).result() == 1024
    gen = ex.map(lambda x, y: x * y, range(6), (i + 1 for i in range(6)))
    assert isinstance(gen, LazyMapIterator)
    assert list(gen) == [x * (x + 1) for x in range(6)]
    assert ex.submit(os.getpid).result() in engine_pids(rc)


def test_executor_targets(rc):
    pid1 = rc[1].apply_sync(os.getpid)
    ex = rc.executor(targets=[1])
    assert {f.result() for f in [ex.submit(os.getpid) for _ in range(6)]} == {pid1}


def test_executor_context_waits_and_shutdown_refuses(rc):
    import time

    view = rc.load_balanced_view()
    with view.executor as ex:
        fut = ex.submit(time.sleep, 0.3)
        results = ex.map(abs, [-1, -2, -3])
    assert fut.done()  # leaving the block waited for it
    assert list(results) == [1, 2, 3]
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(abs, 1)
    assert concurrent.futures.wait([view.executor.submit(abs, -5)]).done


def test_executor_errors(rc):
    ex = rc.executor()
    with pytest.raises(TypeError, match="callable"):
        ex.submit(5)
    with pytest.raises(TypeError, match="iterable"):
        ex.map(abs)

    def boom(x):
        raise ValueError(f"bad {x}")

    fut = ex.submit(boom, 3)
    assert isinstance(fut.exception(), cpar.RemoteError)
    assert "bad 3" in str(fut.exception())


def test_directview_executor(rc):
    ex = rc[:].executor
    assert len(ex.view) == len(rc.ids)
    assert sorted(ex.submit(os.getpid).result()) == sorted(engine_pids(rc))


# -- imap ------------------------------------------------------------------------------

def test_imap_cancel_stops_sending(rc):
    view = rc.load_balanced_view()
    it = view.imap(abs, itertools.count(), max_outstanding=2)
    assert isinstance(it, LazyMapIterator)
    got = [next(it) for _ in range(3)]
    it.cancel()
    assert got == [0, 1, 2]
    assert list(it) == []
    rc.wait(timeout=30)
    assert 3 <= len(view.history) <= 5  # never more than max_outstanding ahead
    it.cancel()  # twice is fine
    assert it.cancelled


def test_imap_unordered_cancel(rc):
    view = rc.load_balanced_view()
    it = view.imap(abs, range(-20, 0), ordered=False, max_outstanding=3)
    first = next(it)
    it.cancel()
    assert first in range(1, 21)
    rc.wait(timeout=30)
    assert len(view.history) <= 4


def test_directview_imap_is_lazy_iterator(dview):
    it = dview.imap(abs, [-1, -2, -3, -4])
    assert isinstance(it, LazyMapIterator)
    assert list(it) == [1, 2, 3, 4]


# -- cpar.remote / cpar.parallel -------------------------------------------------------

def test_module_remote(rc):
    v = rc[-1]

    @cpar.remote(v, block=True)
    def mul(x, y=5):
        """multiplies x by y"""
        return x * y

    assert mul.__name__ == "mul"
    assert "RemoteFunction" in mul.__doc__ and "multiplies x by y" in mul.__doc__
    assert mul(5) == 25 and mul(2, 3) == 6 and mul(x=5, y=2) == 10


def test_module_remote_flags_on_lbview(rc):
    pid2 = rc[2].apply_sync(os.getpid)
    lv = rc.load_balanced_view()
    where = cpar.remote(lv, block=True, targets=[2])(os.getpid)
    assert {where() for _ in range(5)} == {pid2}
    assert lv.targets is None  # the flag held for the calls only
    ar = cpar.remote(lv, block=False)(abs)(-3)
    assert ar.get(timeout=30) == 3


def test_module_parallel(rc):
    @cpar.parallel(rc[:2], block=True)
    def double(xs):
        """doubles"""
        return [2 * x for x in xs]

    assert "ParallelFunction" in double.__doc__ and "doubles" in double.__doc__
    assert double([1, 2, 3, 4]) == [2, 4, 6, 8]
    assert double.map([[1], [2, 3]]) == [[2], [4, 6]]

    @cpar.parallel(rc.load_balanced_view(), block=True, chunksize=2)
    def add(x, y=5):
        return x + y

    assert add.map([1, 2, 3]) == [6, 7, 8]
    assert add.map([1, 2, 3], [1, 2, 3]) == [2, 4, 6]


def test_module_decorators_bad_input(rc):
    with pytest.raises(TypeError, match="needs a view"):
        cpar.remote("engine 0")
    with pytest.raises(TypeError, match="needs a view"):
        cpar.parallel(None)
    with pytest.raises(KeyError, match="bogus"):
        cpar.remote(rc[:], bogus=1)(abs)
    with pytest.raises(ValueError, match="distribution"):
        cpar.parallel(rc[:], dist="r")(abs)


# -- joblib ----------------------------------------------------------------------------

def test_joblib_view_backend(rc):
    import joblib

    view = rc.load_balanced_view()
    view.register_joblib_backend("cpar-test-view")
    with joblib.parallel_backend("cpar-test-view"):
        pids = joblib.Parallel(n_jobs=-1)(joblib.delayed(os.getpid)() for _ in range(12))
        negs = joblib.Parallel(n_jobs=-1)(joblib.delayed(abs)(-i) for i in range(30))
    assert set(pids) <= engine_pids(rc)
    assert negs == list(range(30))
    assert len(view.history) >= 2
    p = joblib.Parallel(backend="cpar-test-view")
    assert p._backend._view is view


def test_joblib_errors_and_names(rc):
    import joblib

    from cpar.joblib import IPythonParallelBackend, register_view

    view = rc.load_balanced_view()
    view.register_joblib_backend("cpar-test-err")

    def fail(x):
        raise KeyError(x)

    with pytest.raises(Exception, match="KeyError"):
        joblib.Parallel(backend="cpar-test-err")(joblib.delayed(fail)(i) for i in range(3))
    with pytest.raises(TypeError, match="backend name"):
        register_view(view, name="")
    cpar.register_joblib_backend("cpar-test-default")  # registered, connects on first use
    assert "cpar-test-default" in joblib.parallel.BACKENDS
    assert joblib.parallel.BACKENDS["cpar-test-default"] is IPythonParallelBackend
    assert "cpar" in joblib.parallel.EXTERNAL_BACKENDS  # found by name once imported


def test_sklearn_cross_val_on_engines(rc):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    view = rc.load_balanced_view()
    view.register_joblib_backend("cpar-test-sklearn")
    X, y = load_iris(return_X_y=True)
    with joblib.parallel_backend("cpar-test-sklearn"):
        scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=4, n_jobs=-1)
    assert len(scores) == 4 and min(scores) > 0.8
    assert len(view.history) >= 1  # the folds ran as tasks of the view


# -- pickler switches ------------------------------------------------------------------

@interactive
def _get_a():
    return _a  # noqa: F821 - resolved where the function runs


def test_interactive_keeps_module_function_interactive(dview):
    assert _get_a.__module__ == "__main__"
    assert _get_a.__globals__ is sys.modules["__main__"].__dict__
    dview["_a"] = "engine"
    assert dview.apply_sync(_get_a) == ["engine"] * len(dview)


def test_use_cloudpickle_with_interactive(dview):
    main = sys.modules["__main__"]
    dview["_a"] = "engine"
    try:
        dview.use_cloudpickle()
        main._a = "client"
        assert dview.apply_sync(_get_a) == ["client"] * len(dview)
        dview.execute("del _a", block=True)
        assert dview.apply_sync(_get_a) == ["client"] * len(dview)
    finally:
        dview.use_pickle()
        del main._a
    with pytest.raises(cpar.CompositeError, match="NameError"):
        dview.apply_sync(_get_a)


def test_use_dill(dview):
    class Point:  # a local class: the standard pickler cannot send its instances
        def __init__(self, x):
            self.x = x

    p = Point(4)
    try:
        dview.use_dill()
        assert dview.apply_sync(lambda: p.x * 2) == [8] * len(dview)
        assert [q.x for q in dview.apply_sync(lambda: Point(7))] == [7] * len(dview)
    finally:
        dview.use_pickle()
    with pytest.raises(Exception, match="cannot be sent"):
        dview.apply_sync(lambda: p.x)


def test_lbview_use_dill(rc):
    lv = rc.load_balanced_view()
    try:
        lv.use_dill()
        scale = 3
        assert lv.map_sync(lambda x: x * scale, range(4)) == [0, 3, 6, 9]
    finally:
        lv.use_pickle()


def test_spin(rc):
    assert rc.spin() is None
    assert rc[:].apply_sync(abs, -1) == [1] * len(rc.ids)


# -- dask ------------------------------------------------------------------------------

def test_become_dask(rc):
    executor = rc.become_dask()
    try:
        reprs = rc[:].apply_sync(repr, Reference("distributed_worker"))
        assert len(reprs) == len(rc.ids) and all("Worker" in r for r in reprs)
        assert len(executor.scheduler_info()["workers"]) == len(rc.ids)
        squares = executor.map(lambda x: x * x, range(10))
        assert executor.submit(sum, squares).result() == 285
    finally:
        executor.close()
        rc.stop_dask()
    with pytest.raises(cpar.CompositeError, match="NameError"):
        rc[:].apply_sync(lambda x: x, Reference("distributed_worker"))
    with pytest.raises(RuntimeError, match="no dask cluster"):
        rc.stop_dask()


def test_close_stops_dask(cluster):
    rc = cpar.Client(cluster.connection_file)
    try:
        rc.wait_for_engines(2, timeout=30)
        dc = rc.become_dask(targets=[0, 1])
        scheduler = rc._dask["cluster"]
        assert dc.submit(abs, -2).result() == 2
        dc.close()
    finally:
        rc.close()  # stops the workers and the scheduler
    assert scheduler.status.name == "closed"
    with cpar.Client(cluster.connection_file) as rc2:
        rc2.wait_for_engines(2, timeout=30)
        assert rc2[:].apply_sync(
            lambda: "distributed_worker" in globals()) == [False] * len(rc2.ids)
