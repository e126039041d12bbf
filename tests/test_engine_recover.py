"""The engine's side of recovery from a dead controller (docs/recovery.md, "Engines").

Real controller processes (``_core.Controller`` in a child process) on fixed ipc URLs and
one key, SIGKILLed and started again on the same URLs and key; real ``cpar-engine``
processes with ``CPAR_RECOVER_GRACE`` set (the controller's REGISTER_REPLY line
``recover_grace_ms`` lands separately). The last tests put an engine in front of the small
pyzmq controller of test_engine.py, to read the re-registration's REGISTER itself.
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import zmq

import cpar
from cpar import serialize
from cpar._proc import pid_alive
from cpar.cluster.launcher import engine_argv
from test_engine import (APPLY, HEARTBEAT, REGISTER, REGISTER_REPLY, STREAM, Engine,
                         FakeController)

pytestmark = pytest.mark.timeout(120)

GRACE = 4  # seconds: short, so that each test takes a few seconds

_CONTROLLER = """
import sys
from cpar import _core
client_url, engine_url, key, log = sys.argv[1:5]
ctrl = _core.Controller(client_url=client_url, engine_url=engine_url, key=key.encode(),
                        log_path=log, hb_period_ms=200, hb_timeout_ms=1000)
ctrl.install_signal_stop()
print("ready", flush=True)
ctrl.run()
"""


def _wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Rig:
    """Controllers started and killed on the same ipc URLs and key, their engines, and the
    connection file (rewritten with each controller's pid). Everything it starts, stop()
    kills."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cpar-rec-", dir="/tmp")  # short: ipc paths
        self.key = secrets.token_hex(16)
        self.client_url = f"ipc://{self.dir}/client"
        self.engine_url = f"ipc://{self.dir}/engine"
        self.connection_file = os.path.join(self.dir, "connection.json")
        self.controllers = []
        self.engines = []
        self.clients = []

    def start_controller(self):
        log = os.path.join(self.dir, f"controller-{len(self.controllers)}.log")
        proc = subprocess.Popen(
            [sys.executable, "-c", _CONTROLLER, self.client_url, self.engine_url, self.key, log],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        proc.log = log
        self.controllers.append(proc)
        assert proc.stdout.readline().strip() == "ready", _read(log)
        with open(self.connection_file, "w") as f:
            json.dump({"client_url": self.client_url, "engine_url": self.engine_url,
                       "key": self.key, "signature_scheme": "hmac-sha256",
                       "profile": "test", "cluster_id": "", "controller_pid": proc.pid,
                       "hb_period_ms": 200, "hb_timeout_ms": 1000}, f)
        return proc

    def kill_controller(self):
        proc = self.controllers[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def start_engine(self, grace=GRACE, extra=()):
        log = os.path.join(self.dir, f"engine-{len(self.engines)}.log")
        env = dict(os.environ)
        env.pop("CPAR_RECOVER_GRACE", None)
        if grace is not None:
            env["CPAR_RECOVER_GRACE"] = str(grace)
        proc = subprocess.Popen(engine_argv(self.connection_file, log, extra), env=env,
                                stdin=subprocess.DEVNULL)
        proc.log = log
        self.engines.append(proc)
        return proc

    def client(self, n=1):
        rc = cpar.Client(self.connection_file)
        self.clients.append(rc)
        rc.wait_for_engines(n, timeout=30)
        return rc

    def stop(self):
        for rc in self.clients:
            rc.close()
        for proc in self.engines + self.controllers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def rig():
    r = Rig()
    try:
        yield r
    finally:
        r.stop()


@cpar.interactive  # sent by code: engines cannot import this test module
def _wait_for_file(path):
    import os
    import time

    print("started", flush=True)
    while not os.path.exists(path):
        time.sleep(0.01)
    print("done", flush=True)
    return os.getpid()


def test_engine_reregisters_with_its_id_and_sends_the_held_reply(rig):
    rig.start_controller()
    engine = rig.start_engine()
    rc = rig.client()
    eid = rc.ids[0]
    release = os.path.join(rig.dir, "release")
    ar = rc[eid].apply_async(_wait_for_file, release)
    _wait_until(lambda: "started" in ar.stdout, 30, "the task runs")

    rig.kill_controller()
    _wait_until(lambda: "waiting up to" in _read(engine.log), 10, "the engine notices")
    log = _read(engine.log)
    assert (f"the connection to the controller at {rig.engine_url} dropped; waiting up to "
            f"{GRACE} s for it to come back (cpar cluster recover)") in log, log
    # The task keeps running; it ends while the controller is away: its REPLY is held.
    open(release, "w").close()
    time.sleep(0.5)
    assert engine.poll() is None, _read(engine.log)

    second = rig.start_controller()
    _wait_until(lambda: "re-registered" in _read(engine.log), 10, "the engine re-registers")
    log = _read(engine.log)
    assert f"re-registered with {rig.engine_url} as engine {eid} (held: 1 replies)" in log, log
    assert "exiting" not in log, log
    # The new controller knows the engine under its old id, and the held REPLY reached it
    # (this controller has no record of the request: it drops it, saying so).
    _wait_until(lambda: f"REPLY from engine {eid}" in _read(second.log), 10,
                "the held REPLY reaches the new controller")
    assert f"engine {eid} registered" in _read(second.log)
    rc2 = rig.client()
    assert rc2.ids == [eid]
    assert rc2[eid].apply_sync(abs, -3) == 3  # and it runs tasks again, heartbeats too
    time.sleep(1.5)  # more than the heartbeat timeout (1 s): still registered
    assert rc2.ids == [eid]
    assert rc2[eid].apply_sync(os.getpid) == engine.pid


def test_a_task_running_across_the_recovery_answers_the_new_controller(rig):
    """The REPLY of a task that ends after the re-registration goes straight out."""
    rig.start_controller()
    engine = rig.start_engine()
    rc = rig.client()
    eid = rc.ids[0]
    release = os.path.join(rig.dir, "release")
    ar = rc[eid].apply_async(_wait_for_file, release)
    _wait_until(lambda: "started" in ar.stdout, 30, "the task runs")
    rig.kill_controller()
    _wait_until(lambda: "waiting up to" in _read(engine.log), 10, "the engine notices")
    second = rig.start_controller()
    _wait_until(lambda: "re-registered" in _read(engine.log), 10, "the engine re-registers")
    assert f"as engine {eid} (held: 0 replies)" in _read(engine.log)
    open(release, "w").close()
    _wait_until(lambda: f"REPLY from engine {eid}" in _read(second.log), 10,
                "the REPLY reaches the new controller")
    assert engine.poll() is None


def test_no_controller_within_the_grace_period_ends_the_engine(rig):
    rig.start_controller()
    engine = rig.start_engine(grace=2.5)
    rc = rig.client()
    release = os.path.join(rig.dir, "release")
    ar = rc[rc.ids[0]].apply_async(_wait_for_file, release)
    _wait_until(lambda: "started" in ar.stdout, 30, "the task runs")
    rig.kill_controller()
    assert engine.wait(timeout=30) == 1
    log = _read(engine.log)
    assert "waiting up to 2.5 s for it to come back" in log, log
    assert "the controller did not come back within 2.5 s; exiting" in log, log
    assert "re-registered" not in log


def test_grace_zero_exits_as_before(rig):
    """CPAR_RECOVER_GRACE=0 (whatever the controller says): the engine exits within the
    heartbeat timeout after the connection drops, as before recovery."""
    rig.start_controller()
    engine = rig.start_engine(grace=0)
    rig.client()
    rig.kill_controller()
    assert engine.wait(timeout=30) == 1
    log = _read(engine.log)
    assert "recovery grace 0 s" in log, log
    assert "did not come back within 1000 ms (the controller is gone); exiting" in log, log
    assert "waiting up to" not in log, log


@pytest.mark.parametrize("value", ["soon", "-1", "1e9", "3s"])
def test_a_bad_grace_is_a_clear_usage_error(rig, value):
    rig.start_controller()
    engine = rig.start_engine(grace=value)
    assert engine.wait(timeout=30) == 2
    log = _read(engine.log)
    assert f"CPAR_RECOVER_GRACE must be a number of seconds from 0 to 1000000, not '{value}'" \
        in log, log


def test_help_names_the_grace_variable():
    out = subprocess.run(engine_argv("unused", None, ["--help"]), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0
    assert "CPAR_RECOVER_GRACE" in out.stdout and "cpar cluster recover" in out.stdout


def test_a_fractional_grace_from_the_environment(rig):
    rig.start_controller()
    engine = rig.start_engine(grace="0.75")
    rig.client()
    assert "recovery grace 0.75 s" in _read(engine.log)
    rig.kill_controller()
    assert engine.wait(timeout=30) == 1
    assert "did not come back within 0.75 s; exiting" in _read(engine.log)
    assert not pid_alive(engine.pid)


# -- the REGISTER of a re-registration, read by the pyzmq controller of test_engine.py ----


def _lose(fc):
    """Closes the fake controller's socket (the engine sees its connection drop) and binds
    a new one on the same address, as a recovered controller would."""
    url = fc.url
    fc.router.close(linger=0)
    deadline = time.monotonic() + 10
    while True:
        router = fc.ctx.socket(zmq.ROUTER)
        router.linger = 0
        try:
            router.bind(url)
            break
        except zmq.ZMQError:
            router.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    fc.router = router


def _apply(fc, f, *args):
    return fc.request(APPLY, serialize.pack_apply_message(f, args, {}))


def test_the_reregistration_lists_the_requests_held(tmp_path):
    fc = FakeController(tmp_path, hb_period_ms=100, hb_timeout_ms=1000)
    engine = Engine(fc.connection_file, tmp_path, env={"CPAR_RECOVER_GRACE": str(GRACE)})
    try:
        first = fc.accept(engine_id=3)
        assert b"recover=1" not in first.frames[0].bytes and len(first.frames) == 1
        release = str(tmp_path / "release")
        running = _apply(fc, _wait_for_file, release)
        queued = _apply(fc, abs, -2)
        assert fc.next(STREAM).parent == running  # "started": it runs, the other waits
        _lose(fc)
        m = fc.next(REGISTER, timeout=10)
        text = m.frames[0].bytes.decode()
        assert "recover=1\n" in text and f"pid={engine.pid}\n" in text, text
        assert m.target == 3
        ids = m.frames[1].bytes
        assert len(ids) == 32 and {ids[:16], ids[16:]} == {running, queued}
        # While it waits, the main thread's messages are held: nothing but the REGISTER
        # comes (no heartbeats either), even once the task has ended.
        open(release, "w").close()
        assert not fc.router.poll(700)
        fc.send_raw(REGISTER_REPLY, [b"hb_period_ms=100\nhb_timeout_ms=1000\n"], engine=3,
                    parent=m.msg_id)
        # Then, in order: the running task's output and REPLY, the queued task's REPLY.
        assert fc.reply(running).status == 0
        assert fc.reply(queued).status == 0
        log = engine.log_text()
        assert re.search(r"re-registered with \S+ as engine 3 \(held: [0-2] replies\)", log), log
        assert engine.alive()
    finally:
        engine.stop()
        fc.close()


@pytest.mark.parametrize("how", ["refused", "other id"])
def test_a_refused_reregistration_ends_the_engine(tmp_path, how):
    fc = FakeController(tmp_path, hb_period_ms=100, hb_timeout_ms=1000)
    engine = Engine(fc.connection_file, tmp_path, env={"CPAR_RECOVER_GRACE": str(GRACE)})
    try:
        fc.accept(engine_id=5)
        fc.next(HEARTBEAT, timeout=10)  # registered and running
        _lose(fc)
        m = fc.next(REGISTER, timeout=10)
        if how == "refused":
            fc.send_raw(REGISTER_REPLY, [b"error=requested engine id 5 is taken\n"], engine=-1,
                        status=-2, parent=m.msg_id)
        else:
            fc.send_raw(REGISTER_REPLY, [b"hb_period_ms=100\nhb_timeout_ms=1000\n"], engine=6,
                        parent=m.msg_id)
        assert engine.wait(timeout=30) == 1
        log = engine.log_text()
        if how == "refused":
            assert re.search(r"refused the re-registration of engine 5: .*requested engine id 5 "
                             r"is taken; exiting", log), log
        else:
            assert "re-registered this engine as engine 6, not as engine 5 (its id); exiting" \
                in log, log
    finally:
        engine.stop()
        fc.close()


@cpar.interactive
def _print_after_file(path, mib):
    import os
    import time

    print("started", flush=True)
    while not os.path.exists(path):
        time.sleep(0.01)
    line = "x" * ((1 << 20) - 1)
    for _ in range(mib):
        print(line, flush=True)
    return mib


def test_output_held_while_lost_is_bounded(tmp_path):
    """STREAMs held while the controller is away stop at 64 MiB (the rest is dropped and
    counted); the REPLY is held whatever its size and goes out after them."""
    fc = FakeController(tmp_path, hb_period_ms=100, hb_timeout_ms=1000)
    engine = Engine(fc.connection_file, tmp_path, env={"CPAR_RECOVER_GRACE": "30"})
    try:
        fc.accept(engine_id=1)
        release = str(tmp_path / "release")
        running = _apply(fc, _print_after_file, release, 70)
        assert fc.next(STREAM).parent == running
        _lose(fc)
        m = fc.next(REGISTER, timeout=10)
        open(release, "w").close()
        _wait_until(lambda: "MiB of output held" in engine.log_text(), 60,
                    "output past the bound is dropped")
        fc.send_raw(REGISTER_REPLY, [b"hb_period_ms=100\nhb_timeout_ms=1000\n"], engine=1,
                    parent=m.msg_id)
        assert fc.result(running) == 70
        text = sum(len(t) for p, _, t in fc.streams if p == running)
        assert text < 70 << 20
        log = engine.log_text()
        assert "more than 64 MiB of output held while the controller is away" in log, log
        assert re.search(r"re-registered with \S+ as engine 1 \(held: [01] replies; \d+ output "
                         r"messages, \d+ bytes, over the 64 MiB held were dropped\)", log), log
    finally:
        engine.stop()
        fc.close()


def test_a_silent_controller_is_lost_too(tmp_path):
    """No DISCONNECTED, only silence (10 heartbeat timeouts): the same re-registration, on a
    new connection; heartbeats resume after it."""
    fc = FakeController(tmp_path, hb_period_ms=50, hb_timeout_ms=200)
    engine = Engine(fc.connection_file, tmp_path, env={"CPAR_RECOVER_GRACE": str(GRACE)})
    try:
        fc.accept(engine_id=2)
        fc.next(HEARTBEAT, timeout=10)
        fc.echo = False  # heartbeats go unanswered from here on
        first_ident = fc.ident
        m = fc.next(REGISTER, timeout=20)
        assert fc.ident != first_ident  # a new socket
        assert "recover=1\n" in m.frames[0].bytes.decode() and m.frames[1].bytes == b""
        log = engine.log_text()
        assert ("nothing heard from the controller at " + fc.url + " for 2000 ms; waiting up "
                f"to {GRACE} s for it to come back (cpar cluster recover)") in log, log
        fc.echo = True
        fc.send_raw(REGISTER_REPLY, [b"hb_period_ms=50\nhb_timeout_ms=200\n"], engine=2,
                    parent=m.msg_id)
        beats = fc.heartbeats
        fc.next(HEARTBEAT, timeout=10)
        assert fc.heartbeats > beats
        assert "re-registered with " + fc.url + " as engine 2 (held: 0 replies)" \
            in engine.log_text()
        assert fc.result(_apply(fc, abs, -7)) == 7
    finally:
        engine.stop()
        fc.close()
