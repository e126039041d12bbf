"""cpar's error classes against ipyparallel's: the hierarchy (what each ``except`` catches),
CompositeError's rendering, and the path by which each error reaches the user on a real
cluster (remote exceptions, several engines' errors, task timeouts after retries,
dependency failures, aborts, engine death, waits that run out of time)."""

import concurrent.futures
import itertools
import os

import pytest

import cpar
from cpar import error
from cpar import interactive as ia

# -- the hierarchy ---------------------------------------------------------------------

# (class, its bases in ipyparallel 9.2's ipyparallel.error, as names)
IPP_BASES = {
    "KernelError": {"IPythonError"},
    "EngineError": {"KernelError"},
    "NoEnginesRegistered": {"KernelError"},
    "TaskAborted": {"KernelError"},
    "TaskTimeout": {"KernelError"},
    "UnmetDependency": {"KernelError"},
    "ImpossibleDependency": {"UnmetDependency"},
    "DependencyTimeout": {"ImpossibleDependency"},
    "InvalidDependency": {"ImpossibleDependency"},
    "RemoteError": {"KernelError"},
    "TaskRejectError": {"KernelError"},
    "CompositeError": {"RemoteError"},
}
# Errors ipyparallel delivers as a RemoteError whose ename is the class name: here they
# are instances of both, so they are RemoteError subclasses too.
REPORTED = {"EngineError", "UnmetDependency", "ImpossibleDependency", "DependencyTimeout",
            "InvalidDependency", "TaskTimeout"}


def _ancestors(name):
    seen, todo = set(), [name]
    while todo:
        for base in IPP_BASES.get(todo.pop(), ()):
            if base not in seen:
                seen.add(base)
                todo.append(base)
    return seen


def test_issubclass_table_matches_ipyparallel():
    names = sorted(set(IPP_BASES) | {"IPythonError"})
    wrong = []
    for sub, sup in itertools.permutations(names, 2):
        expected = sup in _ancestors(sub) or (sup == "RemoteError" and sub in REPORTED)
        if issubclass(getattr(error, sub), getattr(error, sup)) != expected:
            wrong.append(f"issubclass({sub}, {sup}) should be {expected}")
    assert not wrong, wrong
    for name in names:
        assert getattr(cpar, name) is getattr(error, name), name


def test_hierarchy_matches_the_installed_ipyparallel():
    """Everything an except clause catches in ipyparallel, it catches here."""
    import ipyparallel.error as ipp_error

    names = sorted(set(IPP_BASES) | {"IPythonError"})
    for sub, sup in itertools.permutations(names, 2):
        if issubclass(getattr(ipp_error, sub), getattr(ipp_error, sup)):
            assert issubclass(getattr(error, sub), getattr(error, sup)), (sub, sup)
        elif not (sup == "RemoteError" and sub in REPORTED):
            assert not issubclass(getattr(error, sub), getattr(error, sup)), (sub, sup)


def test_timeout_error_is_the_builtin_and_not_a_kernel_error():
    assert error.TimeoutError is TimeoutError and cpar.TimeoutError is TimeoutError
    assert not issubclass(error.TimeoutError, error.KernelError)
    assert concurrent.futures.TimeoutError is error.TimeoutError
    assert error.IPythonError is error.CparError and cpar.IPythonError is error.CparError
    assert issubclass(cpar.TaskRejectError, error.KernelError)
    assert not issubclass(error.TaskRejectError, error.RemoteError)
    # a task timeout is not a dependency error (ipyparallel's except order holds) ...
    assert not issubclass(error.TaskTimeout, error.UnmetDependency)
    # ... except the one of a dependency timeout, which is both
    dep = error._DependencyTaskTimeout("late")
    assert isinstance(dep, error.TaskTimeout) and isinstance(dep, error.DependencyTimeout)
    assert dep.ename == "TaskTimeout" and repr(dep).startswith("<TaskTimeout")


# -- CompositeError's rendering ---------------------------------------------------------


def _errors(n, method="execute"):
    return [error.RemoteError("ZeroDivisionError", "division by zero",
                              "Traceback (most recent call last):\n  File \"<x>\", line 1\n"
                              f"ZeroDivisionError: division by zero [{i}]",
                              {"engine_id": i % 3, "method": method})
            for i in range(n)]


def test_composite_error_truncates_after_tb_limit(capsys):
    assert error.CompositeError.tb_limit == 4
    ce = error.CompositeError("one or more exceptions", _errors(10))
    lines = ce.render_traceback()
    assert lines[0].startswith("CompositeError: one or more exceptions")
    assert lines[-1] == "... 6 more exceptions ..."
    assert sum(line.startswith("ZeroDivisionError") for line in lines) == 4
    assert sum(line.endswith(":execute]") for line in lines) == 4
    assert ce._render_traceback_() == lines
    ce.print_traceback()
    assert capsys.readouterr().out == "\n".join(lines) + "\n"
    text = str(ce)
    assert text.count("ZeroDivisionError") == 4 and text.endswith("... 6 more exceptions ...")
    # no truncation line when everything fits; tb_limit set on an instance or the class
    assert "more exceptions" not in "\n".join(
        error.CompositeError("m", _errors(4)).render_traceback())
    ce.tb_limit = 9
    assert ce.render_traceback()[-1] == "... 1 more exceptions ..."
    ce.tb_limit = 0
    assert ce.render_traceback()[-1] == "... 10 more exceptions ..."
    assert error.CompositeError.tb_limit == 4


def test_composite_error_one_error_raise_and_bad_index(capsys):
    elist = _errors(3)
    ce = error.CompositeError("m", elist)
    assert ce.render_traceback(1) == elist[1].render_traceback()
    assert ce.render_traceback(1)[0] == "[Engine 1]"
    ce.print_traceback(2)
    assert "division by zero [2]" in capsys.readouterr().out
    with pytest.raises(error.RemoteError) as info:
        ce.raise_exception(2)
    assert info.value is elist[2]
    with pytest.raises(error.RemoteError) as info:
        ce.raise_exception()
    assert info.value is elist[0]
    for bad in (3, "x"):
        with pytest.raises(IndexError, match="no error"):
            ce.raise_exception(bad)
        with pytest.raises(IndexError, match="holds 3"):
            ce.render_traceback(bad)
    # a non-remote error in elist (an abort) renders as one line
    mixed = error.CompositeError("m", [error.TaskAborted("stopped", 1)] + _errors(1))
    assert "TaskAborted: stopped" in mixed.render_traceback()


# -- each error's path on a real cluster --------------------------------------------------


@ia
def _fail():
    raise ValueError("Failed!")


@ia
def _fail_first(path):
    """Fails on the first engine that runs it (noting its pid), succeeds elsewhere."""
    import os

    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        raise ValueError("first run")
    return os.getpid()


@ia
def _wait_for_file(path):
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return "released"


def test_remote_and_composite_errors(rc, dview):
    with pytest.raises(error.KernelError) as info:
        rc[0].apply_sync(_fail)
    e = info.value
    assert type(e) is error.RemoteError and e.ename == "ValueError" and e.engine_id == 0
    with pytest.raises(error.CompositeError) as info:
        dview.execute("1/0")
    ce = info.value
    assert len(ce.elist) == len(rc.ids) and ce.elist[0].engine_info["method"] == "execute"
    lines = ce.render_traceback()
    assert sum(line.endswith(":execute]") for line in lines) == min(4, len(rc.ids))
    # several requests' errors together: more than tb_limit, the rest counted
    # (one at a time: a failed execute aborts the direct requests queued behind it)
    ars = []
    for _ in range(3):
        ars.append(rc[:].execute("1/0", block=False))
        ars[-1].wait(30)
    with pytest.raises(error.CompositeError) as info:
        rc.get_result(ars).get(30)
    ce = info.value
    n = len(ce.elist)
    assert n == 3 * len(rc.ids) and n > ce.tb_limit
    lines = ce.render_traceback()
    assert lines[-1] == f"... {n - ce.tb_limit} more exceptions ..."
    assert sum("ZeroDivisionError" in line for line in lines) >= ce.tb_limit
    assert all(e.engine_info["method"] == "execute" for e in ce.elist)
    assert sum(line.endswith(":execute]") for line in lines) == ce.tb_limit
    with pytest.raises(error.RemoteError) as info:
        ce.raise_exception(n - 1)
    assert info.value.ename == "ZeroDivisionError"


def test_retries_on_every_engine_then_task_timeout(rc):
    lv = rc.load_balanced_view()
    n = len(rc.ids)
    with lv.temp_flags(retries=n - 1):  # the last engine's error comes back
        with pytest.raises(error.RemoteError) as info:
            lv.apply_sync(_fail)
    assert info.value.ename == "ValueError"
    with lv.temp_flags(retries=n + 2):  # no timeout: no engine left, the error comes back
        with pytest.raises(error.RemoteError) as info:
            lv.apply_sync(_fail)
    assert info.value.ename == "ValueError"
    with lv.temp_flags(retries=n, timeout=0.2):
        with pytest.raises(error.RemoteError) as info:
            lv.apply_sync(_fail)
    e = info.value
    assert type(e) is error.TaskTimeout and e.ename == "TaskTimeout"
    assert isinstance(e, error.KernelError) and not isinstance(e, error.UnmetDependency)
    assert "failed on every engine" in str(e)
    # a task waiting so can be aborted
    with lv.temp_flags(retries=n, timeout=60):
        ar = lv.apply_async(_fail)
    ar.abort()
    with pytest.raises(error.TaskAborted):
        ar.get(30)
    assert rc.load_balanced_view().apply_sync(lambda: 5) == 5  # the scheduler goes on


def test_dependency_errors(rc, tmp_path):
    lv = rc.load_balanced_view()
    with lv.temp_flags(after="12345"):
        with pytest.raises(error.ImpossibleDependency) as info:
            lv.apply_sync(lambda: 1)
    assert type(info.value) is error.InvalidDependency
    assert info.value.ename == "InvalidDependency"
    e0, e1 = rc.ids[0], rc.ids[1]
    ar0 = rc.load_balanced_view(targets=[e0]).apply_async(lambda: 0)
    ar1 = rc.load_balanced_view(targets=[e1]).apply_async(lambda: 1)
    assert (ar0.get(30), ar1.get(30)) == (0, 1)
    with lv.temp_flags(follow=[ar0, ar1]):
        with pytest.raises(error.UnmetDependency) as info:
            lv.apply_sync(lambda: 1)
    assert type(info.value) is error.ImpossibleDependency
    assert isinstance(info.value, error.RemoteError)

    @cpar.require("cpar_errs_no_such_module")
    def needs_missing():
        return 1

    with pytest.raises(error.ImpossibleDependency):
        lv.apply_sync(needs_missing)
    # a dependency not met in time: TaskTimeout, also a DependencyTimeout
    release = tmp_path / "release"
    blocker = rc.load_balanced_view(targets=[e0]).apply_async(_wait_for_file, str(release))
    try:
        with lv.temp_flags(after=blocker, timeout=0.2):
            with pytest.raises(error.TaskTimeout) as info:
                lv.apply_sync(lambda: 1)
        assert isinstance(info.value, error.DependencyTimeout)
        assert info.value.ename == "TaskTimeout"
    finally:
        release.write_text("go")
    assert blocker.get(30) == "released"


def test_abort_and_wait_timeouts(rc, tmp_path):
    release = tmp_path / "release"
    lv = rc.load_balanced_view(targets=[rc.ids[0]])
    blocker = lv.apply_async(_wait_for_file, str(release))
    queued = lv.apply_async(lambda: 1)
    try:
        with pytest.raises(error.TimeoutError):
            blocker.get(0)
        with pytest.raises(error.TimeoutError):  # the Future's own timeout: the same class
            blocker.result(timeout=0)
        queued.abort()
        with pytest.raises(error.KernelError) as info:
            queued.get(30)
        assert type(info.value) is error.TaskAborted
        assert not isinstance(info.value, error.RemoteError)
    finally:
        release.write_text("go")
    assert blocker.get(30) == "released"


def test_parked_task_runs_on_a_new_engine_then_engine_death(tmp_path):
    """A task that failed on every engine with retries and a timeout left waits for an
    engine it has not tried; an engine's death is an EngineError (a RemoteError)."""
    c = cpar.Cluster(n=1, cluster_id="errs-park")
    c.start_cluster_sync()
    try:
        with cpar.Client(c.connection_file) as rc:
            rc.wait_for_engines(1, timeout=30)
            lv = rc.load_balanced_view()
            marker = tmp_path / "first"
            with lv.temp_flags(retries=2, timeout=120):
                ar = lv.apply_async(_fail_first, str(marker))
            while not marker.exists() or not marker.read_text():
                ar.wait(0.05)
                assert not ar.ready(), "the task ended instead of waiting for an engine"
            c.start_engines_sync(1)
            pid = ar.get(60)
            assert pid != int(marker.read_text())
            assert len(rc.ids) == 2
            with pytest.raises(error.RemoteError) as info:
                rc[rc.ids[0]].apply_sync(os._exit, 1)
            assert type(info.value) is error.EngineError
            assert info.value.ename == "EngineError"
    finally:
        c.stop_cluster_sync()
    assert not c.engines.running and not c.controller.running
