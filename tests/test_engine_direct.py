"""The engine's main thread reads its next request from the controller's DEALER itself while
it waits idle, and sends its REPLY itself (engine/io_direct.c): the I/O thread wakes for
neither, yet still serves heartbeats, INTERRUPT, ABORT and output while a request runs.
Against the fake controller of test_engine.py (a real engine process)."""

import os
import pickle
import time

import pytest

from test_engine import (EXECUTE, HEARTBEAT, INTERRUPT, STREAM, FakeController,  # noqa: F401
                         ctl, engine, spawn)

pytestmark = pytest.mark.timeout(120)

ABORT = 34


def _switches(pid):
    """{thread name: voluntary context switches} of the engine's threads (summed by name)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        name = fields["Name"].strip()
        out[name] = out.get(name, 0) + int(fields["voluntary_ctxt_switches"])
    return out


@pytest.mark.parametrize("grace", [None, "60"])
def test_round_trips_do_not_wake_the_io_thread(tmp_path, spawn, grace):  # noqa: F811
    """One request at a time: the idle main thread reads each and sends its reply, so the
    I/O thread wakes only for its own heartbeats (it woke once or twice per request before),
    with and without a recovery grace period (requests held for a recovery)."""
    c = FakeController(tmp_path, hb_period_ms=1000, hb_timeout_ms=5000)
    try:
        env = {"CPAR_RECOVER_GRACE": grace} if grace else None
        e = spawn(c.connection_file, env=env)
        c.accept(engine_id=0)
        for _ in range(20):
            c.result(c.apply(int))
        time.sleep(0.2)
        before = _switches(e.pid)
        assert "cpar-engine-io" in before
        n = 300
        t0 = time.monotonic()
        for i in range(n):
            assert c.result(c.apply(abs, -i)) == i
        elapsed = time.monotonic() - t0
        after = _switches(e.pid)
        woke = after["cpar-engine-io"] - before["cpar-engine-io"]
        # heartbeats (1 s period) and stray wake-ups, not one per request (it was 1-2 per
        # request before). On an oversubscribed machine the main thread is sometimes not yet
        # back in its wait when the next request comes, and the I/O thread takes that one
        # (22% of them with three CPU hogs on two cores): hence half, not none.
        assert woke <= 0.5 * n + 2 * elapsed + 5, (woke, n, elapsed)
    finally:
        c.close()


def test_idle_and_busy_engine_hear_the_controller(tmp_path, spawn):  # noqa: F811
    """With a 200 ms heartbeat timeout an engine that hears nothing for 2 s leaves: idle
    (the main thread reads the echoed heartbeats) and during a long request it read itself
    (the I/O thread takes the socket back), it stays, streams output and is interruptible."""
    c = FakeController(tmp_path, hb_period_ms=50, hb_timeout_ms=200)
    try:
        e = spawn(c.connection_file)
        c.accept(engine_id=0)
        c.result(c.apply(int))
        end = time.monotonic() + 3
        while time.monotonic() < end:  # idle, heartbeats echoed
            c.next(HEARTBEAT)
        assert e.alive() and c.result(c.apply(lambda: "idle ok")) == "idle ok"
        mid = c.execute("import time\nprint('go', flush=True)\ntime.sleep(1000)")
        assert c.next(STREAM) and c.streams[-1][0] == mid
        end = time.monotonic() + 3
        while time.monotonic() < end:  # busy, heartbeats echoed
            c.next(HEARTBEAT)
        assert e.alive()
        c.interrupt(mid)
        assert c.error(mid)["ename"] == "KeyboardInterrupt"
        assert c.result(c.apply(lambda: "busy ok")) == "busy ok"
        assert "nothing heard" not in e.log_text()
    finally:
        c.close()


def test_abort_of_queued_requests_while_one_runs(ctl, engine):  # noqa: F811
    """A request read by the idle main thread runs; those behind it are queued; an ABORT
    drops the queued one named and interrupts the running one; the rest keep their order."""
    ctl.result(ctl.execute("ran = []"))
    running = ctl.execute("import time\nprint('go', flush=True)\ntime.sleep(1000)")
    queued = [ctl.apply(lambda i: ran.append(i) or i, i)  # noqa: F821
              for i in range(5)]
    ctl.next(STREAM)
    ctl.send_raw(ABORT, [queued[2] + running])
    assert ctl.error(running)["ename"] == "TaskAborted"
    for i, mid in enumerate(queued):
        m = ctl.reply(mid)
        if i == 2:
            assert m.status != 0 and pickle.loads(m.frames[0].buffer)["ename"] == "TaskAborted"
        else:
            assert m.status == 0
    assert ctl.result(ctl.apply(lambda: ran)) == [0, 1, 3, 4]  # noqa: F821


def test_abort_while_idle_drops_the_request_when_it_comes_up(ctl, engine):  # noqa: F811
    """An ABORT read by the idle main thread is kept for the request it names."""
    ctl.result(ctl.apply(int))
    mid = os.urandom(16)
    ctl.send_raw(ABORT, [mid])
    ctl.send_raw(INTERRUPT, [b""], flags=0)  # nothing runs: ignored
    ctl.next(HEARTBEAT)
    ctl.request(EXECUTE, [b"dropped = False"], msg_id=mid)
    m = ctl.reply(mid)
    assert m.status != 0 and pickle.loads(m.frames[0].buffer)["ename"] == "TaskAborted"
    assert ctl.result(ctl.apply(lambda: "dropped" in globals())) is False


def test_back_to_back_requests_keep_their_order(ctl, engine):  # noqa: F811
    """Hundreds sent at once, some with output, mixed with heartbeats and INTERRUPTs of
    unknown ids: run and answered in order, each request's output before its reply."""
    ctl.result(ctl.execute("seen = []"))
    ids, printing = [], set()
    for i in range(400):
        if i % 7 == 0:
            ctl.interrupt(os.urandom(16))
        if i % 5 == 0:
            ids.append(ctl.execute(f"print({i})\nseen.append({i})"))
            printing.add(ids[-1])
        else:
            ids.append(ctl.apply(lambda i: seen.append(i) or i, i))  # noqa: F821
    for mid in ids:
        assert ctl.reply(mid).status == 0
        assert mid not in printing or any(p == mid for p, _, _ in ctl.streams)
    assert ctl.result(ctl.apply(lambda: seen)) == list(range(400))  # noqa: F821
    printed = [int(t) for p, _, t in ctl.streams if p in ids for t in t.split()]
    assert printed == list(range(0, 400, 5))


def test_failed_execute_aborts_the_direct_requests_behind_it(ctl, engine):  # noqa: F811
    """As an IPython kernel does: requests queued behind an EXECUTE that fails are aborted,
    whether the I/O thread or the main thread read them."""
    ctl.result(ctl.execute("x = 0"))
    failing = ctl.execute("import time\ntime.sleep(0.3)\nraise ValueError('no')")
    behind = [ctl.apply(lambda: 1) for _ in range(3)]
    assert ctl.error(failing)["ename"] == "ValueError"
    for mid in behind:
        m = ctl.reply(mid)
        assert m.status != 0 and pickle.loads(m.frames[0].buffer)["ename"] == "TaskAborted"
    assert ctl.result(ctl.apply(lambda: "after")) == "after"
