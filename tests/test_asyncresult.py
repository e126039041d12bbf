"""AsyncResult / AsyncMapResult and the errors they raise (real 4-engine cluster)."""

import asyncio
import concurrent.futures
import datetime
import threading
import time

import pytest

import cpar
from cpar import error
from cpar import AsyncMapResult
from cpar.client.progress import format_bar

pytestmark = pytest.mark.timeout(120)

ia = cpar.interactive


@ia
def sleep_then(t, value):
    import time

    time.sleep(t)
    return value


@ia
def fail_on(eid_to_fail):
    import cpar.engine.runtime as rt

    if rt.engine_id in eid_to_fail:
        raise ValueError(f"engine {rt.engine_id} refuses")
    return rt.engine_id


# -- the Future protocol ------------------------------------------------------------------


def test_future_protocol(rc):
    ar = rc[:].apply_async(pow, 3, 2)
    assert isinstance(ar, concurrent.futures.Future)
    seen = []
    got = threading.Event()

    def callback(f):
        seen.append(f)
        got.set()

    ar.add_done_callback(callback)
    assert ar.result(timeout=30) == [9] * 4
    assert got.wait(30) and seen == [ar]
    assert ar.exception(timeout=30) is None
    late = []
    ar.add_done_callback(late.append)  # already done: called at once
    assert late == [ar]
    assert ar.cancel() is False and not ar.cancelled()

    bad = rc[0].apply_async(ia(lambda: 1 / 0))
    exc = bad.exception(timeout=30)
    assert isinstance(exc, error.RemoteError) and exc.ename == "ZeroDivisionError"


def test_future_protocol_whenever_it_is_first_used(rc):
    """A result's Future Condition is made only when something waits on it: results that
    finished unobserved, and results waited on from other threads while they finish,
    both work with every part of the Future protocol."""
    lb = rc.load_balanced_view()
    quiet = [lb.apply_async(pow, 2, k) for k in range(50)]
    deadline = time.monotonic() + 30
    while not all(ar.done() for ar in quiet):  # done() alone does not make a Condition
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "_condition" not in vars(quiet[0])
    done, not_done = concurrent.futures.wait(quiet, timeout=30)
    assert len(done) == 50 and not not_done
    assert sorted(f.result() for f in concurrent.futures.as_completed(quiet, timeout=30)) == \
        [2 ** k for k in range(50)]
    called = []
    quiet[1].add_done_callback(called.append)
    assert called == [quiet[1]]

    async def awaited():
        return await asyncio.wait_for(asyncio.wrap_future(quiet[2]), 30)

    assert asyncio.run(awaited()) == 4
    assert quiet[3].done() and quiet[3].successful() and "finished" in repr(quiet[3])

    # Waiters racing the finish: each thread waits on its own fresh results.
    racing = [lb.apply_async(sleep_then, 0.001 * (k % 5), k) for k in range(200)]
    got = {}

    def waiter(part):
        for ar in part:
            if ar.wait(30):
                got[ar.get()] = True

    threads = [threading.Thread(target=waiter, args=(racing[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    n_done, _ = concurrent.futures.wait(racing, timeout=60)
    for t in threads:
        t.join(60)
    assert len(n_done) == 200 and sorted(got) == list(range(200))


def test_asyncio_wrap_future_and_await(rc):
    async def main():
        a = await rc[0].apply_async(pow, 2, 4)
        b = await asyncio.wrap_future(rc[1].apply_async(pow, 2, 5))
        c = await asyncio.gather(rc[2].apply_async(pow, 2, 6), rc[3].apply_async(pow, 2, 7))
        d = await rc[:].map_async(ia(lambda x: x + 1), range(6))
        return a, b, c, d

    assert asyncio.run(main()) == (16, 32, [64, 128], [1, 2, 3, 4, 5, 6])


def test_get_wait_ready_successful_and_timeouts(rc):
    ar = rc[1].apply_async(sleep_then, 0.5, "late")
    assert ar.ready() is False
    assert ar.wait(0.01) is False
    with pytest.raises(error.TimeoutError):
        ar.get(0.01)
    with pytest.raises(TimeoutError):
        ar.result(timeout=0)
    with pytest.raises(AssertionError):
        ar.successful()
    assert ar.wait(30) is True and ar.wait() is True
    assert ar.ready() and ar.successful() and ar.get(0) == "late"
    bad = rc[1].apply_async(ia(lambda: [][1]))
    assert bad.wait(30) and bad.ready() and bad.successful() is False


def test_timings_and_progress(rc):
    ar = rc[:].apply_async(sleep_then, 0.1, 1)
    with pytest.raises(error.TimeoutError):  # not finished yet (as in ipyparallel)
        ar.wall_time
    ar.get(30)
    assert ar.progress == 4 and len(ar) == 4
    assert ar.elapsed >= 0.1 and ar.wall_time == ar.elapsed
    assert ar.serial_time >= 4 * 0.1
    assert ar.serial_time <= 4 * ar.wall_time
    assert isinstance(ar.submitted, datetime.datetime)


def test_metadata_stdout_stderr_outputs(rc):
    ar = rc[[0, 2]].execute(
        "import sys\nprint('out', 1)\nprint('err', 2, file=sys.stderr)", block=False)
    ar.get(30)
    md = ar.metadata
    assert [m.engine_id for m in md] == [0, 2]
    for m in md:
        assert set(m) >= {"engine_id", "submitted", "started", "completed", "received",
                          "status", "stdout", "stderr"}
        assert m["status"] == "ok" and m.stdout == "out 1\n" and m.stderr == "err 2\n"
        assert m.submitted <= m.started <= m.completed <= m.received
    assert ar.stdout == ["out 1\n", "out 1\n"] and ar.stderr == ["err 2\n", "err 2\n"]
    assert ar.outputs == [[], []]
    assert ar["engine_id"] == [0, 2] and ar["stdout"] == ar.stdout
    one = rc[3].apply_async(ia(lambda: print("hi")))
    one.get(30)
    assert one.metadata["engine_id"] == 3 and one.metadata.status == "ok"
    assert one.stdout == "hi\n" and one.stderr == "" and one.outputs == []
    assert one["engine_id"] == 3
    failed = rc[3].apply_async(ia(lambda: 1 / 0))
    failed.wait(30)
    assert failed.metadata["status"] == "error"


def test_display_outputs_groupings(rc, capsys):
    ar = rc[[0, 1]].execute(
        "import sys\nprint('o')\nprint('e', file=sys.stderr)\nprint('two\\nlines')")
    ar.get(30)
    ar.display_outputs()
    out = capsys.readouterr()
    assert out.out == "[stdout:0]\no\ntwo\nlines\n[stdout:1]\no\ntwo\nlines\n"
    assert out.err == "[stderr:0] e\n[stderr:1] e\n"
    ar.display_outputs("engine")
    assert capsys.readouterr().out.count("[stdout:") == 2
    ar.display_outputs(groupby="order")
    assert "[stdout:0]" in capsys.readouterr().out
    with pytest.raises(ValueError):
        ar.display_outputs("colour")


def test_get_dict_getitem_and_msg_ids(rc):
    ar = rc[[3, 1]].apply_async(ia(lambda: __import__("cpar.engine.runtime").engine.runtime
                                   .engine_id))
    assert ar.get_dict(30) == {3: 3, 1: 1}
    assert ar[0] == 3 and ar[1] == 1 and ar[-1] == 1
    assert len(ar.msg_ids) == 1 and isinstance(ar.msg_ids[0], str)
    assert rc[2].apply_async(pow, 2, 2).get_dict() == {2: 4}
    m = rc[:].map_async(ia(lambda x: x), range(8))
    assert len(m.msg_ids) == 4 and len(set(m.msg_ids)) == 4
    with pytest.raises(TypeError):
        m.get_dict()


def test_map_result_iterates_in_order_as_parts_arrive(rc):
    f = ia(lambda x: (__import__("time").sleep(0.4 if x >= 6 else 0), x * 10)[1])
    ar = rc[:].map_async(f, range(8))
    assert isinstance(ar, AsyncMapResult) and len(ar) == 8
    it = iter(ar)
    first = [next(it) for _ in range(4)]
    assert first == [0, 10, 20, 30]
    assert list(it) == [40, 50, 60, 70]
    assert list(ar) == [x * 10 for x in range(8)] and ar[3] == 30
    assert ar.get() == [x * 10 for x in range(8)]


def test_iteration_of_apply_results(rc):
    ar = rc[:].apply_async(sleep_then, 0.05, 7)
    assert list(ar) == [7] * 4
    with pytest.raises(TypeError):
        iter(rc[0].apply_async(pow, 1, 1))
    bad = rc[:].map_async(ia(lambda x: 1 // (x - 2)), range(4))
    with pytest.raises(error.RemoteError):
        list(bad)


def test_wait_interactive_text_bar(rc, capsys):
    ar = rc[:].apply_async(sleep_then, 0.3, 0)
    ar.wait_interactive(interval=0.05)
    out = capsys.readouterr().out
    assert ar.ready() and "\r" in out and out.endswith("\n")
    assert "4/4 tasks" in out.splitlines()[-1].split("\r")[-1]
    assert "100%" in out
    pending = rc[0].apply_async(sleep_then, 1.0, 0)
    pending.wait_interactive(interval=0.05, timeout=0.1)
    assert not pending.ready() and "0/1 tasks" in capsys.readouterr().out
    pending.get(30)


def test_wait_interactive_widget_falls_back_to_text_outside_ipython(rc, capsys):
    ar = rc[:2].apply_async(sleep_then, 0.1, 0)
    ar.wait_interactive(widget=True)
    assert ar.ready() and "2/2 tasks" in capsys.readouterr().out


def test_progress_bar_format():
    line = format_bar("apply", 2, 4, 1.0, width=10)
    assert line.startswith("apply:  50%|#####     | 2/4 tasks [00:01, 2.0 tasks/s]")


# -- errors -------------------------------------------------------------------------------


def test_remote_error_details(rc):
    @ia
    def broken(x):
        return {}[x]

    with pytest.raises(error.RemoteError) as info:
        rc[1].apply_sync(broken, "key")
    e = info.value
    assert e.ename == "KeyError" and e.evalue == "'key'"
    assert e.engine_info["engine_id"] == 1 and e.engine_id == 1
    assert "[Engine 1]" in str(e) and "KeyError" in str(e)
    assert "broken" in e.traceback and "return {}[x]" in e.traceback
    lines = e.render_traceback()
    assert lines[0] == "[Engine 1]" and any("broken" in line for line in lines)
    assert e._render_traceback_() == lines


def test_composite_error(rc):
    with pytest.raises(error.CompositeError) as info:
        rc[:].apply_sync(fail_on, [1, 3])
    ce = info.value
    assert isinstance(ce, error.RemoteError)
    assert [e.engine_id for e in ce.elist] == [1, 3]
    assert all(e.ename == "ValueError" for e in ce.elist)
    text = str(ce)
    assert "fail_on" in text and "[Engine 1]" in text and "[Engine 3]" in text
    with pytest.raises(error.RemoteError) as one:
        ce.raise_exception(1)
    assert one.value.engine_id == 3 and "engine 3 refuses" in one.value.evalue
    rendered = ce.render_traceback()
    assert rendered[0].startswith("CompositeError")
    assert sum("ValueError" in line for line in rendered) >= 2
    assert ce.render_traceback(0)[0] == "[Engine 1]"


def test_errors_from_single_engine_and_execute(rc):
    with pytest.raises(error.RemoteError) as info:
        rc[2].apply_sync(fail_on, [2])
    assert not isinstance(info.value, error.CompositeError)
    with pytest.raises(error.RemoteError) as info:
        rc[2].execute("undefined_name_xyz", block=True)
    assert info.value.ename == "NameError"
    assert isinstance(error.EngineError("gone", 3), error.CparError)
    assert "[Engine 3]" in str(error.EngineError("gone", 3))
    assert issubclass(error.TimeoutError, TimeoutError)


# -- abort --------------------------------------------------------------------------------


# The aborted running tasks below sleep an hour: a failed interrupt leaves their engine busy,
# so the next request to it (bounded by ENGINE_FREED_S, far below that hour) fails.
ENGINE_FREED_S = 60


def test_abort_running_and_queued(rc):
    running = rc[2].execute("import time\nprint('started', flush=True)\ntime.sleep(3600)",
                            block=False)
    queued = rc[2].apply_async(sleep_then, 0.2, "queued")
    deadline = time.monotonic() + 30
    while "started" not in running.stdout and time.monotonic() < deadline:
        running.wait(0.02)
    running.abort()
    queued.abort()
    with pytest.raises(error.TaskAborted) as info:
        running.get(30)
    assert "[Engine 2]" in str(info.value) and info.value.engine_id == 2
    with pytest.raises(error.TaskAborted):
        queued.get(0)
    assert running.ready() and not running.successful()
    assert running.metadata["status"] == "error"
    # the engine was interrupted (not killed, and not left running the hour-long sleep),
    # and late replies are ignored
    assert rc[2].apply_async(pow, 2, 3).get(ENGINE_FREED_S) == 8
    assert not rc.outstanding
    running.abort()  # finished: nothing to do


def test_abort_drops_a_queued_direct_request_unrun(rc):
    """A direct request aborted while it waits behind another on its engine never runs
    there (the engine drops it), and the running one is interrupted."""
    rc[3].execute("queued_ran = False", block=True)
    running = rc[3].execute("import time\nprint('started', flush=True)\ntime.sleep(3600)",
                            block=False)
    queued = rc[3].execute("queued_ran = True", block=False)
    deadline = time.monotonic() + 30
    while "started" not in running.stdout and time.monotonic() < deadline:
        running.wait(0.02)  # the first one runs: the second waits behind it on the engine
    assert "started" in running.stdout
    queued.abort()
    running.abort()
    with pytest.raises(error.TaskAborted):
        queued.get(0)
    with pytest.raises(error.TaskAborted):
        running.get(30)
    assert rc[3].pull("queued_ran", block=False).get(ENGINE_FREED_S) is False
    assert not rc.outstanding


def test_abort_multi_engine_and_client_abort(rc):
    ar = rc[:].apply_async(sleep_then, 3600, None)
    ar.abort()
    with pytest.raises(error.TaskAborted) as info:
        ar.get(30)
    assert len(info.value.elist) == 4
    other = rc[[0, 1]].apply_async(sleep_then, 3600, None)
    rc.abort()
    with pytest.raises(error.TaskAborted):
        other.get(30)
    partial = rc[:].apply_async(ia(lambda: 5))
    assert partial.get(ENGINE_FREED_S) == [5] * 4  # every engine was interrupted
    assert rc[:].apply_sync(ia(lambda: 1)) == [1] * 4


def test_client_wait_interactive(rc, capsys):
    ars = [rc[i].apply_async(sleep_then, 0.1 * i, i) for i in rc.ids]
    assert rc.wait_interactive(ars, interval=0.05) is True
    out = capsys.readouterr().out
    assert "4/4 tasks" in out.split("\r")[-1]
    assert [ar.get(0) for ar in ars] == rc.ids
    assert rc.wait_interactive() is True  # nothing outstanding
